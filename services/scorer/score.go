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
	parsed  *sqlparse.Statement
	tables  map[string]bool // "schema.table" of every resolved table
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
}

// Payloads returns the report's candidates then removals as events.
func (r *Report) Payloads() []events.Payload {
	out := make([]events.Payload, 0, len(r.Chosen)+len(r.Removals))
	for _, c := range r.Chosen {
		out = append(out, c)
	}
	for _, rm := range r.Removals {
		out = append(out, rm)
	}
	return out
}

// loadWorkload aggregates the target's deltas over the window that ends at
// its latest observation (not at now, so a replay scores the same), one
// row per statement in query-id order. The text kept is the latest seen.
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
select query_id, (array_agg(query order by window_end desc))[1], sum(calls)::bigint, sum(total_exec_time_ms)
  from indexpilot.workload_stats
 where target = $1 and window_end > $2 and window_end <= $3
 group by query_id
having sum(calls) >= $4
 order by query_id`, target, start, *end, s.deps.Config.Scorer.MinCalls)
	if err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("read workload of %s: %w", target, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*statement, error) {
		st := &statement{}
		return st, r.Scan(&st.QueryID, &st.Query, &st.Calls, &st.TotalMs)
	})
	if err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("read workload of %s: %w", target, err)
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
	removals, err := s.removals(ctx, pool, target, fv)
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
	sel := &selector{
		s: s, ctx: ctx, sess: sess, formula: formulas[fv], stmts: parsed,
		tables: map[string]*tableInfo{}, pool: pool, target: target, windowEnd: rep.WindowEnd,
		window: rep.WindowEnd.Sub(rep.WindowStart), notEval: map[string]bool{}, retained: opts.Retained,
	}
	if !sess.Available() {
		rep.WhatIfMethod = WhatIfStats
		sel.stats = true
	}
	if err := sel.loadBudget(); err != nil {
		return err
	}
	chosen, err := sel.choose(cands)
	if err != nil {
		return err
	}
	rep.Proven = sel.proven
	rep.NotEvaluable = len(sel.notEval)
	rep.StorageBudgetBytes = sel.budget
	rep.Chosen = s.payloads(target, fv, rep.WhatIfMethod, rep.WindowEnd, chosen, sel)
	for _, c := range chosen {
		rep.ChosenBytes += c.sizeBytes
	}
	rep.WorkloadCostBefore, rep.WorkloadCostAfter, err = sel.workloadCost(chosen)
	if err != nil {
		return err
	}
	st := sess.Stats()
	rep.WhatIfCalls = st.Evaluations
	cs := engine.CacheStats()
	rep.CacheHits, rep.CacheMisses = cs.Hits, cs.Misses
	s.metrics.recordWhatIf(ctx, rep)
	s.deps.Logger.Info("scored workload", "target", target, "formula", fv, "statements", len(stmts),
		"unparsed", rep.Unparsed, "not_evaluable", rep.NotEvaluable, "candidates", len(cands),
		"proven", rep.Proven, "chosen", len(chosen), "what_if_method", rep.WhatIfMethod,
		"what_if_calls", rep.WhatIfCalls, "cache_hits", rep.CacheHits)
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
		}
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
			if sel.stats {
				c.Notes = append(c.Notes, "hypopg is not installed in the target: costs after are estimated from pg_stats, not planned")
			}
		}
		out = append(out, c)
	}
	return out
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
	return c, rows.Err()
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
