package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/executor/internal/build"
	"github.com/indexpilot/indexpilot/services/executor/internal/validate"
)

// vjob is one claimed row of indexpilot.validations.
type vjob struct {
	recID, target, schema, table, indexName, indexKey string
	spec                                              events.IndexSpec
	queryIDs                                          []string
	started, built, now                               time.Time
	candidateID                                       string
	// traceParent is the span of the build attempt that made the index.
	traceParent string
}

// ValidationEvidence is the evidence of a validation in validations.evidence
// and mutation_log: the windows, the per-statement numbers and the verdict.
type ValidationEvidence struct {
	BeforeFrom    time.Time                   `json:"before_from"`
	BeforeTo      time.Time                   `json:"before_to"`
	AfterFrom     time.Time                   `json:"after_from"`
	AfterTo       time.Time                   `json:"after_to"`
	Statements    []events.ValidatedStatement `json:"statements"`
	ChangePct     float64                     `json:"change_pct"`
	PlanUsesIndex *bool                       `json:"plan_uses_index,omitempty"`
	Comparable    int                         `json:"comparable"`
	Inconclusive  bool                        `json:"inconclusive,omitempty"`
	Verdict       string                      `json:"verdict"`
	Reason        string                      `json:"reason"`
	Reverted      bool                        `json:"reverted"`
	RevertError   string                      `json:"revert_error,omitempty"`
	MinCalls      int64                       `json:"min_calls"`
	ExecutorID    string                      `json:"executor_id"`
}

// queueValidation records, in the settle transaction of a build, that the
// index it built must be validated.
func (x *executor) queueValidation(ctx context.Context, tx pgx.Tx, j *job, o outcome) error {
	if !x.cfg.Validation.Enabled || o.name != OutcomeBuilt {
		return nil
	}
	if len(j.queryIDs) == 0 {
		x.log.Info("validation skipped: no targeted statements", "recommendation_id", j.recID)
		return nil
	}
	_, err := tx.Exec(ctx, marker+`insert into indexpilot.validations
  (recommendation_id, target, schema_name, table_name, index_name, index_key, query_ids, build_started_at, built_at, not_before,
   trace_parent)
values ($1, $2, $3, $4, $5, $6, $7, now() - make_interval(secs => $8), now(), now() + make_interval(secs => $9), nullif($10, ''))
on conflict (recommendation_id) do update
   set index_name = excluded.index_name, query_ids = excluded.query_ids, build_started_at = excluded.build_started_at,
       trace_parent = excluded.trace_parent,
       built_at = excluded.built_at, not_before = excluded.not_before, state = 'pending', verdict = null,
       reverted = false, claimed_by = null, lease_until = null, evidence = '{}', updated_at = now()`,
		j.recID, j.target, j.spec.Schema, j.spec.Table, o.res.Name, j.spec.Key(), j.queryIDs,
		o.res.Duration.Seconds(), x.cfg.Validation.MinWait.Seconds(), telemetry.TraceParent(j.span))
	return err
}

// claimValidation takes one validation that is due.
func (x *executor) claimValidation(ctx context.Context) (*vjob, error) {
	var v *vjob
	err := pgx.BeginFunc(ctx, x.d.Control, func(tx pgx.Tx) error {
		v = nil
		var c vjob
		err := tx.QueryRow(ctx, marker+`select v.recommendation_id::text, v.target, v.schema_name, v.table_name, v.index_name,
       v.index_key, v.query_ids, v.build_started_at, v.built_at, now(), r.index_spec, r.candidate_id::text,
       coalesce(v.trace_parent, '')
  from indexpilot.validations v join indexpilot.recommendations r on r.id = v.recommendation_id
 where ((v.state = 'pending' and v.not_before <= now()) or (v.state = 'running' and v.lease_until < now()))
 order by v.not_before
 limit 1
 for update of v skip locked`).Scan(&c.recID, &c.target, &c.schema, &c.table, &c.indexName, &c.indexKey, &c.queryIDs,
			&c.started, &c.built, &c.now, &c.spec, &c.candidateID, &c.traceParent)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, marker+`update indexpilot.validations
   set state = 'running', claimed_by = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
 where recommendation_id = $1`, c.recID, x.id, x.cfg.Lease.Seconds()); err != nil {
			return err
		}
		v = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim validation: %w", err)
	}
	return v, nil
}

// validateDue runs every due validation, one at a time.
func (x *executor) validateDue(ctx context.Context) {
	drain(ctx, x, "validation", x.claimValidation, x.validate, func(v *vjob) any { return v.recID })
}

// settings are the validate package's thresholds from the config.
func (x *executor) settings() validate.Settings {
	c := x.cfg.Validation
	return validate.Settings{MinCalls: c.MinCalls, MinWait: c.MinWait, MaxWait: c.MaxWait,
		ImprovedPct: c.ImprovedPct, RegressedPct: c.RegressedPct}
}

