package scorer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/candidates"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// formula is what one formula version charges against a candidate's
// benefit. Every version applies the same constraints (minimum gain,
// budget, counts, regression guard); they differ in the price.
type formula struct {
	writeOverhead bool
	buildCost     bool
}

// formulas are the implemented versions (config.ScorerFormulas).
var formulas = map[string]formula{
	"v1": {},
	"v2": {writeOverhead: true, buildCost: true},
}

// Planner cost constants of the write and build models, PostgreSQL's
// defaults (seq_page_cost 1, random_page_cost 4, cpu_tuple_cost 0.01,
// cpu_index_tuple_cost 0.005, cpu_operator_cost 0.0025).
const (
	seqPageCost       = 1.0
	randomPageCost    = 4.0
	cpuTupleCost      = 0.01
	cpuIndexTupleCost = 0.005
	cpuOperatorCost   = 0.0025
	// rowWriteCost is the cost units charged for writing one row's worth
	// of bytes into an index: one random page.
	rowWriteCost = randomPageCost
	// heapTupleOverhead and indexTupleOverhead are the per-row header and
	// line-pointer bytes of a heap tuple and a btree entry.
	heapTupleOverhead  = 28
	indexTupleOverhead = 12
	// defaultNDistinct is PostgreSQL's guess for a column without
	// statistics (DEFAULT_NUM_DISTINCT).
	defaultNDistinct = 200
	// rangeSelectivity is PostgreSQL's default for an inequality
	// (DEFAULT_INEQ_SEL).
	rangeSelectivity = 1.0 / 3
)

// tableInfo is what the write, build and statistics models need of one
// table.
type tableInfo struct {
	pages, tuples float64
	rowWidth      float64
	width         map[string]float64 // avg_width per column
	nDistinct     map[string]float64 // distinct values per column (absolute)
	// writes is the number of index-maintaining writes (inserts and
	// non-HOT updates) observed in one scoring window, from the
	// collector's table statistics; 0 when unknown.
	writes float64
}

// scored is a candidate with its evidence and its price.
type scored struct {
	cand      candidates.Candidate
	evidence  []events.StatementEvidence
	motivates map[string]bool
	maxPct    float64
	sizeBytes int64
	// benefit is Σ calls × cost saving over the window, marginal to the
	// indexes chosen before it; write and build are its charges.
	benefit, write, build float64
}

// selector runs one greedy selection over a target's workload.
type selector struct {
	s         *Scorer
	ctx       context.Context
	sess      *whatif.Session
	pool      *pgxpool.Pool
	formula   formula
	stmts     []*statement
	target    string
	windowEnd time.Time
	// retained, when set, holds the table statistics to read writes from
	// instead of the control database (replay from a Kafka offset).
	retained *Retained
	window   time.Duration
	// stats: HypoPG is missing; costs with indexes come from the model.
	stats  bool
	tables map[string]*tableInfo
	budget int64
	proven int
	// pricings counts candidate pricings in the greedy rounds.
	pricings int
	notEval  map[string]bool
	// costOf, chargesOf and sizeOf default to the methods cost, charges
	// and size; unit tests replace them with fixed tables.
	costOf    func(st *statement, set []events.IndexSpec) (float64, bool, error)
	chargesOf func(spec events.IndexSpec) (write, build float64, err error)
	sizeOf    func(spec events.IndexSpec) (int64, error)
}

// loadBudget sets the storage budget: scorer.storage_budget_mb when set,
// otherwise scorer.storage_budget_pct of the target database's size.
func (sel *selector) loadBudget() error {
	cfg := sel.s.deps.Config.Scorer
	if cfg.StorageBudgetMB > 0 {
		sel.budget = cfg.StorageBudgetMB << 20
		return nil
	}
	var size int64
	if err := sel.pool.QueryRow(sel.ctx, "/* indexpilot:scorer */ select pg_database_size(current_database())").Scan(&size); err != nil {
		return fmt.Errorf("read database size: %w", err)
	}
	sel.budget = int64(float64(size) * cfg.StorageBudgetPct / 100)
	return nil
}

