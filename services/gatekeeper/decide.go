package gatekeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/services/gatekeeper/internal/policy"
)

// outcome is where the rules send a recommendation.
type outcome struct {
	state   string
	reason  events.Reason
	detail  string
	retryAt time.Time
	// passed names the rules the candidate passed before this outcome, in
	// the order they ran (docs/gatekeeper.md); the one that decided is the
	// reason's.
	passed []string
}

// rec is the stored recommendation row the rules work on.
type rec struct {
	id, state, reason, candEventID string
	windowEnd                      *time.Time
	approvedAt                     *time.Time
	lastLogID                      *int64
}

// open states are re-evaluated by a newer candidate.
func reopenable(r *rec) bool {
	switch r.state {
	case StateProposed, StateDeferred, StateSuperseded, StateHeld, StateRemoved:
		// (removed: the workload may want the index again)
		return true
	case StateRejected:
		// A rule's rejection may not hold for newer evidence; an operator's
		// rejection and the blocklist do.
		return r.reason != string(events.ReasonOperatorRejected) && r.reason != string(events.ReasonBlocklisted)
	}
	return false
}

func readRec(ctx context.Context, tx pgx.Tx, where string, args ...any) (*rec, error) {
	var r rec
	err := tx.QueryRow(ctx, marker+`select id::text, state, reason, candidate_event_id::text, candidate_window_end, approved_at, last_log_id
  from indexpilot.recommendations where `+where+` for update`, args...).
		Scan(&r.id, &r.state, &r.reason, &r.candEventID, &r.windowEnd, &r.approvedAt, &r.lastLogID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read recommendation: %w", err)
	}
	return &r, nil
}

