package scorer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/candidates"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// What-if methods named in the evidence.
const (
	// WhatIfHypoPG: every cost comes from the planner with HypoPG
	// hypothetical indexes.
	WhatIfHypoPG = "hypopg"
	// WhatIfStats: HypoPG is not installed in the target; the cost before
	// is the planner's, the cost after comes from the pg_stats model (see
	// docs/scorer.md).
	WhatIfStats = "pg_stats"
)

// statement is one workload statement over the window.
type statement struct {
	QueryID string
	Query   string
	Calls   int64
	TotalMs float64
	// Rows is the rows the calls returned (0 when unknown); Rows/Calls
	// prices a LIMIT parameter.
	Rows int64
	// HistorySource is the WindowSource of the statement's latest history
	// window in the scoring window ("" when it has none: deltas only), and
	// HistoryStart and HistoryEnd its span; see window.
	HistorySource            string
	HistoryStart, HistoryEnd time.Time
	// Unfinished: some of its windows are pg_stat_activity samples of runs
	// that had not finished (their time is a lower bound).
	Unfinished bool
	// ParamSamples are observed parameter values, one inner slice per
	// execution in $1..$n order, newest first (at most maxParamSamples).
	// They are bound, never spliced into the text.
	ParamSamples [][]string
	parsed       *sqlparse.Statement
	tables       map[string]bool // "schema.table" of every resolved table
	// forecast is the statement's recurring peak, if it has one; averaged
	// says the window did not hold it and its numbers are its history's,
	// averaged down to the window (withForecasted).
	forecast *peakForecast
	averaged bool
	// refs holds, per "schema.table", every column the statement filters,
	// joins, sorts or groups on (expressions included). nil means "any
	// column of its tables" (unit tests).
	refs map[string]map[string]bool
}

// uses reports whether st could use an index led by column on table: it
// is on the table and references the column. An index on a column the
// statement never mentions cannot change its plan, so the selection does
// not ask the planner about that pair.
func (st *statement) uses(table, column string) bool {
	if !st.tables[table] {
		return false
	}
	if st.refs == nil {
		return true
	}
	return st.refs[table][column]
}

func collectRefs(p *sqlparse.Statement) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, u := range p.Tables {
		if u.Table.Schema == "" {
			continue
		}
		key := u.Table.Schema + "." + u.Table.Name
		m := out[key]
		if m == nil {
			m = map[string]bool{}
			out[key] = m
		}
		for _, list := range [][]string{u.Equality, u.Range, u.IsNull, u.IsNotNull, u.LikePrefix, u.JoinKeys, u.GroupBy} {
			for _, c := range list {
				m[c] = true
			}
		}
		for _, o := range u.OrderBy {
			m[o.Column] = true
		}
		for _, x := range u.Expressions {
			for _, c := range x.Columns {
				m[c] = true
			}
		}
	}
	return out
}

// Options tune one scoring run. The zero value scores the configured
// window with the configured formula.
type Options struct {
	// FormulaVersion overrides scorer.formula_version ("" keeps it).
	FormulaVersion string
	// Since, when set, starts the workload window there instead of at
	// window end minus scorer.window.
	Since time.Time
	// Until, when set, ends the workload window there instead of at the
	// latest observation.
	Until time.Time
	// Retained, when set, is the workload to score instead of the stored
	// statistics (replay from a Kafka offset): exactly its events, Since
	// and Until still applying. Removal proposals still come from the
	// stored index usage.
	Retained *Retained
	// GenericPlans prices every statement by its generic plan instead of
	// representative values (for comparisons: scorer-bench).
	GenericPlans bool
}