// cost is st's plan cost with the indexes of set that are on its tables
// (the others cannot change its plan, and leaving them out keeps the cache
// key small). ok is false when st cannot be evaluated.
func (sel *selector) cost(st *statement, set []events.IndexSpec) (float64, bool, error) {
	var own []events.IndexSpec
	for _, sp := range set {
		if st.tables[sp.QualifiedTable()] {
			own = append(own, sp)
		}
	}
	if sel.notEval[st.QueryID] {
		return 0, false, nil
	}
	if sel.stats {
		base, err := sel.sess.CostFingerprint(sel.ctx, st.parsed.Fingerprint, st.Query, nil)
		if err != nil {
			if isNotEvaluable(err) {
				sel.notEval[st.QueryID] = true
				return 0, false, nil
			}
			return 0, false, err
		}
		if len(own) == 0 {
			return base, true, nil
		}
		c, err := sel.modelCost(st, base, own)
		return c, err == nil, err
	}
	c, err := sel.sess.CostFingerprint(sel.ctx, st.parsed.Fingerprint, st.Query, own)
	if err != nil {
		if isNotEvaluable(err) {
			if len(own) == 0 {
				sel.notEval[st.QueryID] = true
			}
			return 0, false, nil
		}
		return 0, false, err
	}
	return c, true, nil
}

// choose prices every candidate alone against the statements that
// motivated it, keeps those that cut some statement's plan cost by at
// least the configured percentage, then picks greedily (lazily, CELF) by
// net benefit — Σ calls × (cost with the chosen set − cost with the set
// plus the candidate) over every statement that references the
// candidate's leading column (no other statement's plan can use the
// index), minus the formula's charges — re-costing against the indexes
// already picked so two indexes never claim the same saving. A candidate
// that raises any statement's cost by more than scorer.max_regression_pct,
// that the chosen set leaves below the minimum gain, or that a chosen
// index covers, is dropped; selection stops at the storage budget,
// scorer.max_new_indexes and scorer.max_indexes_per_table.
func (sel *selector) choose(cands []candidates.Candidate) ([]*scored, error) {
	cfg := sel.s.deps.Config
	minPct := cfg.Features.AutoIndexer.MinImprovementPct
	if sel.costOf == nil {
		sel.costOf = sel.cost
	}
	if sel.chargesOf == nil {
		sel.chargesOf = sel.charges
	}
	if sel.sizeOf == nil {
		sel.sizeOf = sel.size
	}
	byID := map[string]*statement{}
	for _, st := range sel.stmts {
		byID[st.QueryID] = st
	}
	var pool []*scored
	for _, c := range cands {
		sc := &scored{cand: c, motivates: map[string]bool{}}
		for _, id := range c.QueryIDs {
			st := byID[id]
			if st == nil {
				continue
			}
			before, ok, err := sel.costOf(st, nil)
			if err != nil {
				return nil, err
			}
			if !ok || before <= 0 {
				continue
			}
			after, ok, err := sel.costOf(st, []events.IndexSpec{c.Spec})
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			pct := round2(100 * (before - after) / before)
			sc.motivates[id] = true
			sc.evidence = append(sc.evidence, events.StatementEvidence{
				QueryID: st.QueryID, Query: st.Query, Calls: st.Calls, MeanExecTimeMs: round3(st.TotalMs / float64(st.Calls)),
				CostBefore: round2(before), CostAfter: round2(after), ImprovementPct: pct,
			})
			sc.maxPct = math.Max(sc.maxPct, pct)
		}
		if sc.maxPct >= minPct {
			pool = append(pool, sc)
		}
	}
	sel.proven = len(pool)

	var (
		chosen   []*scored
		set      []events.IndexSpec
		perTable = map[string]int{}
		used     int64
	)
	maxReg := 1 + cfg.Scorer.MaxRegressionPct/100
	// evaluate prices sc against the current set: ok is false when it
	// must be dropped for good — a regression, below the minimum gain
	// given what the set already does, or no positive net benefit (its
	// marginal benefit only shrinks as the set grows).
	evaluate := func(sc *scored) (bool, error) {
		table := sc.cand.Spec.QualifiedTable()
		if perTable[table] >= cfg.Scorer.MaxIndexesPerTable {
			sel.drop(sc, "table cap")
			return false, nil
		}
		with := append(append([]events.IndexSpec(nil), set...), sc.cand.Spec)
		benefit, gain := 0.0, 0.0
		lead := leadingColumn(sc.cand.Spec)
		for _, st := range sel.stmts {
			if !st.uses(table, lead) {
				continue
			}
			now, ok1, err := sel.costOf(st, set)
			if err != nil {
				return false, err
			}
			after, ok2, err := sel.costOf(st, with)
			if err != nil {
				return false, err
			}
			if !ok1 || !ok2 || now <= 0 {
				continue
			}
			if after > now*maxReg {
				sel.drop(sc, "regression of "+st.QueryID)
				return false, nil
			}
			benefit += float64(st.Calls) * (now - after)
			if sc.motivates[st.QueryID] {
				gain = math.Max(gain, 100*(now-after)/now)
			}
		}
		if gain < minPct || benefit <= 0 {
			sel.drop(sc, fmt.Sprintf("gain %.1f%% benefit %.0f given the chosen set", gain, benefit))
			return false, nil
		}
		write, build, err := sel.chargesOf(sc.cand.Spec)
		if err != nil {
			return false, err
		}
		if benefit-write-build <= 0 {
			sel.drop(sc, fmt.Sprintf("benefit %.0f below write %.0f + build %.0f", benefit, write, build))
			return false, nil
		}
		sc.benefit, sc.write, sc.build = benefit, write, build
		return true, nil
	}
	// Lazy greedy (CELF): a candidate's last net benefit bounds its net
	// benefit now, since adding indexes only shrinks what it can add. Each
	// round re-prices candidates in order of that bound and takes the
	// first whose fresh price still tops every other bound. In the first
	// round every candidate is priced.
	bound := map[*scored]float64{}
	fresh := map[*scored]bool{}
	for _, sc := range pool {
		bound[sc] = math.Inf(1)
	}
	order := func() {
		// Ties (within rounding) go to the smaller key, so the result does
		// not depend on the candidates' order.
		sort.SliceStable(pool, func(i, j int) bool {
			a, b := bound[pool[i]], bound[pool[j]]
			if a != b && (math.IsInf(a, 0) || math.IsInf(b, 0) || math.Abs(a-b) > 1e-9*math.Max(math.Abs(a), math.Abs(b))) {
				return a > b
			}
			return pool[i].cand.Spec.Key() < pool[j].cand.Spec.Key()
		})
	}
	for len(chosen) < cfg.Scorer.MaxNewIndexes && len(pool) > 0 {
		order()
		top := pool[0]
		if !fresh[top] {
			ok, err := sel.evaluateCounted(evaluate, top)
			if err != nil {
				return nil, err
			}
			if !ok {
				pool = pool[1:]
				continue
			}
			bound[top] = top.benefit - top.write - top.build
			fresh[top] = true
			continue
		}
		best := top
		pool = pool[1:]
		size, err := sel.sizeOf(best.cand.Spec)
		if err != nil {
			return nil, err
		}
		if sel.budget > 0 && used+size > sel.budget {
			sel.drop(best, fmt.Sprintf("size %d over the storage budget (%d of %d used)", size, used, sel.budget))
			continue
		}
		best.sizeBytes = size
		used += size
		chosen = append(chosen, best)
		set = append(set, best.cand.Spec)
		perTable[best.cand.Spec.QualifiedTable()]++
		// What the chosen index serves, no other candidate needs to.
		cover := asExisting(best.cand.Spec)
		pool = slices.DeleteFunc(pool, func(sc *scored) bool {
			return sc.cand.Spec.QualifiedTable() == best.cand.Spec.QualifiedTable() && cover.Covers(sc.cand.Spec)
		})
		// The set changed: every price is stale (its bound still holds).
		clear(fresh)
	}
	sortScored(chosen)
	return chosen, nil
}

