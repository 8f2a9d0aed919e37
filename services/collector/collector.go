// Package collector is the first stage of the pipeline: it polls every
// target's statistics views and publishes what changed.
//
// Each poll of a target publishes one events.QueryStatObserved per workload
// statement whose pg_stat_statements calls went up since the previous poll
// (see internal/delta for the baseline rules) and one
// events.TableStatObserved per user table, with its indexes. Targets are
// polled independently, each in its own goroutine: a slow or unreachable
// target only delays itself.
package collector

import (
	"context"
	"errors"
	"sync"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Name is the stage name: the producer of the events the collector
// publishes, its application_name suffix and its query marker.
const Name = "collector"

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

// Start polls every target in d.Targets every collector.interval until ctx
// is done, then returns nil. It calls d.Ready() before the first poll.
//
// A failing poll (target unreachable, query timeout, publish error) is
// logged and retried after a backoff that starts at the interval and
// doubles up to max(interval, 5 min); it never stops the stage or the
// other targets. The collector does not use the control database, so
// d.Control may be nil.
func Start(ctx context.Context, d stage.Deps) error {
	switch {
	case d.Bus == nil:
		return errors.New("start collector: nil bus")
	case d.Targets == nil:
		return errors.New("start collector: nil targets")
	case d.Logger == nil:
		return errors.New("start collector: nil logger")
	}
	settings := d.Config.Collector
	def := config.Default().Collector
	if settings.Interval <= 0 {
		settings.Interval = def.Interval
	}
	if settings.QueryTimeout <= 0 {
		settings.QueryTimeout = def.QueryTimeout
	}
	names := d.Targets.Names()
	if len(names) == 0 {
		d.Logger.Warn("no targets configured: nothing to collect")
	}
	d.Ready()

	var wg sync.WaitGroup
	for _, name := range names {
		p := newPoller(d, name, settings)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}