// Report is what one scoring run of a target found: the counts behind the
// candidates as well as the candidates and removal proposals themselves.
type Report struct {
	Target         string    `json:"target"`
	FormulaVersion string    `json:"formula_version"`
	WhatIfMethod   string    `json:"what_if_method"`
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	// Statements is the number of distinct statements in the window;
	// Unparsed those the parser could not read or does not analyse
	// (INSERT, utility statements); NotEvaluable those the planner could
	// not plan (e.g. a parameter whose type cannot be inferred).
	Statements   int `json:"statements"`
	Unparsed     int `json:"unparsed"`
	NotEvaluable int `json:"not_evaluable"`
	// Generated is the number of candidates generated; Proven those that
	// cut some statement's cost by the minimum; Chosen the selected set.
	Generated int                            `json:"generated"`
	Proven    int                            `json:"proven"`
	Chosen    []*events.IndexCandidateScored `json:"chosen"`
	Removals  []*events.IndexRemovalProposed `json:"removals"`
	// Held are candidates that pay for themselves but a budget or a cap
	// held back (HeldReason set); they are published after the chosen
	// ones and the gatekeeper lists them in state held. Rejected are candidates
	// whose write and build charges outweigh their read saving, with the
	// numbers (the other side of the Pareto view); they are not published.
	Held     []*events.IndexCandidateScored `json:"held"`
	Rejected []*events.IndexCandidateScored `json:"rejected"`
	// StorageBudgetBytes is the budget the run applied; ChosenBytes the
	// estimated size of the chosen set.
	StorageBudgetBytes int64 `json:"storage_budget_bytes"`
	ChosenBytes        int64 `json:"chosen_bytes"`
	// WhatIfCalls is the number of planner evaluations (cache misses);
	// CacheHits the answers the cache gave.
	WhatIfCalls int           `json:"what_if_calls"`
	CacheHits   uint64        `json:"cache_hits"`
	CacheMisses uint64        `json:"cache_misses"`
	Duration    time.Duration `json:"duration_ns"`
	// WorkloadCostBefore and WorkloadCostAfter are Σ calls × plan cost of
	// the evaluable statements without and with the chosen set.
	WorkloadCostBefore float64 `json:"workload_cost_before"`
	WorkloadCostAfter  float64 `json:"workload_cost_after"`
	// ValuePlans is the number of custom plans (one per value set) the
	// what-if calls ran; Pricing counts the evaluable statements by the
	// method that priced them (custom:qualstats, custom:app,
	// custom:pg_stats, custom:observed, generic).
	ValuePlans int            `json:"value_plans,omitempty"`
	Pricing    map[string]int `json:"pricing,omitempty"`
	// PricingSkipped says why a source of values (pg_qualstats, pg_stats)
	// gave none in this run: the statements were priced without it.
	PricingSkipped []string `json:"pricing_skipped,omitempty"`
	// Forecasts are the statements with a recurring daily or weekly peak
	// (predictive indexing), by query id.
	Forecasts []Forecast `json:"forecasts,omitempty"`
	// updated is, per "schema.table", the columns the workload's UPDATEs
	// set (for the removal rules).
	updated map[string]map[string]bool
}

// Payloads returns the report's candidates then removals as events.
func (r *Report) Payloads() []events.Payload {
	out := make([]events.Payload, 0, len(r.Chosen)+len(r.Held)+len(r.Removals))
	for _, c := range r.Candidates() {
		out = append(out, c)
	}
	for _, rm := range r.Removals {
		out = append(out, rm)
	}
	return out
}

// Candidates is what a run publishes for the gatekeeper: the chosen set,
// the held candidates (listed in state held) and those rejected because
// their charges outweigh their read saving (listed as rejected, with the
// numbers).
func (r *Report) Candidates() []*events.IndexCandidateScored {
	out := append(append(make([]*events.IndexCandidateScored, 0, len(r.Chosen)+len(r.Held)+len(r.Rejected)), r.Chosen...), r.Held...)
	for _, c := range r.Rejected {
		if c.RejectedReason != "" {
			out = append(out, c)
		}
	}
	return out
}

// EachCandidate calls fn with every candidate the run priced to the end —
// chosen, held, rejected, in that order — and its outcome ("chosen",
// "held: <reason>", "rejected"): the Pareto view's rows.
func (r *Report) EachCandidate(fn func(c *events.IndexCandidateScored, outcome string)) {
	for _, c := range r.Chosen {
		fn(c, "chosen")
	}
	for _, c := range r.Held {
		fn(c, "held: "+c.HeldReason)
	}
	for _, c := range r.Rejected {
		fn(c, "rejected")
	}
}