// drop logs why a candidate left the selection (debug level).
func (sel *selector) drop(sc *scored, why string) {
	if sel.s.deps.Logger != nil {
		sel.s.deps.Logger.Debug("candidate dropped", "target", sel.target, "index", sc.cand.Spec.Key(), "why", why)
	}
}

// evaluateCounted runs evaluate and counts the pricing.
func (sel *selector) evaluateCounted(evaluate func(*scored) (bool, error), sc *scored) (bool, error) {
	sel.pricings++
	return evaluate(sc)
}

// asExisting describes spec as a valid index of the catalog would be, so
// that Covers can compare candidates with it.
func asExisting(spec events.IndexSpec) indexdef.Existing {
	e := indexdef.Existing{Schema: spec.Schema, Table: spec.Table, Valid: true, Method: indexdef.Method(spec),
		Predicate: spec.Predicate, HasExprKeys: len(spec.Expressions) > 0}
	for _, c := range spec.Columns {
		e.Columns = append(e.Columns, c)
		e.Keys = append(e.Keys, c)
	}
	for _, x := range spec.Expressions {
		e.Columns = append(e.Columns, "")
		e.Keys = append(e.Keys, x.String())
	}
	return e
}

// leadingColumn is the column of spec's first key.
func leadingColumn(spec events.IndexSpec) string {
	if len(spec.Columns) > 0 {
		return spec.Columns[0]
	}
	if len(spec.Expressions) > 0 {
		return spec.Expressions[0].Column
	}
	return ""
}

