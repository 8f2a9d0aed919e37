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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Name is the stage name: the producer of its events and its SQL marker.
const Name = "scorer"

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

// StartOptions are the injectable parts of the stage; zero values mean
// the configured ones.
type StartOptions struct {
	// Bypass replaces the watched bypass state (StartWith) or the
	// configured switches (NewWith).
	Bypass *bypass.State
	// Meter receives the scorer's what-if counters; nil means the global
	// meter provider (telemetry.Meter).
	Meter metric.MeterProvider
}

// Scorer holds the ingest handlers and the scoring loop's state.
type Scorer struct {
	deps    stage.Deps
	bp      *bypass.State
	metrics instruments
	// paused remembers that the last round was skipped by the bypass, so
	// the pause and the resume are logged once each.
	paused bool

	mu    sync.Mutex
	dirty map[string]bool
	// removalsDirty: table statistics arrived; only removals need a look.
	removalsDirty map[string]bool
	// sentRemovals remembers the removal events published per target, so
	// the same proposal is not republished on every statistics poll (its
	// id is deterministic, so a repeat after a restart is harmless).
	sentRemovals map[string]map[string]bool
	// trigger scores a target soon after new deltas arrive (nil: on the
	// interval only, as outside Start).
	trigger *trigger
	// health records each scoring run of a target in
	// indexpilot.stage_health (nil outside Start).
	health *metadata.StageHealth
	// evidence remembers the spans of the querystat events, which the
	// candidates' spans link to (trace.go).
	evidence *evidenceSpans
}

// trigger debounces new deltas per target: the first stored delta of a
// target arms a timer of scorer.trigger_debounce, and when it fires the
// target is due; later deltas meanwhile join that round. The scoring loop
// waits on wake and scores the due targets.
type trigger struct {
	debounce time.Duration
	mu       sync.Mutex
	armed    map[string]bool
	due      map[string]bool
	wake     chan struct{}
}