// loadWorkload aggregates the target's deltas over the window that ends at
// its latest observation (not at now, so a replay scores the same), one
// row per statement in query-id order. The text kept is the latest seen
// (from pg_stat_statements when it has the statement). Samples of running
// statements (pg_stat_activity) give the calls and time of a statement
// only when pg_stat_statements has none in the window (it never finished):
// a run that finished is in both.
func (s *Scorer) loadWorkload(ctx context.Context, target string, opts Options) ([]*statement, time.Time, time.Time, error) {
	if opts.Retained != nil {
		stmts, start, end := s.retainedWorkload(target, opts.Retained, opts)
		return stmts, start, end, nil
	}
	var end *time.Time
	if err := s.deps.Control.QueryRow(ctx, `/* indexpilot:scorer */
select max(window_end) from indexpilot.workload_stats where target = $1 and ($2::timestamptz is null or window_end <= $2)`,
		target, nullTime(opts.Until)).Scan(&end); err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("read workload window of %s: %w", target, err)
	}
	if end == nil {
		return nil, time.Time{}, time.Time{}, nil
	}
	start := end.Add(-s.deps.Config.Scorer.Window)
	if !opts.Since.IsZero() {
		start = opts.Since
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select query_id, (array_agg(query order by window_source = 'activity', window_end desc))[1],
       case when bool_and(window_source = 'activity') then sum(calls)
            else sum(calls) filter (where window_source <> 'activity') end::bigint,
       case when bool_and(window_source = 'activity') then sum(total_exec_time_ms)
            else sum(total_exec_time_ms) filter (where window_source <> 'activity') end,
       coalesce((array_agg(window_source order by window_end desc) filter (where window_source like 'history:%'))[1], ''),
       (array_agg(window_start order by window_end desc) filter (where window_source like 'history:%'))[1],
       max(window_end) filter (where window_source like 'history:%'),
       bool_or(unfinished),
       case when bool_and(window_source = 'activity') then sum(rows)
            else sum(rows) filter (where window_source <> 'activity') end::bigint,
       coalesce(jsonb_agg(param_samples order by window_end desc) filter (where param_samples is not null), '[]')
  from indexpilot.workload_stats
 where target = $1 and window_end > $2 and window_end <= $3
 group by query_id
having case when bool_and(window_source = 'activity') then sum(calls)
            else sum(calls) filter (where window_source <> 'activity') end >= $4
 order by query_id`, target, start, *end, s.deps.Config.Scorer.MinCalls)
	if err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("read workload of %s: %w", target, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*statement, error) {
		st := &statement{}
		var hStart, hEnd *time.Time
		var samples [][][]string
		if err := r.Scan(&st.QueryID, &st.Query, &st.Calls, &st.TotalMs, &st.HistorySource, &hStart, &hEnd,
			&st.Unfinished, &st.Rows, &samples); err != nil {
			return nil, err
		}
		if hStart != nil && hEnd != nil {
			st.HistoryStart, st.HistoryEnd = hStart.UTC(), hEnd.UTC()
		}
		for _, w := range samples {
			st.addParamSamples(w)
		}
		return st, nil
	})
	if err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("read workload of %s: %w", target, err)
	}
	// A history window's calls span from its start: the window does too,
	// so that rates (time saved per hour, the build's share) are honest.
	for _, st := range out {
		if st.HistorySource != "" && st.HistoryStart.Before(start) {
			start = st.HistoryStart
		}
	}
	return out, start.UTC(), end.UTC(), nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ScoreTarget computes the candidates and removal proposals of one target
// from its stored workload and statistics, with the configured formula.
func (s *Scorer) ScoreTarget(ctx context.Context, target string) ([]events.Payload, error) {
	r, err := s.Score(ctx, target, Options{})
	if err != nil {
		return nil, err
	}
	return r.Payloads(), nil
}

// Score runs one scoring pass over target: parse, generate, price with the
// planner, choose a set greedily; then look for indexes to remove. It
// publishes nothing. The same stored events give the same report (except
// Duration and the cache counters).
func (s *Scorer) Score(ctx context.Context, target string, opts Options) (*Report, error) {
	began := time.Now()
	fv := opts.FormulaVersion
	if fv == "" {
		fv = s.deps.Config.Scorer.FormulaVersion
	}
	if _, ok := formulas[fv]; !ok {
		return nil, fmt.Errorf("score %s: unknown formula version %q", target, fv)
	}
	rep := &Report{Target: target, FormulaVersion: fv, WhatIfMethod: WhatIfHypoPG}
	stmts, start, windowEnd, err := s.loadWorkload(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	rep.WindowStart, rep.WindowEnd, rep.Statements = start, windowEnd, len(stmts)
	fcs, err := s.forecasts(ctx, target, windowEnd, opts)
	if err != nil {
		return nil, err
	}
	for _, id := range sortedKeys(fcs) {
		rep.Forecasts = append(rep.Forecasts, fcs[id].report())
	}
	if len(fcs) > 0 {
		if stmts, err = s.withForecasted(ctx, target, stmts, fcs, windowEnd.Sub(start)); err != nil {
			return nil, err
		}
	}
	pool, err := s.deps.Targets.Pool(ctx, target)
	if err != nil {
		return nil, err
	}
	// The expression_checks feature (bypass level "feature"): when it is
	// off, the per-tenant field activation in expression_profile is not
	// consulted and no expression candidate is generated.
	exprChecks, _ := s.bp.Allows(bypass.LevelFeature, config.FeatureExpressionChecks)
	g, err := s.loadGenome(ctx, target, exprChecks)
	if err != nil {
		return nil, err
	}
	if len(stmts) > 0 {
		if err := s.scoreWorkload(ctx, pool, target, fv, stmts, g, rep, opts); err != nil {
			return nil, err
		}
	}
	removals, err := s.removals(ctx, pool, target, fv, rep.updated)
	if err != nil {
		return nil, err
	}
	rep.Removals = removals
	rep.Duration = time.Since(began)
	return rep, nil
}

func (s *Scorer) scoreWorkload(ctx context.Context, pool *pgxpool.Pool, target, fv string, stmts []*statement, g *genomeRules, rep *Report, opts Options) error {
	cat, err := loadCatalog(ctx, pool)
	if err != nil {
		return err
	}
	var inputs []candidates.Input
	var parsed []*statement
	for _, st := range stmts {
		p, err := sqlparse.Extract(st.Query, cat)
		if err != nil {
			rep.Unparsed++
			continue
		}
		cat.resolve(p)
		st.parsed = p
		st.tables = map[string]bool{}
		for _, u := range p.Tables {
			if u.Table.Schema != "" {
				st.tables[u.Table.Schema+"."+u.Table.Name] = true
			}
		}
		st.refs = collectRefs(p)
		parsed = append(parsed, st)
		inputs = append(inputs, candidates.Input{QueryID: st.QueryID, Stmt: p})
	}
	parsed, inputs, err = s.withoutUnreadable(ctx, pool, target, parsed, inputs)
	if err != nil {
		return err
	}
	existing := map[string][]indexdef.Existing{}
	for _, in := range inputs {
		for _, u := range in.Stmt.Tables {
			key := u.Table.Schema + "." + u.Table.Name
			if _, done := existing[key]; done || u.Table.Schema == "" {
				continue
			}
			list, err := indexdef.Load(ctx, pool, u.Table.Schema, u.Table.Name)
			if err != nil {
				return err
			}
			existing[key] = list
		}
	}
	cands := candidates.Generate(inputs, existing, candidates.Options{
		MaxColumns: s.deps.Config.Scorer.MaxColumns, TenantColumn: g.tenantColumn, Skip: g.skip,
		NoExpressions: !g.expressions,
	})
	// The executor builds a partitioned table's index per partition from
	// its plain columns: no expression or partial candidates there.
	cands = slices.DeleteFunc(cands, func(c candidates.Candidate) bool {
		return (len(c.Spec.Expressions) > 0 || c.Spec.Predicate != "") && cat.partitioned[c.Spec.QualifiedTable()]
	})
	rep.Generated = len(cands)

	engine, err := whatif.New(pool, whatif.Options{})
	if err != nil {
		return err
	}
	sess, err := engine.Acquire(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	// Representative values: each statement is priced by the weighted
	// mean of custom plans over its value sets, or by its generic plan.
	// The app-fed calls of the window split the benefit by tenant and,
	// with a tenant column, price its parameter with the tenants' ids.
	tenants := &tenantData{values: map[string]*whatif.TenantValues{}}
	if tenants.app, err = s.loadAppCalls(ctx, target, rep.WindowStart, rep.WindowEnd); err != nil {
		return err
	}
	pricing := make([]whatif.Statement, len(parsed))
	for i, st := range parsed {
		pricing[i] = whatif.Statement{QueryID: st.QueryID, Fingerprint: st.parsed.Fingerprint, Query: st.Query, Samples: st.ParamSamples,
			TenantColumn: g.tenantColumn}
		if st.Calls > 0 && st.Rows > 0 {
			pricing[i].RowsPerCall = float64(st.Rows) / float64(st.Calls)
		}
		if g.tenantColumn != "" {
			pricing[i].AppTenants = tenants.appTenants(st)
		}
	}
	if !opts.GenericPlans {
		prices, err := sess.Price(ctx, pricing)
		if err != nil {
			return err
		}
		rep.PricingSkipped = sess.SkippedSources()
		for _, why := range rep.PricingSkipped {
			s.deps.Logger.Warn("a source of parameter values gave none; statements priced without it", "target", target, "reason", why)
		}
		for i, p := range prices {
			if p != nil && p.Tenants != nil {
				tenants.values[parsed[i].QueryID] = p.Tenants
			}
		}
	}
	sel := &selector{
		s: s, ctx: ctx, sess: sess, formula: formulas[fv], stmts: parsed,
		tables: map[string]*tableInfo{}, pool: pool, target: target, windowEnd: rep.WindowEnd,
		window: rep.WindowEnd.Sub(rep.WindowStart), notEval: map[string]bool{}, retained: opts.Retained,
		writeStmts: writeStatements(stmts, cat), forecasts: map[string]*peakForecast{},
	}
	for _, st := range stmts {
		if st.forecast != nil {
			sel.forecasts[st.QueryID] = st.forecast
		}
	}
	serverTxns, known, err := sel.serverWriteTxns()
	if err != nil {
		return err
	}
	sel.writeTxns, sel.walBasis = windowWriteTxns(writeTxns(sel.writeStmts), serverTxns, known)
	sel.updated = updatedColumns(sel.writeStmts)
	rep.updated = sel.updated
	if !sess.Available() {
		rep.WhatIfMethod = WhatIfStats
		sel.stats = true
	}
	if err := sel.loadBudget(); err != nil {
		return err
	}
	if opts.Retained == nil {
		if sel.inFlight, err = s.inFlight(ctx, target); err != nil {
			return err
		}
	}
	chosen, err := sel.choose(cands)
	if err != nil {
		return err
	}
	rep.Proven = sel.proven
	rep.NotEvaluable = len(sel.notEval)
	rep.StorageBudgetBytes = sel.budget
	rep.Chosen = s.payloads(target, fv, rep.WhatIfMethod, rep.WindowEnd, chosen, sel)
	rep.Held = s.payloads(target, fv, rep.WhatIfMethod, rep.WindowEnd, sel.held, sel)
	rep.Rejected = s.payloads(target, fv, rep.WhatIfMethod, rep.WindowEnd, sel.rejected, sel)
	byID := make(map[string]*statement, len(parsed))
	for _, st := range parsed {
		byID[st.QueryID] = st
	}
	rep.EachCandidate(func(c *events.IndexCandidateScored, _ string) {
		for i := range c.Statements {
			if st := byID[c.Statements[i].QueryID]; st != nil {
				c.Statements[i].PricingMethod, c.Statements[i].ValueSets = engine.PricingMethod(st.parsed.Fingerprint, st.Query)
			}
		}
		tenants.attributeTenants(c, byID)
	})
	for _, c := range chosen {
		rep.ChosenBytes += c.sizeBytes
	}
	rep.WorkloadCostBefore, rep.WorkloadCostAfter, err = sel.workloadCost(chosen)
	if err != nil {
		return err
	}
	st := sess.Stats()
	rep.WhatIfCalls = st.Evaluations
	rep.ValuePlans = engine.ValuePlans()
	rep.Pricing = map[string]int{}
	for _, p := range parsed {
		if !sel.notEval[p.QueryID] {
			m, _ := engine.PricingMethod(p.parsed.Fingerprint, p.Query)
			rep.Pricing[m]++
		}
	}
	cs := engine.CacheStats()
	rep.CacheHits, rep.CacheMisses = cs.Hits, cs.Misses
	s.metrics.recordWhatIf(ctx, rep)
	s.deps.Logger.Info("scored workload", "target", target, "formula", fv, "statements", len(stmts),
		"unparsed", rep.Unparsed, "not_evaluable", rep.NotEvaluable, "candidates", len(cands),
		"proven", rep.Proven, "chosen", len(chosen), "what_if_method", rep.WhatIfMethod,
		"what_if_calls", rep.WhatIfCalls, "value_plans", rep.ValuePlans, "pricing", rep.Pricing, "cache_hits", rep.CacheHits)
	return nil
}

func (s *Scorer) payloads(target, fv, method string, windowEnd time.Time, chosen []*scored, sel *selector) []*events.IndexCandidateScored {
	out := make([]*events.IndexCandidateScored, 0, len(chosen))
	hours := sel.window.Hours()
	for _, sc := range chosen {
		c := &events.IndexCandidateScored{
			Target: target, CandidateID: events.CandidateID(target, sc.cand.Spec, fv), Index: sc.cand.Spec,
			FormulaVersion: fv, WhatIfMethod: method, WindowEnd: windowEnd.Truncate(time.Microsecond),
			MaxImprovementPct: sc.maxPct, EstimatedSizeBytes: sc.sizeBytes, Statements: sc.evidence,
			HeldReason: sc.held, HeldDetail: sc.heldDetail, UpdatedColumns: sortedKeys(sel.updated[sc.cand.Spec.QualifiedTable()]),
		}
		if sc.supersededBy != "" {
			c.Notes = append(c.Notes, "superseded in this run by "+sc.supersededBy)
		}
		c.Forecast = sel.forecastFor(sc, fv)
		if fv != "v1" {
			c.BenefitCost, c.WriteOverheadCost, c.BuildCost = round2(sc.benefit), round2(sc.write), round2(sc.build)
			c.NetBenefit = round2(sc.benefit - sc.write - sc.build)
			if hours > 0 {
				var saved float64
				for _, ev := range sc.evidence {
					saved += float64(ev.Calls) * ev.MeanExecTimeMs * ev.ImprovementPct / 100
				}
				c.TimeSavedMsPerHour = round2(saved / hours)
			}
			c.WALBytesPerWriteTxn, c.HotUpdatesLost, c.WALBasis = round2(sc.wal.perTxn), round2(sc.wal.hotLost), sel.walBasis
			c.WALImageBytesPerWriteTxn = round2(sc.wal.fpiPerTxn)
			if sc.wal.hotLost > 0 {
				c.Notes = append(c.Notes, fmt.Sprintf("UPDATEs of %s set a column of this index: about %.0f updates in the window that are HOT today would not be",
					sc.cand.Spec.Table, c.HotUpdatesLost))
			}
			if sel.stats {
				c.Notes = append(c.Notes, "hypopg is not installed in the target: costs after are estimated from pg_stats, not planned")
			}
		}
		if sc.overcharged {
			c.RejectedReason, c.RejectedDetail = string(events.ReasonWriteOverhead), overchargedDetail(c)
		}
		out = append(out, c)
	}
	return out
}

// overchargedDetail is the sentence recorded for a candidate rejected for
// its write overhead. It is written from c's evidence fields, the rounded
// numbers the evidence line shows (recommendations --evidence, explain),
// so that the two always show the same figures. Only a formula that
// charges (not v1) rejects a candidate, and it sets those fields.
func overchargedDetail(c *events.IndexCandidateScored) string {
	return fmt.Sprintf("its read saving %.0f (plan-cost units over the window) is below its write cost %.0f "+
		"(%.1f WAL bytes %s; %.0f updates in the window would stop being HOT) plus build cost %.0f",
		c.BenefitCost, c.WriteOverheadCost, c.WALBytesPerWriteTxn, events.WALUnit(c.WALBasis), c.HotUpdatesLost, c.BuildCost)
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// isNotEvaluable reports the what-if errors that concern one statement or
// index, not the session.
func isNotEvaluable(err error) bool {
	return errors.Is(err, whatif.ErrNotEvaluable) || errors.Is(err, whatif.ErrRefused) ||
		errors.Is(err, whatif.ErrInvalidIndex) || errors.Is(err, whatif.ErrTimeout)
}

// catalog is a target's user tables and columns plus its search_path, for
// attributing unqualified columns and resolving unqualified table names.
type catalog struct {
	path    []string
	columns map[string]map[string]bool // "schema.table" -> columns
	// partitioned: "schema.table" of partitioned parents.
	partitioned map[string]bool
	// views: "schema.view" -> definition (views.go).
	views map[string]viewDef
}

func loadCatalog(ctx context.Context, pool *pgxpool.Pool) (*catalog, error) {
	c := &catalog{columns: map[string]map[string]bool{}, partitioned: map[string]bool{}}
	if err := pool.QueryRow(ctx, "/* indexpilot:scorer */ select current_schemas(false)::text[]").Scan(&c.path); err != nil {
		return nil, fmt.Errorf("read search_path: %w", err)
	}
	rows, err := pool.Query(ctx, `/* indexpilot:scorer */
select n.nspname, c.relname, a.attname, c.relkind = 'p'
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'm') and a.attnum > 0 and not a.attisdropped
   and n.nspname not in ('pg_catalog', 'information_schema', 'indexpilot') and n.nspname not like 'pg_toast%'`)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, col string
		var parted bool
		if err := rows.Scan(&schema, &table, &col, &parted); err != nil {
			return nil, fmt.Errorf("read catalog: %w", err)
		}
		k := schema + "." + table
		if parted {
			c.partitioned[k] = true
		}
		if c.columns[k] == nil {
			c.columns[k] = map[string]bool{}
		}
		c.columns[k][col] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return c, c.loadViews(ctx, pool)
}

// schemaOf resolves a table reference as the target would: a qualified
// name as is, an unqualified one through search_path. "" when unknown.
func (c *catalog) schemaOf(t sqlparse.TableRef) string {
	if t.Schema != "" {
		if _, ok := c.columns[t.Schema+"."+t.Name]; ok {
			return t.Schema
		}
		return ""
	}
	for _, s := range c.path {
		if _, ok := c.columns[s+"."+t.Name]; ok {
			return s
		}
	}
	return ""
}

// ColumnTable implements sqlparse.Catalog.
func (c *catalog) ColumnTable(cands []sqlparse.TableRef, column string) (sqlparse.TableRef, bool) {
	var found sqlparse.TableRef
	n := 0
	for _, t := range cands {
		s := c.schemaOf(t)
		if s != "" && c.columns[s+"."+t.Name][column] {
			found = t
			n++
		}
	}
	return found, n == 1
}

// resolve fills in the schema of every table of p, leaving "" for names
// that are not tables of the target (the candidate generator skips them).
func (c *catalog) resolve(p *sqlparse.Statement) {
	for i := range p.Tables {
		p.Tables[i].Table.Schema = c.schemaOf(p.Tables[i].Table)
	}
}

// sortScored orders a chosen set by index key, the order events go out in.
func sortScored(list []*scored) {
	sort.Slice(list, func(i, j int) bool { return list[i].cand.Spec.Key() < list[j].cand.Spec.Key() })
}

// inFlight reads the target's recommendations approved or being built:
// their indexes will exist, so a run prices the workload as if they did.
func (s *Scorer) inFlight(ctx context.Context, target string) ([]events.IndexSpec, error) {
	if s.deps.Control == nil {
		return nil, nil
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select index_spec from indexpilot.recommendations where target = $1 and state in ('approved', 'building') order by index_key`, target)
	if err != nil {
		return nil, fmt.Errorf("read the indexes being built on %s: %w", target, err)
	}
	specs, err := pgx.CollectRows(rows, pgx.RowTo[events.IndexSpec])
	if err != nil {
		return nil, fmt.Errorf("read the indexes being built on %s: %w", target, err)
	}
	return specs, nil
}