// size estimates an index's size: the pg_stats model when the table has
// statistics (HypoPG's estimate overstates btrees about 2.8× on PG15),
// else HypoPG's.
func (sel *selector) size(spec events.IndexSpec) (int64, error) {
	n, err := sel.sess.StatsSize(sel.ctx, spec)
	if err == nil && n > 0 {
		return n, nil
	}
	if sel.stats {
		return 0, nil
	}
	n, err = sel.sess.Size(sel.ctx, spec)
	if err != nil {
		if isNotEvaluable(err) {
			return 0, nil
		}
		return 0, err
	}
	return n, nil
}

// charges prices spec under the formula: write overhead = writes in the
// window × (index entry width ÷ row width) × rowWriteCost, and the build
// cost (a table scan, a sort and writing the index) spread over
// scorer.build_amortization, of which one window's share is charged.
func (sel *selector) charges(spec events.IndexSpec) (write, build float64, err error) {
	if !sel.formula.writeOverhead && !sel.formula.buildCost {
		return 0, 0, nil
	}
	ti, err := sel.table(spec.Schema, spec.Table)
	if err != nil {
		return 0, 0, err
	}
	entry := float64(indexTupleOverhead)
	for _, c := range spec.Columns {
		entry += ti.width[c]
	}
	for _, e := range spec.Expressions {
		entry += ti.width[e.Column]
	}
	// A partial index holds (and maintains) only the rows that pass its
	// predicate.
	frac := 1.0
	if spec.Predicate != "" {
		if frac, err = sel.sess.PredicateFraction(sel.ctx, spec); err != nil {
			return 0, 0, err
		}
	}
	if sel.formula.writeOverhead && ti.rowWidth > 0 {
		write = ti.writes * frac * entry / ti.rowWidth * rowWriteCost
	}
	if sel.formula.buildCost {
		n := math.Max(ti.tuples*frac, 2)
		pages := math.Ceil(n * entry / (8192 * 0.9))
		full := ti.pages*seqPageCost + n*(cpuTupleCost+2*cpuOperatorCost*math.Log2(n)) + pages*seqPageCost
		share := sel.window.Hours() / sel.s.deps.Config.Scorer.BuildAmortization.Hours()
		build = full * math.Min(share, 1)
	}
	return write, build, nil
}

// table loads (once) the statistics of schema.table from the target and
// its writes in the window from the stored table statistics samples.
func (sel *selector) table(schema, name string) (*tableInfo, error) {
	key := schema + "." + name
	if ti, ok := sel.tables[key]; ok {
		return ti, nil
	}
	ti := &tableInfo{width: map[string]float64{}, nDistinct: map[string]float64{}}
	rows, err := sel.pool.Query(sel.ctx, `/* indexpilot:scorer */
select c.relpages::float8, greatest(c.reltuples, 0)::float8, a.attname,
       coalesce(st.avg_width, case when a.attlen > 0 then a.attlen else 32 end)::float8,
       coalesce(st.n_distinct, 0)::float8
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  left join pg_catalog.pg_stats st
         on st.schemaname = n.nspname and st.tablename = c.relname and st.attname = a.attname and not st.inherited
 where n.nspname = $1 and c.relname = $2`, schema, name)
	if err != nil {
		return nil, fmt.Errorf("read statistics of %s: %w", key, err)
	}
	for rows.Next() {
		var col string
		var w, nd float64
		if err := rows.Scan(&ti.pages, &ti.tuples, &col, &w, &nd); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read statistics of %s: %w", key, err)
		}
		ti.width[col] = w
		ti.rowWidth += w
		switch {
		case nd > 0:
			ti.nDistinct[col] = nd
		case nd < 0:
			ti.nDistinct[col] = -nd * ti.tuples
		default:
			ti.nDistinct[col] = defaultNDistinct
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read statistics of %s: %w", key, err)
	}
	ti.rowWidth += heapTupleOverhead
	ti.writes, err = sel.writes(schema, name)
	if err != nil {
		return nil, err
	}
	sel.tables[key] = ti
	return ti, nil
}