func newTrigger(debounce time.Duration) *trigger {
	return &trigger{debounce: debounce, armed: map[string]bool{}, due: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// note arms target's timer unless it is armed already.
func (tr *trigger) note(target string) {
	if tr == nil {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.armed[target] {
		return
	}
	tr.armed[target] = true
	time.AfterFunc(tr.debounce, func() {
		tr.mu.Lock()
		delete(tr.armed, target)
		tr.due[target] = true
		tr.mu.Unlock()
		select {
		case tr.wake <- struct{}{}:
		default:
		}
	})
}

// take returns and clears the due targets.
func (tr *trigger) take() map[string]bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	due := tr.due
	tr.due = map[string]bool{}
	return due
}

// New returns a scorer on d. Its bypass is the configured switches only.
func New(d stage.Deps) (*Scorer, error) { return NewWith(d, StartOptions{}) }

// NewWith is New with injected parts.
func NewWith(d stage.Deps, opts StartOptions) (*Scorer, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	if opts.Bypass == nil {
		opts.Bypass = bypass.NewState(d.Config.Features.Bypass, d.Clock)
	}
	s := &Scorer{deps: d, bp: opts.Bypass, metrics: newInstruments(opts.Meter), dirty: map[string]bool{}, removalsDirty: map[string]bool{}, sentRemovals: map[string]map[string]bool{},
		evidence: newEvidenceSpans(maxTracedStatements)}
	// Score every target once after a start: the workload in the control
	// database may have changed while no scorer ran.
	for _, t := range d.Targets.Names() {
		s.dirty[t] = true
	}
	return s, nil
}

// Start consumes workload statistics and scores changed targets every
// scorer.interval, and a target scorer.trigger_debounce after new deltas
// of it arrived, until ctx is done. While the bypass pauses the scorer
// (stage level) or switches the system off, it keeps storing statistics
// but scores nothing: no what-if load on the targets, no events published.
func Start(ctx context.Context, d stage.Deps) error { return StartWith(ctx, d, StartOptions{}) }

// StartWith is Start with injected parts.
func StartWith(ctx context.Context, d stage.Deps, opts StartOptions) error {
	if err := d.Check(); err != nil {
		return err
	}
	if opts.Bypass == nil {
		st, err := bypass.Watch(ctx, d, Name)
		if err != nil {
			return err
		}
		opts.Bypass = st
	}
	s, err := NewWith(d, opts)
	if err != nil {
		return err
	}
	if d.Config.Scorer.TriggerDebounce > 0 {
		s.trigger = newTrigger(d.Config.Scorer.TriggerDebounce)
	}
	s.health = metadata.NewStageHealth(d.Control, d.Logger, Name)
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
	if err := r.Handle("appstats", events.TypeAppStatObserved, s.HandleAppStat); err != nil {
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
	var wake <-chan struct{}
	if s.trigger != nil {
		wake = s.trigger.wake
	}
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
		case <-wake:
			s.scoreDirty(ctx, s.trigger.take())
		}
	}
}

// rhythm is how soon new workload is scored: the trigger's debounce when
// it is shorter than the interval, else the interval.
func (s *Scorer) rhythm() time.Duration {
	c := s.deps.Config.Scorer
	if c.TriggerDebounce > 0 && c.TriggerDebounce < c.Interval {
		return c.TriggerDebounce
	}
	return c.Interval
}

func (s *Scorer) markDirty(target string) {
	s.mu.Lock()
	s.dirty[target] = true
	s.mu.Unlock()
}

func (s *Scorer) markRemovalsDirty(target string) {
	s.mu.Lock()
	s.removalsDirty[target] = true
	s.mu.Unlock()
}

// takeDirty returns and clears the targets to score and, apart from
// those, the targets whose removals only need a look, in name order. With
// only set, it takes the targets in it only (and their removals).
func (s *Scorer) takeDirty(only map[string]bool) (full, removalsOnly []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.dirty {
		if only == nil || only[t] {
			full = append(full, t)
			delete(s.dirty, t)
			delete(s.removalsDirty, t)
		}
	}
	for t := range s.removalsDirty {
		if only == nil || only[t] {
			removalsOnly = append(removalsOnly, t)
			delete(s.removalsDirty, t)
		}
	}
	sort.Strings(full)
	sort.Strings(removalsOnly)
	return full, removalsOnly
}

// allowed reports whether the bypass lets the scorer work now (neither
// the scorer stage paused nor the system off), logging a pause and the
// resume once each.
func (s *Scorer) allowed(ctx context.Context) bool {
	ok, why := s.bp.Allows(bypass.LevelStage, Name)
	s.mu.Lock()
	was := s.paused
	s.paused = !ok
	s.mu.Unlock()
	switch {
	case !ok && !was:
		s.deps.Logger.Info("scoring paused by the bypass", "level", string(why.Switch.Level), "reason", string(why.Reason))
	case ok && was:
		s.deps.Logger.Info("scoring resumed")
	}
	if !ok {
		s.metrics.skipped.Add(ctx, 1, metric.WithAttributes(attribute.String("level", string(why.Switch.Level))))
	}
	return ok
}

// ScoreDirty scores every target whose workload changed and publishes the
// candidates and removal proposals, then looks for removals on the targets
// whose statistics changed. A target that fails is logged and marked dirty
// again; it never stops the others. While the bypass pauses the scorer it
// does nothing: the changed targets stay marked until it resumes.
func (s *Scorer) ScoreDirty(ctx context.Context) { s.scoreDirty(ctx, nil) }

// scoreDirty is ScoreDirty for the targets in only (every target: nil).
func (s *Scorer) scoreDirty(ctx context.Context, only map[string]bool) {
	if !s.allowed(ctx) {
		return
	}
	full, removalsOnly := s.takeDirty(only)
	for i, target := range full {
		if ctx.Err() != nil {
			return
		}
		if !s.allowed(ctx) {
			s.requeue(full[i:], removalsOnly)
			return
		}
		rep, err := s.Score(ctx, target, Options{})
		if err == nil && !s.allowed(ctx) {
			// Paused while scoring: publish nothing, score again later.
			s.requeue(full[i:], removalsOnly)
			return
		}
		if err == nil {
			err = s.publish(ctx, target, rep.Candidates(), rep.Removals)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.deps.Logger.Warn("score target", "target", target, "error", err.Error())
				s.markDirty(target)
				s.health.Beat(ctx, target, s.deps.Clock(), s.rhythm(), nil, err)
			}
			continue
		}
		s.deps.Logger.Info("scored target", "target", target, "candidates", len(rep.Chosen), "removals", len(rep.Removals))
		var scored *time.Time
		if !rep.WindowEnd.IsZero() {
			scored = &rep.WindowEnd
		}
		s.health.Beat(ctx, target, s.deps.Clock(), s.rhythm(), scored, nil)
	}
	for i, target := range removalsOnly {
		if ctx.Err() != nil {
			return
		}
		if !s.removalLookDue(target) {
			continue
		}
		if !s.allowed(ctx) {
			s.requeue(nil, removalsOnly[i:])
			return
		}
		err := func() error {
			pool, err := s.deps.Targets.Pool(ctx, target)
			if err != nil {
				return err
			}
			rm, err := s.removals(ctx, pool, target, s.deps.Config.Scorer.FormulaVersion, nil)
			if err != nil {
				return err
			}
			return s.publish(ctx, target, nil, rm)
		}()
		if err != nil && ctx.Err() == nil {
			s.deps.Logger.Warn("look for removals", "target", target, "error", err.Error())
			s.markRemovalsDirty(target)
		}
	}
}

