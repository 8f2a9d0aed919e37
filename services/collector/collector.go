// Package collector is the first stage of the pipeline: it polls every
// target's statistics views and publishes what changed.
//
// Each poll of a target publishes one events.QueryStatObserved per workload
// statement whose pg_stat_statements calls went up since the previous poll
// (see internal/delta for the baseline rules) and one
// events.TableStatObserved per user table, with its indexes. Targets are
// polled independently, each in its own goroutine with its own pool: a slow
// or unreachable target only delays itself.
//
// The list of targets can change while the collector runs: on SIGHUP, or
// when `indexpilot reload` records a request in the control database, the
// collector re-reads its configuration, stops the targets that were
// removed, starts the new ones and restarts those whose settings changed.
// After every poll it records the target's health in
// indexpilot.collector_targets, which `indexpilot status` shows.
package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Name is the stage name: the producer of the events the collector
// publishes, its application_name suffix and its query marker.
const Name = "collector"

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

type loaderKey struct{}

// WithConfigLoader returns a context that tells Start how to re-read the
// configuration on a reload (the CLI passes the loader that honours its
// --config flag). Without one, Start reads INDEXPILOT_CONFIG (or
// indexpilot_config.yaml) and the environment, as the stage binary does.
func WithConfigLoader(ctx context.Context, load func() (config.Config, error)) context.Context {
	return context.WithValue(ctx, loaderKey{}, load)
}

// Options tune StartWith.
type Options struct {
	// LoadConfig re-reads the configuration on a reload; nil means the
	// loader from WithConfigLoader, else config.Load(INDEXPILOT_CONFIG).
	LoadConfig func() (config.Config, error)
	// Reload, when set, triggers a reload each time it receives.
	Reload <-chan struct{}
	// NoSignals leaves SIGHUP alone (tests).
	NoSignals bool
	// Bypass replaces the watched bypass state (tests).
	Bypass *bypass.State
}

// Start polls every target of d.Config.Targets until ctx is done, then
// returns nil. It calls d.Ready() before the first poll. SIGHUP reloads the
// targets.
//
// A failing poll (target unreachable, query timeout, publish error) is
// logged and retried after a backoff that starts at the interval and
// doubles up to max(interval, 5 min); it never stops the stage or the
// other targets. d.Control may be nil: health is then not recorded, and
// neither reload requests nor the polling watermark of app-fed statistics
// are kept in the control database.
//
// Collection honours the bypass (pkg/bypass): while the collector stage is
// paused, the system level is off or the stats_collection feature is
// disabled, no target is polled and nothing is published (the replication
// stream of app-fed statistics is closed, its slot kept); collection
// resumes when they are enabled again. With d.Control the bypass is
// watched (bypass.Watch: the control database and the control topic);
// without it only the configured switches (features.bypass) apply.
func Start(ctx context.Context, d stage.Deps) error { return StartWith(ctx, d, Options{}) }

// StartWith is Start with options.
func StartWith(ctx context.Context, d stage.Deps, opts Options) error {
	switch {
	case d.Bus == nil:
		return errors.New("start collector: nil bus")
	case d.Targets == nil:
		return errors.New("start collector: nil targets")
	case d.Logger == nil:
		return errors.New("start collector: nil logger")
	}
	if opts.LoadConfig == nil {
		if l, ok := ctx.Value(loaderKey{}).(func() (config.Config, error)); ok && l != nil {
			opts.LoadConfig = l
		} else {
			opts.LoadConfig = func() (config.Config, error) { return config.Load(os.Getenv("INDEXPILOT_CONFIG"), nil) }
		}
	}
	if opts.Bypass == nil {
		st, err := watchBypass(ctx, d)
		if err != nil {
			return fmt.Errorf("start collector: %w", err)
		}
		opts.Bypass = st
	}
	s := newSupervisor(d, opts.LoadConfig)
	s.gate = &gate{st: opts.Bypass}
	if len(d.Config.Targets) == 0 {
		d.Logger.Warn("no targets configured: nothing to collect")
	}
	var hup chan os.Signal
	if !opts.NoSignals {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	d.Ready()
	s.apply(ctx, d.Config)
	reloadReqs := s.watchReloadRequests(ctx)
	for {
		select {
		case <-ctx.Done():
			s.stopAll()
			return nil
		case <-hup:
			d.Logger.Info("SIGHUP: reloading the configuration")
			s.reload(ctx)
		case <-opts.Reload:
			s.reload(ctx)
		case <-reloadReqs:
			d.Logger.Info("reload requested in the control database: reloading the configuration")
			s.reload(ctx)
		}
	}
}
