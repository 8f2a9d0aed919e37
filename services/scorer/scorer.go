// Package scorer turns the observed workload of each target into scored
// index candidates. It stores the statistics the collector publishes in the
// control database (idempotently, keyed by their natural ids), and on an
// interval re-scores every target whose workload changed: it parses each
// statement, generates candidates the catalog does not already satisfy,
// prices them with the real planner (HypoPG what-if plans) and publishes
// the chosen set. The same events always give the same candidates.
package scorer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Name is the stage name: the producer of its events and its SQL marker.
const Name = "scorer"

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

// Scorer holds the ingest handlers and the scoring loop's state.
type Scorer struct {
	deps stage.Deps

	mu    sync.Mutex
	dirty map[string]bool
}

// New returns a scorer on d.
func New(d stage.Deps) (*Scorer, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	s := &Scorer{deps: d, dirty: map[string]bool{}}
	// Score every target once after a start: the workload in the control
	// database may have changed while no scorer ran.
	for _, t := range d.Targets.Names() {
		s.dirty[t] = true
	}
	return s, nil
}

// Start consumes workload statistics and scores changed targets every
// scorer.interval until ctx is done.
func Start(ctx context.Context, d stage.Deps) error {
	s, err := New(d)
	if err != nil {
		return err
	}
	r, err := d.Bus.NewRouter(Name, time.Minute)
	if err != nil {
		return err
	}
	if err := r.Handle("querystats", events.TypeQueryStatObserved, s.HandleQueryStat); err != nil {
		return err
	}
	if err := r.Handle("tablestats", events.TypeTableStatObserved, s.HandleTableStat); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	select {
	case <-r.Running():
		d.Ready()
	case err := <-errc:
		return fmt.Errorf("scorer router: %w", err)
	case <-ctx.Done():
		<-errc
		return nil
	}
	t := time.NewTicker(d.Config.Scorer.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-errc
			return nil
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("scorer router: %w", err)
			}
			return nil
		case <-t.C:
			s.ScoreDirty(ctx)
		}
	}
}

func (s *Scorer) markDirty(target string) {
	s.mu.Lock()
	s.dirty[target] = true
	s.mu.Unlock()
}

// takeDirty returns and clears the targets to score, in name order.
func (s *Scorer) takeDirty() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.dirty))
	for t := range s.dirty {
		out = append(out, t)
	}
	s.dirty = map[string]bool{}
	sort.Strings(out)
	return out
}

// ScoreDirty scores every target whose workload changed and publishes the
// candidates. A target that fails is logged and marked dirty again; it never
// stops the others.
func (s *Scorer) ScoreDirty(ctx context.Context) {
	for _, target := range s.takeDirty() {
		if ctx.Err() != nil {
			return
		}
		cands, err := s.ScoreTarget(ctx, target)
		if err == nil && len(cands) > 0 {
			err = s.deps.Bus.Publish(ctx, Name, "", cands...)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.deps.Logger.Warn("score target", "target", target, "error", err.Error())
				s.markDirty(target)
			}
			continue
		}
		s.deps.Logger.Info("scored target", "target", target, "candidates", len(cands))
	}
}

// HandleQueryStat stores one statement delta. The row's natural key
// (target, query_id, window_end) makes a redelivery a no-op without an
// inbox row per delta.
func (s *Scorer) HandleQueryStat(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	q, ok := p.(*events.QueryStatObserved)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("scorer: unexpected payload %T", p))
	}
	if q.Calls <= 0 || q.QueryID == "" {
		return nil, bus.Permanent(fmt.Errorf("querystat %s: no calls or no query id", env.ID))
	}
	tag, err := s.deps.Control.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.workload_stats
  (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows)
values ($1, $2, $3, $4, $5, $6, $7, $8)
on conflict (target, query_id, window_end) do nothing`,
		q.Target, q.QueryID, q.WindowEnd, q.WindowStart, q.Query, q.Calls, q.TotalExecTimeMs, q.Rows)
	if err != nil {
		return nil, classify(fmt.Errorf("store querystat %s: %w", env.ID, err))
	}
	if tag.RowsAffected() > 0 {
		s.markDirty(q.Target)
	}
	return nil, nil
}

// HandleTableStat keeps the latest statistics of each table.
func (s *Scorer) HandleTableStat(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	ts, ok := p.(*events.TableStatObserved)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("scorer: unexpected payload %T", p))
	}
	b, err := json.Marshal(ts)
	if err != nil {
		return nil, bus.Permanent(err)
	}
	_, err = s.deps.Control.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.table_stats (target, schema_name, table_name, observed_at, stats)
values ($1, $2, $3, $4, $5)
on conflict (target, schema_name, table_name) do update
   set observed_at = excluded.observed_at, stats = excluded.stats
 where indexpilot.table_stats.observed_at < excluded.observed_at`,
		ts.Target, ts.Schema, ts.Table, ts.ObservedAt, b)
	if err != nil {
		return nil, classify(fmt.Errorf("store tablestat %s: %w", env.ID, err))
	}
	return nil, nil
}

func classify(err error) error {
	if postgres.Classify(err) == postgres.Permanent {
		return bus.Permanent(err)
	}
	return err
}