// writes is the number of index-maintaining writes (inserts + updates −
// HOT updates) observed in the window: the sum of the counter increases
// between consecutive samples (a counter that went back was reset and
// counts from 0). Like the statements' calls, it is what was observed in
// the window, never extrapolated: a bulk load seen over a few seconds is
// not taken for a rate that lasts all day.
func (sel *selector) writes(schema, name string) (float64, error) {
	from, to := sel.windowEnd.Add(-sel.window), sel.windowEnd.Add(sel.s.deps.Config.Collector.Interval)
	if sel.retained != nil {
		return retainedWrites(sel.retained, sel.target, schema, name, from, to), nil
	}
	rows, err := sel.s.deps.Control.Query(sel.ctx, `/* indexpilot:scorer */
select inserts + updates - hot_updates
  from indexpilot.table_stat_samples
 where target = $1 and schema_name = $2 and table_name = $3 and observed_at > $4 and observed_at <= $5
 order by observed_at`, sel.target, schema, name, from, to)
	if err != nil {
		return 0, fmt.Errorf("read write rate of %s.%s: %w", schema, name, err)
	}
	values, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return 0, fmt.Errorf("read write rate of %s.%s: %w", schema, name, err)
	}
	return counterIncrease(values), nil
}

// impliesPredicate reports whether the rows u reads all pass a partial
// index's predicate (always for a full index), as the planner would prove
// it from the statement's own conditions: the same value-free condition
// among its top-level AND terms.
func impliesPredicate(u *sqlparse.TableUsage, predicate string) bool {
	if predicate == "" {
		return true
	}
	c, ok := indexdef.ParseCondition(predicate)
	if !ok {
		return false
	}
	for _, have := range u.Conditions {
		if candidates.Condition(have) == c {
			return true
		}
	}
	return false
}

// modelCost is the statistics model used when HypoPG is missing: for each
// table of st with indexes in set, the cheapest index scan the statement's
// predicates allow on the index's leading columns (equality columns at
// 1/n_distinct each, then one range at 1/3) replaces a sequential scan of
// the table when it is cheaper. It never raises a cost.
func (sel *selector) modelCost(st *statement, base float64, set []events.IndexSpec) (float64, error) {
	saving := 0.0
	for _, u := range st.parsed.Tables {
		if u.Table.Schema == "" {
			continue
		}
		key := u.Table.Schema + "." + u.Table.Name
		var best float64
		for _, sp := range set {
			if sp.QualifiedTable() != key || !impliesPredicate(&u, sp.Predicate) {
				continue
			}
			ti, err := sel.table(sp.Schema, sp.Table)
			if err != nil {
				return 0, err
			}
			if red := indexScanSaving(&u, ti, sp.Columns); red > best {
				best = red
			}
		}
		saving += best
	}
	return math.Max(base-saving, base*0.001), nil
}

// indexScanSaving is the cost a scan of an index on cols saves over a
// sequential scan for one table usage; 0 when the index cannot be used.
func indexScanSaving(u *sqlparse.TableUsage, ti *tableInfo, cols []string) float64 {
	sel, usable := 1.0, false
	for _, c := range cols {
		if slices.Contains(u.Equality, c) || slices.Contains(u.JoinKeys, c) {
			sel /= math.Max(ti.nDistinct[c], 1)
			usable = true
			continue
		}
		if slices.Contains(u.Range, c) || slices.Contains(u.LikePrefix, c) {
			sel *= rangeSelectivity
			usable = true
		}
		break
	}
	if !usable {
		return 0
	}
	rows := math.Max(1, ti.tuples*sel)
	index := randomPageCost + rows*(cpuIndexTupleCost+cpuTupleCost) + math.Min(rows, ti.pages)*randomPageCost
	scan := ti.pages*seqPageCost + ti.tuples*(cpuTupleCost+cpuOperatorCost)
	if index >= scan {
		return 0
	}
	return scan - index
}

// workloadCost is Σ calls × plan cost of the evaluable statements without
// and with the chosen set.
func (sel *selector) workloadCost(chosen []*scored) (before, after float64, err error) {
	set := make([]events.IndexSpec, 0, len(chosen))
	for _, c := range chosen {
		set = append(set, c.cand.Spec)
	}
	for _, st := range sel.stmts {
		b, ok1, err := sel.cost(st, nil)
		if err != nil {
			return 0, 0, err
		}
		a, ok2, err := sel.cost(st, set)
		if err != nil {
			return 0, 0, err
		}
		if ok1 && ok2 {
			before += float64(st.Calls) * b
			after += float64(st.Calls) * a
		}
	}
	return round2(before), round2(after), nil
}