// decide records the verdict on a new candidate event and returns the
// decisions to publish.
func (g *Gatekeeper) decide(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, candEventID string) ([]*events.IndexDecisionMade, error) {
	r, err := readRec(ctx, tx, "target = $1 and index_key = $2", c.Target, c.Index.Key())
	if err != nil {
		return nil, err
	}
	evidence, err := json.Marshal(c)
	if err != nil {
		return nil, bus.Permanent(err)
	}
	if r != nil {
		if r.windowEnd != nil && c.WindowEnd.Before(*r.windowEnd) {
			return nil, nil // an older candidate than the one held: ignore
		}
		if !reopenable(r) {
			return nil, nil // handed to the executor, or closed for good
		}
		if _, err := tx.Exec(ctx, marker+`update indexpilot.recommendations
   set candidate_id = $2, candidate_event_id = $3, formula_version = $4, max_improvement_pct = $5,
       estimated_size_bytes = $6, evidence = $7, candidate_window_end = $8, updated_at = now(),
       trace_parent = coalesce(nullif($9, ''), trace_parent)
 where id = $1`, r.id, c.CandidateID, candEventID, c.FormulaVersion, c.MaxImprovementPct,
			c.EstimatedSizeBytes, evidence, c.WindowEnd, traceParent(ctx)); err != nil {
			return nil, fmt.Errorf("refresh recommendation: %w", err)
		}
		r.candEventID = candEventID
	}
	o, err := g.evaluate(ctx, tx, c, r != nil && r.approvedAt != nil)
	if err != nil {
		return nil, err
	}
	if r == nil && o.state == StateRejected && c.RejectedReason == "" {
		// A candidate a rule rejects on first sight makes no
		// recommendation: the verdict and its typed reason go to
		// mutation_log only. One the scorer rejected with its numbers is
		// recorded, so it is listed next to the chosen ones.
		return []*events.IndexDecisionMade{g.decision(c, candEventID, events.VerdictRejected, o.reason, o.detail)},
			g.logRejection(ctx, tx, c, candEventID, o)
	}
	if r == nil {
		recID := events.RecommendationID(c.Target, c.Index)
		spec, err := json.Marshal(c.Index)
		if err != nil {
			return nil, bus.Permanent(err)
		}
		if _, err := tx.Exec(ctx, marker+`insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, detail,
   candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence, candidate_window_end,
   trace_parent)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, nullif($18, ''))`,
			recID, c.Target, c.Index.Key(), c.Index.Schema, c.Index.Table, spec, indexdef.Name(c.Index), o.state, string(o.reason), o.detail,
			c.CandidateID, candEventID, c.FormulaVersion, c.MaxImprovementPct, c.EstimatedSizeBytes, evidence, c.WindowEnd,
			traceParent(ctx)); err != nil {
			return nil, fmt.Errorf("insert recommendation: %w", err)
		}
		r = &rec{id: recID, candEventID: candEventID}
	} else if r.state == o.state && r.reason == string(o.reason) {
		return nil, nil // same verdict: the evidence was refreshed, nothing decided
	}
	if err := g.transition(ctx, tx, c, r, o); err != nil {
		return nil, err
	}
	out := []*events.IndexDecisionMade{g.decision(c, candEventID, verdictOf(o.state), o.reason, o.detail)}
	if o.state != StateRejected && o.state != StateHeld {
		if err := g.supersede(ctx, tx, c, r.id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// transition moves r to o, recording it in mutation_log with its lineage
// (the previous entry of the recommendation as parent).
func (g *Gatekeeper) transition(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, r *rec, o outcome) error {
	name := indexdef.Name(c.Index)
	from := r.state
	outcome := o.state
	if from != "" {
		outcome = from + "->" + o.state
	}
	ev := map[string]any{"candidate": c, "detail": o.detail, "from": from, "to": o.state}
	if o.passed != nil {
		ev["rules_passed"] = o.passed
	}
	if !o.retryAt.IsZero() {
		ev["retry_at"] = o.retryAt.UTC()
	}
	ddl := ""
	if o.state == StateApproved || o.state == StateProposed {
		ddl = indexdef.CreateSQL(c.Index, name, true)
	}
	id, err := metadata.AppendLog(ctx, tx, metadata.Entry{
		Stage: Name, Action: "recommend", Outcome: outcome, Target: c.Target,
		Schema: c.Index.Schema, Table: c.Index.Table, Fields: c.Index.Columns, IndexName: name, DDL: ddl,
		Reason: string(o.reason), Evidence: ev, EventID: r.candEventID, CandidateID: c.CandidateID,
		RecommendationID: r.id, ParentID: r.lastLogID,
	})
	if err != nil {
		return err
	}
	// With mutation_logging off no row was written: id is the parent (the
	// last row written) or 0, and the state change happens all the same.
	if _, err := tx.Exec(ctx, marker+`update indexpilot.recommendations
   set state = $2, reason = $3, detail = $4, last_log_id = nullif($5::bigint, 0), updated_at = now() where id = $1`,
		r.id, o.state, string(o.reason), o.detail, id); err != nil {
		return fmt.Errorf("update recommendation: %w", err)
	}
	r.state, r.reason = o.state, string(o.reason)
	if id != 0 {
		r.lastLogID = &id
	}
	return nil
}

// supersede closes the open recommendations (proposed, deferred) on the
// same table that the newer candidate makes redundant (indexdef.Supersedes):
// their keys a strict left prefix of the candidate's with the same
// predicate, or a partial index on the same leading keys whose predicate
// column the workload updates, next to the full candidate.
func (g *Gatekeeper) supersede(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, byID string) error {
	rows, err := tx.Query(ctx, marker+`select id::text, index_spec, evidence from indexpilot.recommendations
 where target = $1 and schema_name = $2 and table_name = $3 and state in ('proposed','deferred','held') and id <> $4
 for update`, c.Target, c.Index.Schema, c.Index.Table, byID)
	if err != nil {
		return fmt.Errorf("read open recommendations: %w", err)
	}
	type old struct {
		id   string
		spec events.IndexSpec
		cand events.IndexCandidateScored
	}
	olds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (old, error) {
		var o old
		err := r.Scan(&o.id, &o.spec, &o.cand)
		return o, err
	})
	if err != nil {
		return fmt.Errorf("read open recommendations: %w", err)
	}
	updated := func(col string) bool { return slices.Contains(c.UpdatedColumns, col) }
	for _, o := range olds {
		covers := indexdef.Supersedes(c.Index, o.spec, updated)
		if !covers && !servesAsWell(c, &o.cand) {
			continue
		}
		r, err := readRec(ctx, tx, "id = $1", o.id)
		if err != nil || r == nil {
			return err
		}
		detail := "covered by recommendation " + byID + " (" + strings.Join(c.Index.Columns, ", ") + ")"
		if !covers {
			detail = "the scorer now chooses recommendation " + byID + " (" + strings.Join(c.Index.Columns, ", ") +
				") for every statement this one served, at the same or a lower plan cost"
		} else if o.spec.Predicate != "" && c.Index.Predicate == "" {
			detail += ": a full index on the same leading keys, and the workload updates the column of this one's predicate " +
				o.spec.Predicate + " (each such update would stop being HOT)"
		}
		if err := g.transition(ctx, tx, &o.cand, r, outcome{state: StateSuperseded, reason: events.ReasonSuperseded,
			detail: detail}); err != nil {
			return err
		}
	}
	return nil
}

// servesAsWell says whether the newer candidate c is the scorer's other
// choice for everything old was for: the same predicate (a partial index
// is not displaced by a full one, that is Supersedes' case), every
// statement of old's evidence among c's, each at a plan cost after no
// higher than old's (1 % of slack for the planner's rounding). Two
// alternatives for one statement (t(a) and t(b, a) for "a = $1 and b =
// $2") then never both stay proposed: the scorer picks one per run, and
// the one it stopped emitting would stay open for good.
func servesAsWell(c, old *events.IndexCandidateScored) bool {
	if len(old.Statements) == 0 || c.Index.Predicate != old.Index.Predicate {
		return false
	}
	after := make(map[string]float64, len(c.Statements))
	for _, s := range c.Statements {
		after[s.QueryID] = s.CostAfter
	}
	for _, s := range old.Statements {
		a, ok := after[s.QueryID]
		if !ok || a > s.CostAfter*1.01 {
			return false
		}
	}
	return true
}

// evaluate runs the rules in order on c. approved says an operator approved
// it. Passing every rule in apply mode charges the rate-limit tokens and
// marks the approval time, in tx. The outcome names the rules passed.
func (g *Gatekeeper) evaluate(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, approved bool) (outcome, error) {
	passed := []string{}
	o, err := g.rules(ctx, tx, c, approved, func(rule string) { passed = append(passed, rule) })
	o.passed = passed
	return o, err
}

// rules is evaluate; pass is called with each rule's name as it passes.
func (g *Gatekeeper) rules(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, approved bool, pass func(string)) (outcome, error) {
	cfg := g.cfg
	gk := cfg.Gatekeeper
	now := g.deps.Clock()
	deferred := func(v policy.Verdict) (outcome, error) {
		return outcome{state: StateDeferred, reason: v.Reason, detail: v.Detail, retryAt: v.RetryAt}, nil
	}
	rejected := func(v policy.Verdict) (outcome, error) {
		return outcome{state: StateRejected, reason: v.Reason, detail: v.Detail}, nil
	}
	denied := func(d bypass.Denial) (outcome, error) {
		return outcome{state: StateDeferred, reason: d.Reason, detail: d.Detail()}, nil
	}
	// 1. target
	if _, ok := cfg.Target(c.Target); !ok {
		return outcome{state: StateRejected, reason: events.ReasonUnknownTarget, detail: fmt.Sprintf("target %q is not configured", c.Target)}, nil
	}
	pass("target")
	// 1b. rejected by the scorer (its write cost outweighs its read
	// saving): listed with the numbers.
	if c.RejectedReason != "" {
		return outcome{state: StateRejected, reason: events.Reason(c.RejectedReason), detail: c.RejectedDetail}, nil
	}
	// 1c. held back by the scorer's storage budget or a cap: listed with
	// the numbers, built only if an operator approves it anyway.
	if c.HeldReason != "" && !approved {
		return outcome{state: StateHeld, reason: events.Reason(c.HeldReason), detail: c.HeldDetail}, nil
	}
	pass("scorer_verdict")
	// 2. bypass: system, this stage, the feature
	if ok, d := g.bp.Allows(bypass.LevelStage, Name); !ok {
		return denied(d)
	}
	if ok, d := g.bp.Allows(bypass.LevelFeature, config.FeatureAutoIndexing); !ok {
		return denied(d)
	}
	pass("bypass")
	// 3. minimum benefit
	if v := policy.MinBenefit(c.MaxImprovementPct, cfg.Features.AutoIndexer.MinImprovementPct); !v.Pass {
		return rejected(v)
	}
	pass("min_benefit")
	// 4. blocklist
	blocked, err := g.blocked(ctx, tx, c)
	if err != nil {
		return outcome{}, err
	}
	if v := policy.Blocklist(queryIDs(c), blocked); !v.Pass {
		return rejected(v)
	}
	pass("blocklist")
	// 5-6. storage budget and write performance
	tf, sf, err := g.facts(ctx, tx, c)
	if err != nil {
		return outcome{}, err
	}
	if v := policy.Storage(c.EstimatedSizeBytes, sf, gk.Storage); !v.Pass {
		return rejected(v)
	}
	pass("storage_budget")
	if v := policy.Write(c.EstimatedSizeBytes, tf, gk.Write); !v.Pass {
		return rejected(v)
	}
	pass("write_performance")
	// 7. mode
	if cfg.Features.AutoIndexer.Mode != config.ModeApply {
		o := outcome{state: StateProposed, reason: events.ReasonAdvisoryMode}
		if c.Forecast != nil {
			o.detail = c.Forecast.Summary()
		}
		return o, nil
	}
	pass("mode")
	// 8. approval
	if v := policy.Approval(c.MaxImprovementPct, c.EstimatedSizeBytes, approved, gk.Approval); !v.Pass {
		return outcome{state: StateProposed, reason: v.Reason, detail: v.Detail}, nil
	}
	pass("approval")
	// 9. emergency stop, paused executor, DDL of the feature
	if ok, d := g.bp.AllowsDDL(config.FeatureAutoIndexing); !ok {
		return denied(d)
	}
	pass("ddl_allowed")
	// 9b. forecast peak: a build wanted for a recurring peak waits until
	// shortly before it (an operator's approval builds at once)
	if f := c.Forecast; f != nil && !approved {
		if v := policy.Forecast(f.BuildFrom, f.BuildBy, f.Summary(), gk.Window, now); !v.Pass {
			return deferred(v)
		}
		pass("forecast_hold")
	}
	// 10. maintenance window
	if v := policy.Window(gk.Window, now); !v.Pass {
		return deferred(v)
	}
	pass("maintenance_window")
	// 11. CPU throttle (cooldown, minimum delay between builds)
	var lastOverload, lastApproved *time.Time
	err = tx.QueryRow(ctx, marker+`select last_overload_at, last_approved_at from indexpilot.gate_state where target = $1`, c.Target).
		Scan(&lastOverload, &lastApproved)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return outcome{}, fmt.Errorf("read gate state: %w", err)
	}
	var pct float64
	var merr error
	if gk.CPU.Source != config.CPUSourceNone {
		pct, merr = g.measureCPU(ctx, c.Target)
		if merr == nil && pct >= gk.CPU.ThresholdPct {
			if _, err := tx.Exec(ctx, marker+`insert into indexpilot.gate_state (target, last_overload_at, last_cpu_pct)
values ($1, $2, $3) on conflict (target) do update set last_overload_at = excluded.last_overload_at,
       last_cpu_pct = excluded.last_cpu_pct, updated_at = now()`, c.Target, now, pct); err != nil {
				return outcome{}, fmt.Errorf("mark overload: %w", err)
			}
		}
	}
	if v := policy.CPU(pct, merr, lastOverload, lastApproved, now, gk.CPU); !v.Pass {
		return deferred(v)
	}
	pass("cpu_throttle")
	// 12. rate limits: charge one token of each bucket, or wait
	if v, err := g.charge(ctx, tx, c, now); err != nil || !v.Pass {
		if err != nil {
			return outcome{}, err
		}
		return deferred(v)
	}
	pass("rate_limits")
	if _, err := tx.Exec(ctx, marker+`insert into indexpilot.gate_state (target, last_approved_at, last_cpu_pct)
values ($1, $2, $3) on conflict (target) do update set last_approved_at = excluded.last_approved_at,
       last_cpu_pct = excluded.last_cpu_pct, updated_at = now()`, c.Target, now, pct); err != nil {
		return outcome{}, fmt.Errorf("mark approval: %w", err)
	}
	if approved {
		return outcome{state: StateApproved, reason: events.ReasonOperatorApproved}, nil
	}
	return outcome{state: StateApproved, reason: events.ReasonApplyMode}, nil
}

func (g *Gatekeeper) blocked(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored) ([]string, error) {
	rows, err := tx.Query(ctx, marker+`select query_fingerprint from indexpilot.blocklist where target = $1 and index_key = $2`,
		c.Target, c.Index.Key())
	if err != nil {
		return nil, fmt.Errorf("read blocklist: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read blocklist: %w", err)
	}
	return out, nil
}

// facts reads the candidate's table and the target's storage from the
// latest statistics and IndexPilot's own recommendations.
func (g *Gatekeeper) facts(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored) (policy.TableFacts, policy.StorageFacts, error) {
	var tf policy.TableFacts
	var sf policy.StorageFacts
	var ts events.TableStatObserved
	err := tx.QueryRow(ctx, marker+`select stats from indexpilot.table_stats where target = $1 and schema_name = $2 and table_name = $3`,
		c.Target, c.Index.Schema, c.Index.Table).Scan(&ts)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return tf, sf, fmt.Errorf("read table statistics: %w", err)
	default:
		tf = policy.TableFacts{Known: true, Indexes: len(ts.Indexes), AvgRowWidthBytes: ts.AvgRowWidthBytes,
			LiveRows: ts.LiveRows, Writes: ts.Inserts + ts.Updates - ts.HotUpdates + ts.Deletes}
	}
	rows, err := tx.Query(ctx, marker+`select index_name, state from indexpilot.recommendations
 where target = $1 and schema_name = $2 and table_name = $3 and state in ('approved','building','applied') and index_key <> $4`,
		c.Target, c.Index.Schema, c.Index.Table, c.Index.Key())
	if err != nil {
		return tf, sf, fmt.Errorf("read table recommendations: %w", err)
	}
	type named struct{ name, state string }
	ours, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (named, error) {
		var n named
		return n, r.Scan(&n.name, &n.state)
	})
	if err != nil {
		return tf, sf, fmt.Errorf("read table recommendations: %w", err)
	}
	inStats := map[string]int64{}
	for _, ix := range ts.Indexes {
		inStats[ix.Name] = ix.SizeBytes
	}
	for _, o := range ours {
		size, ok := inStats[o.name]
		if !ok {
			tf.PendingIndexes++
			continue
		}
		tf.OverheadPct += policy.EntryOverheadPct(size, tf)
	}
	err = tx.QueryRow(ctx, marker+`select
  coalesce((select sum((stats->>'total_size_bytes')::bigint) from indexpilot.table_stats where target = $1), 0),
  coalesce((select sum(coalesce(
      (select (i->>'size_bytes')::bigint
         from indexpilot.table_stats s, jsonb_array_elements(s.stats->'indexes') i
        where s.target = r.target and s.schema_name = r.schema_name and s.table_name = r.table_name
          and i->>'name' = r.index_name limit 1),
      r.estimated_size_bytes))
     from indexpilot.recommendations r
    where r.target = $1 and r.state in ('approved','building','applied') and r.index_key <> $2), 0)`,
		c.Target, c.Index.Key()).Scan(&sf.DatabaseBytes, &sf.IndexPilotBytes)
	if err != nil {
		return tf, sf, fmt.Errorf("read storage: %w", err)
	}
	return tf, sf, nil
}