// requeue marks targets a paused round did not finish.
func (s *Scorer) requeue(full, removalsOnly []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range full {
		s.dirty[t] = true
	}
	for _, t := range removalsOnly {
		s.removalsDirty[t] = true
	}
}

// publish sends the candidates, and the removal proposals not yet sent by
// this process.
func (s *Scorer) publish(ctx context.Context, target string, chosen []*events.IndexCandidateScored, removals []*events.IndexRemovalProposed) error {
	out := make([]events.Payload, 0, len(chosen)+len(removals))
	for _, c := range chosen {
		out = append(out, c)
	}
	parents, endSpans := s.candidateSpans(ctx, target, chosen)
	s.mu.Lock()
	sent := s.sentRemovals[target]
	if sent == nil {
		sent = map[string]bool{}
		s.sentRemovals[target] = sent
	}
	var fresh []string
	for _, r := range removals {
		if id := r.EventID(); !sent[id] {
			out = append(out, r)
			fresh = append(fresh, id)
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		endSpans(false)
		return nil
	}
	for len(parents) < len(out) {
		parents = append(parents, nil) // removals: from ctx
	}
	if err := s.deps.Bus.PublishWithParents(ctx, Name, "", out, parents); err != nil {
		endSpans(true)
		return err
	}
	endSpans(false)
	s.mu.Lock()
	for _, id := range fresh {
		sent[id] = true
	}
	s.mu.Unlock()
	return nil
}

// HandleQueryStat stores one statement delta. The row's natural key
// (target, query_id, window_end) makes a redelivery a no-op without an
// inbox row per delta.
//
// A history window (events.IsHistory) is cumulative: it replaces the rows
// of its statement it covers (those ending before it and starting at or
// after its start; every earlier one for an unknown start), and a row it
// covers that arrives later is dropped. So a collector restart, which
// publishes the history again, never counts a call twice, in whatever
// order the events arrive. Activity samples are never covered: they are
// not in pg_stat_statements.
func (s *Scorer) HandleQueryStat(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	q, ok := p.(*events.QueryStatObserved)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("scorer: unexpected payload %T", p))
	}
	if q.Calls <= 0 || q.QueryID == "" {
		return nil, bus.Permanent(fmt.Errorf("querystat %s: no calls or no query id", env.ID))
	}
	var samples []byte
	if len(q.ParamSamples) > 0 {
		b, err := json.Marshal(q.ParamSamples)
		if err != nil {
			return nil, bus.Permanent(err)
		}
		samples = b
	}
	tx, err := s.deps.Control.Begin(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("store querystat %s: %w", env.ID, err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.workload_stats
  (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows, window_source, unfinished, param_samples)
select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
 where $9 = 'activity' or not exists (
       select 1 from indexpilot.workload_stats h
        where h.target = $1 and h.query_id = $2 and h.window_source like 'history:%' and h.window_end > $3
          and (h.window_source = 'history:unknown' or h.window_start <= $4))
on conflict (target, query_id, window_end) do nothing`,
		q.Target, q.QueryID, q.WindowEnd, q.WindowStart, q.Query, q.Calls, q.TotalExecTimeMs, q.Rows,
		q.WindowSource, q.Unfinished, samples)
	if err != nil {
		return nil, classify(fmt.Errorf("store querystat %s: %w", env.ID, err))
	}
	changed := tag.RowsAffected() > 0
	if changed && events.IsHistory(q.WindowSource) {
		if _, err := tx.Exec(ctx, `/* indexpilot:scorer */
delete from indexpilot.workload_stats
 where target = $1 and query_id = $2 and window_end < $3 and window_source <> 'activity'
   and ($5 = 'history:unknown' or window_start >= $4)`,
			q.Target, q.QueryID, q.WindowEnd, q.WindowStart, q.WindowSource); err != nil {
			return nil, classify(fmt.Errorf("store querystat %s: %w", env.ID, err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, classify(fmt.Errorf("store querystat %s: %w", env.ID, err))
	}
	// Remembered even when no row changed (a redelivery is the same event;
	// a window a history window covers is the same statement's workload,
	// counted in that history).
	s.evidence.note(q.Target, q.QueryID, env.ID, bus.ProducerSpanContext(ctx))
	if changed {
		s.markDirty(q.Target)
		s.trigger.note(q.Target)
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
	tx, err := s.deps.Control.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("store tablestat %s: %w", env.ID, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.table_stats (target, schema_name, table_name, observed_at, stats)
values ($1, $2, $3, $4, $5)
on conflict (target, schema_name, table_name) do update
   set observed_at = excluded.observed_at, stats = excluded.stats
 where indexpilot.table_stats.observed_at < excluded.observed_at`,
		ts.Target, ts.Schema, ts.Table, ts.ObservedAt, b)
	if err != nil {
		return nil, classify(fmt.Errorf("store tablestat %s: %w", env.ID, err))
	}
	_, err = tx.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.table_stat_samples (target, schema_name, table_name, observed_at, inserts, updates, hot_updates, deletes,
       newpage_updates, server_xact_next)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
on conflict do nothing`, ts.Target, ts.Schema, ts.Table, ts.ObservedAt, ts.Inserts, ts.Updates, ts.HotUpdates, ts.Deletes,
		ts.NewPageUpdates, ts.ServerXactNext)
	if err != nil {
		return nil, classify(fmt.Errorf("store tablestat sample %s: %w", env.ID, err))
	}
	// Index usage: a scan counter that changed (up, or back after a
	// statistics reset), or a reset reported by the collector, restarts
	// the unused period. An older observation
	// arriving late changes nothing.
	for _, ix := range ts.Indexes {
		_, err = tx.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.index_usage (target, schema_name, table_name, index_name, first_seen_at, observed_at, scans, scans_changed_at)
values ($1, $2, $3, $4, $5, $5, $6, $5)
on conflict (target, schema_name, index_name) do update
   set table_name = excluded.table_name, observed_at = excluded.observed_at, scans = excluded.scans,
       scans_changed_at = case when indexpilot.index_usage.scans <> excluded.scans then excluded.observed_at
                               -- A statistics reset since: scans before it are lost, the period restarts there.
                               when $7::timestamptz > indexpilot.index_usage.scans_changed_at then $7::timestamptz
                               else indexpilot.index_usage.scans_changed_at end
 where indexpilot.index_usage.observed_at < excluded.observed_at`,
			ts.Target, ts.Schema, ts.Table, ix.Name, ts.ObservedAt, ix.Scans, ts.StatsResetAt)
		if err != nil {
			return nil, classify(fmt.Errorf("store index usage %s: %w", env.ID, err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, classify(fmt.Errorf("store tablestat %s: %w", env.ID, err))
	}
	s.markRemovalsDirty(ts.Target)
	return nil, nil
}

func classify(err error) error {
	if postgres.Classify(err) == postgres.Permanent {
		return bus.Permanent(err)
	}
	return err
}