// windows reads the targeted statements' before and after windows from
// workload_stats (the collector's pg_stat_statements deltas). Before: the
// windows that ended within BeforeWindow before the build started. After:
// the windows that started after the build completed. A window that
// overlaps the build counts in neither.
func (x *executor) windows(ctx context.Context, v *vjob) ([]validate.Statement, map[string]string, error) {
	rows, err := x.d.Control.Query(ctx, marker+`select q.id,
       coalesce(sum(w.calls) filter (where b), 0)::bigint,
       coalesce(sum(w.total_exec_time_ms) filter (where b), 0)::float8,
       coalesce(extract(epoch from $3 - min(w.window_start) filter (where b)), 0)::float8,
       coalesce(sum(w.calls) filter (where a), 0)::bigint,
       coalesce(sum(w.total_exec_time_ms) filter (where a), 0)::float8,
       coalesce(extract(epoch from max(w.window_end) filter (where a) - $4), 0)::float8,
       coalesce((select s.query from indexpilot.workload_stats s where s.target = $1 and s.query_id = q.id
                  order by s.window_end desc limit 1), '')
  from unnest($2::text[]) as q(id)
  left join lateral (
    select s.*, (s.window_end <= $3 and s.window_end > $3 - make_interval(secs => $5)) as b,
           (s.window_start >= $4) as a
      from indexpilot.workload_stats s where s.target = $1 and s.query_id = q.id) w on true
 group by q.id
 order by q.id`, v.target, v.queryIDs, v.started, v.built, x.cfg.Validation.BeforeWindow.Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("read workload windows: %w", err)
	}
	texts := map[string]string{}
	var out []validate.Statement
	for rows.Next() {
		var s validate.Statement
		var bspan, aspan float64
		var text string
		if err := rows.Scan(&s.QueryID, &s.Before.Calls, &s.Before.TotalMs, &bspan, &s.After.Calls, &s.After.TotalMs,
			&aspan, &text); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read workload windows: %w", err)
		}
		s.Before.Span = time.Duration(bspan * float64(time.Second))
		s.After.Span = time.Duration(aspan * float64(time.Second))
		texts[s.QueryID] = text
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read workload windows: %w", err)
	}
	return out, texts, nil
}