// charge takes one token from the target's and the table's bucket, both
// or neither, under row locks so that several gatekeepers share them.
func (g *Gatekeeper) charge(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, now time.Time) (policy.Verdict, error) {
	rl := g.cfg.Gatekeeper.RateLimit
	type bucket struct {
		key    string
		cfg    config.Bucket
		reason events.Reason
		left   float64
	}
	bs := []*bucket{
		{key: "target:" + c.Target, cfg: rl.Target, reason: events.ReasonRateLimitedTarget},
		{key: "table:" + c.Target + ":" + c.Index.QualifiedTable(), cfg: rl.Table, reason: events.ReasonRateLimitedTable},
	}
	for _, b := range bs {
		if b.cfg.PerHour == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, marker+`insert into indexpilot.rate_buckets (bucket, tokens, updated_at) values ($1, $2, $3)
on conflict do nothing`, b.key, b.cfg.Burst, now); err != nil {
			return policy.Verdict{}, fmt.Errorf("create rate bucket: %w", err)
		}
		var tokens float64
		var last time.Time
		if err := tx.QueryRow(ctx, marker+`select tokens, updated_at from indexpilot.rate_buckets where bucket = $1 for update`, b.key).
			Scan(&tokens, &last); err != nil {
			return policy.Verdict{}, fmt.Errorf("read rate bucket: %w", err)
		}
		tokens = policy.Refill(tokens, last, now, b.cfg)
		left, ok, retry := policy.Take(tokens, now, b.cfg)
		if !ok {
			return policy.Verdict{Reason: b.reason, RetryAt: retry,
				Detail: fmt.Sprintf("%s has %.2f tokens (burst %.0f, %.1f per hour); next token at %s", b.key, tokens, b.cfg.Burst, b.cfg.PerHour, retry.UTC().Format(time.RFC3339))}, nil
		}
		b.left = left
	}
	for _, b := range bs {
		if b.cfg.PerHour == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, marker+`update indexpilot.rate_buckets set tokens = $2, updated_at = $3 where bucket = $1`, b.key, b.left, now); err != nil {
			return policy.Verdict{}, fmt.Errorf("charge rate bucket: %w", err)
		}
	}
	return policy.OK, nil
}

// logRejection records the rejection of a candidate that has no
// recommendation.
func (g *Gatekeeper) logRejection(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, candEventID string, o outcome) error {
	_, err := metadata.AppendLog(ctx, tx, metadata.Entry{
		Stage: Name, Action: "decide", Outcome: StateRejected, Target: c.Target,
		Schema: c.Index.Schema, Table: c.Index.Table, Fields: c.Index.Columns, IndexName: indexdef.Name(c.Index),
		Reason: string(o.reason), Evidence: map[string]any{"detail": o.detail, "candidate": c, "rules_passed": o.passed},
		EventID: candEventID, CandidateID: c.CandidateID, RecommendationID: events.RecommendationID(c.Target, c.Index),
	})
	return err
}
