package collector

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// supervisor runs one worker per target and applies reloads.
type supervisor struct {
	d       stage.Deps
	log     *slog.Logger
	load    func() (config.Config, error)
	health  *healthWriter
	workers map[string]*worker
	// hooks are passed to every target's stream (tests).
	hooks *streamHooks
	// gate pauses every target's collection while the bypass says so.
	gate *gate
	// reads shares pg_stat_statements reads among targets on one server.
	reads *sharedReads
}

func newSupervisor(d stage.Deps, load func() (config.Config, error)) *supervisor {
	return &supervisor{
		d: d, log: d.Logger, load: load,
		health:  &healthWriter{control: d.Control, log: d.Logger},
		workers: map[string]*worker{},
		reads:   newSharedReads(),
	}
}

// worker is the goroutines of one target.
type worker struct {
	target   config.Target
	settings config.Collector
	cancel   context.CancelFunc
	done     chan struct{}
	// removed is set before cancel when the target left the configuration:
	// its replication slot is dropped on the way out.
	removed atomic.Bool
}

// settingsFor returns the collector settings of t under cfg, with defaults
// for zero values (tests build partial configurations).
func settingsFor(cfg config.Config, t config.Target) config.Collector {
	s := cfg.Collector
	def := config.Default().Collector
	if s.Interval <= 0 {
		s.Interval = def.Interval
	}
	if s.QueryTimeout <= 0 {
		s.QueryTimeout = def.QueryTimeout
	}
	if s.AppStatsPollInterval <= 0 {
		s.AppStatsPollInterval = def.AppStatsPollInterval
	}
	if s.ReloadCheckInterval <= 0 {
		s.ReloadCheckInterval = def.ReloadCheckInterval
	}
	return s.Effective(t)
}

// apply makes the running workers match cfg.Targets: removed targets stop
// (and drop their replication slot), new ones start, changed ones restart.
func (s *supervisor) apply(ctx context.Context, cfg config.Config) {
	want := map[string]config.Target{}
	for _, t := range cfg.Targets {
		want[t.Name] = t
	}
	for name, w := range s.workers {
		t, keep := want[name]
		if keep && reflect.DeepEqual(t, w.target) && settingsFor(cfg, t) == w.settings {
			continue
		}
		if !keep {
			s.log.Info("target removed", "target", name)
			w.removed.Store(true)
		} else {
			s.log.Info("target changed: restarting its collection", "target", name)
		}
		w.cancel()
		<-w.done
		delete(s.workers, name)
		if !keep {
			s.health.forget(name)
		}
	}
	for _, t := range cfg.Targets {
		if _, running := s.workers[t.Name]; running {
			continue
		}
		s.startWorker(ctx, t, settingsFor(cfg, t))
	}
}

func (s *supervisor) startWorker(ctx context.Context, t config.Target, settings config.Collector) {
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{target: t, settings: settings, cancel: cancel, done: make(chan struct{})}
	s.workers[t.Name] = w
	conn := &targetConn{target: t, stage: Name, log: s.log.With("target", t.Name)}
	p := newPoller(s.d, t.Name, settings)
	p.log = s.log.With("target", t.Name)
	p.conn = conn
	p.health = s.health
	p.gate = s.gate
	p.reads = s.reads
	a := newAppStats(s.d, t, settings, conn, s.health, p.log)
	a.gate = s.gate
	if s.hooks != nil {
		a.hooks = *s.hooks
	}
	go func() {
		defer close(w.done)
		defer conn.close()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); p.run(wctx) }()
		go func() { defer wg.Done(); a.run(wctx, w.removed.Load) }()
		wg.Wait()
	}()
}

// stopAll stops every worker and waits for them.
func (s *supervisor) stopAll() {
	for name, w := range s.workers {
		w.cancel()
		<-w.done
		delete(s.workers, name)
	}
}

// reload re-reads the configuration and applies its targets and collector
// settings. An invalid configuration is logged and changes nothing.
func (s *supervisor) reload(ctx context.Context) {
	cfg, err := s.load()
	if err != nil {
		s.log.Error("reload: configuration rejected, keeping the current targets", "error", err.Error())
		return
	}
	s.apply(ctx, cfg)
	s.log.Info("reloaded the configuration", "targets", len(cfg.Targets))
}

// watchReloadRequests reports each new `indexpilot reload` request found in
// indexpilot.collector_reload. Requests made before the collector started
// are ignored: it has just read its configuration.
func (s *supervisor) watchReloadRequests(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	if s.d.Control == nil {
		return out
	}
	every := settingsFor(s.d.Config, config.Target{}).ReloadCheckInterval
	read := func() (time.Time, error) {
		var at *time.Time
		err := s.d.Control.QueryRow(ctx, marker+"select max(requested_at) from indexpilot.collector_reload").Scan(&at)
		if err != nil || at == nil {
			return time.Time{}, err
		}
		return *at, nil
	}
	go func() {
		last, err := read()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("cannot read reload requests (run indexpilot init)", "error", postgres.Describe(err))
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			at, err := read()
			if err != nil || !at.After(last) {
				continue
			}
			last = at
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// marker starts the collector's own statements.
var marker = postgres.Marker(Name)

// RequestReload asks every running collector that uses this control
// database to re-read its configuration within
// collector.reload_check_interval (`indexpilot reload`).
func RequestReload(ctx context.Context, control postgres.Querier) error {
	_, err := control.Exec(ctx, marker+`insert into indexpilot.collector_reload as r (id, requested_at) values (1, clock_timestamp())
on conflict (id) do update set requested_at = greatest(excluded.requested_at, r.requested_at + interval '1 microsecond')`)
	if err != nil {
		return fmt.Errorf("request reload: %w", err)
	}
	return nil
}