// validate evaluates one claimed validation: it waits (re-queues) until
// the after window is complete, then confirms the plans, gives the verdict,
// reverts when it must, and records everything.
func (x *executor) validate(ctx context.Context, v *vjob) error {
	log := x.log.With("target", v.target, "recommendation_id", v.recID, "index", v.indexName)
	stmts, texts, err := x.windows(ctx, v)
	if err != nil {
		return x.requeueValidation(ctx, v, x.backoff(1), err)
	}
	ready, next := validate.Ready(stmts, x.settings(), v.now.Sub(v.built), x.cfg.PollInterval)
	if !ready {
		log.Debug("validation waits for calls", "recheck_in", next.String())
		return x.requeueValidation(ctx, v, next, nil)
	}
	pool, err := x.d.Targets.Pool(ctx, v.target)
	if err != nil {
		return x.requeueValidation(ctx, v, x.backoff(1), err)
	}
	// The span starts once the validation gives its verdict: the checks
	// that only wait for calls make none.
	ctx, span := x.validationSpan(ctx, v)
	defer span.End()
	for i := range stmts {
		text := texts[stmts[i].QueryID]
		if text == "" {
			continue
		}
		used, err := build.UsesIndex(ctx, pool, text, v.schema, v.indexName)
		if err != nil {
			log.Debug("plan targeted statement", "query_id", stmts[i].QueryID, "error", postgres.Describe(err))
			continue
		}
		stmts[i].PlanUsesIndex = &used
	}
	r := validate.Decide(stmts, x.settings())
	ev := ValidationEvidence{
		BeforeFrom: v.started.Add(-x.cfg.Validation.BeforeWindow), BeforeTo: v.started, AfterFrom: v.built, AfterTo: v.now,
		ChangePct: r.ChangePct, PlanUsesIndex: r.PlanUsesIndex, Comparable: r.Comparable, Inconclusive: r.Inconclusive,
		Verdict: r.Verdict, Reason: r.Reason, MinCalls: x.cfg.Validation.MinCalls, ExecutorID: x.id,
	}
	for _, s := range stmts {
		ev.Statements = append(ev.Statements, events.ValidatedStatement{
			QueryID: s.QueryID, BeforeCalls: s.Before.Calls, BeforeMeanMs: s.Before.Mean(),
			AfterCalls: s.After.Calls, AfterMeanMs: s.After.Mean(), PlanUsesIndex: s.PlanUsesIndex})
	}
	revert := !r.Inconclusive && ((r.Verdict == events.VerdictRegressed && x.cfg.Validation.RevertRegressed) ||
		(r.Verdict == events.VerdictNoChange && x.cfg.Validation.RevertNoChange))
	var drop build.DropResult
	if revert {
		gctx, stop := x.guard(ctx)
		drop, err = build.Drop(gctx, pool, v.schema, v.indexName, build.DropOptions{Options: build.Options{
			LockTimeout: x.cfg.LockTimeout, StatementTimeout: x.cfg.StatementTimeout}})
		stop()
		if err != nil {
			log.Warn("revert index", "error", err.Error())
			return x.requeueValidation(ctx, v, x.backoff(2), err)
		}
		ev.Reverted = true
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	payload := &events.IndexValidationCompleted{
		Target: v.target, RecommendationID: v.recID, Index: v.spec, IndexName: v.indexName, BuiltAt: v.built.UTC(),
		Verdict: r.Verdict, ChangePct: r.ChangePct, PlanUsesIndex: r.PlanUsesIndex, Reverted: ev.Reverted,
		Statements: ev.Statements, ValidatedAt: v.now.UTC(),
	}
	var out *metadata.Outboxed
	err = pgx.BeginFunc(sctx, x.d.Control, func(tx pgx.Tx) error {
		tag, err := tx.Exec(sctx, marker+`update indexpilot.validations
   set state = 'done', verdict = $3, reverted = $4, evidence = $5, claimed_by = null, lease_until = null, updated_at = now()
 where recommendation_id = $1 and claimed_by = $2 and state = 'running'`, v.recID, x.id, r.Verdict, ev.Reverted, ev)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errLeaseLost
		}
		entry := metadata.Entry{Stage: Name, Action: "validate", Outcome: r.Verdict, Target: v.target,
			Schema: v.schema, Table: v.table, Fields: v.spec.Columns, IndexName: v.indexName, Reason: r.Reason,
			Evidence: ev, CandidateID: v.candidateID, RecommendationID: v.recID}
		parent, err := metadata.AppendLog(sctx, tx, entry)
		if err != nil {
			return err
		}
		if out, err = x.outbox(sctx, tx, v.recID, payload); err != nil {
			return err
		}
		if !ev.Reverted {
			return nil
		}
		if _, err := tx.Exec(sctx, marker+`update indexpilot.recommendations set state = 'reverted', updated_at = now()
 where id = $1`, v.recID); err != nil {
			return err
		}
		for _, s := range ev.Statements {
			if _, err := tx.Exec(sctx, marker+`insert into indexpilot.blocklist
  (target, query_fingerprint, index_key, reason, recommendation_id, evidence)
values ($1, $2, $3, $4, $5, $6)
on conflict (target, query_fingerprint, index_key) do update
   set reason = excluded.reason, recommendation_id = excluded.recommendation_id, evidence = excluded.evidence`,
				v.target, s.QueryID, v.indexKey, r.Verdict+": "+r.Reason, v.recID, s); err != nil {
				return err
			}
		}
		entry.Action, entry.Outcome, entry.DDL, entry.ParentID = "revert", "reverted", drop.DDL, &parent
		entry.Evidence = map[string]any{"verdict": r.Verdict, "change_pct": r.ChangePct, "statements": ev.Statements,
			"definition": drop.Definition, "index_existed": drop.Existed, "duration_ms": drop.Duration.Milliseconds()}
		_, err = metadata.AppendLog(sctx, tx, entry)
		return err
	})
	if errors.Is(err, errLeaseLost) {
		log.Warn("validation row no longer held at settle time")
		return nil
	}
	if err != nil {
		return fmt.Errorf("settle validation %s: %w", v.recID, err)
	}
	span.SetAttributes(attribute.String(telemetry.AttrOutcome, r.Verdict), attribute.Float64("indexpilot.change_pct", r.ChangePct),
		attribute.Bool("indexpilot.reverted", ev.Reverted))
	log.Info("index validated", "verdict", r.Verdict, "change_pct", r.ChangePct, "reverted", ev.Reverted, "reason", r.Reason)
	x.publish(sctx, *out)
	return nil
}

// requeueValidation gives the claim back, due again after d.
func (x *executor) requeueValidation(ctx context.Context, v *vjob, d time.Duration, cause error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if _, err := x.d.Control.Exec(sctx, marker+`update indexpilot.validations
   set state = 'pending', claimed_by = null, lease_until = null, not_before = now() + make_interval(secs => $3),
       updated_at = now()
 where recommendation_id = $1 and claimed_by = $2`, v.recID, x.id, d.Seconds()); err != nil {
		return fmt.Errorf("requeue validation %s: %w", v.recID, err)
	}
	return cause
}
