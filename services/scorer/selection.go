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
	"github.com/indexpilot/indexpilot/pkg/bytesize"
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
	// correlation is pg_stats' correlation of each column's values with
	// their physical order (0 when unknown).
	correlation map[string]float64
	// writes is what the write model knows of the table's writes in the
	// window (counters, indexed columns, fill factor).
	writes tableWrites
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
	// wal is the write model's estimate behind write.
	wal writeCharge
	// held is why a candidate that pays for itself was not chosen
	// (a budget or a cap), with heldDetail's numbers; "" otherwise.
	held, heldDetail string
	// supersededBy is the key of the later choice that made this one
	// redundant (indexdef.Supersedes).
	supersededBy string
	// overcharged: the charges outweigh the read saving, so the
	// candidate is rejected for its write overhead (payloads states it
	// with the evidence's rounded numbers).
	overcharged bool
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
	// writeStmts are the workload's write statements and writeTxns the
	// write transactions they ran in (windowWriteTxns): the write model's
	// view of the write mix. walBasis says how writeTxns was counted.
	writeStmts []writeStmt
	writeTxns  float64
	walBasis   string
	// updated is, per "schema.table", the columns the workload's UPDATEs
	// set.
	updated map[string]map[string]bool
	// forecasts are the workload's statements with a recurring peak, by
	// query id.
	forecasts map[string]*peakForecast
	// inFlight are the target's indexes approved or being built: the
	// chosen set starts with them, since they will exist. Without them a
	// run during a build (the index not valid yet, so invisible to the
	// planner) chose an alternative for the same statements, and both
	// were built.
	inFlight []events.IndexSpec
	// held are the candidates a budget or a cap held back; rejected those
	// whose charges outweigh their read saving.
	held, rejected []*scored
	// pricings counts candidate pricings in the greedy rounds.
	pricings int
	notEval  map[string]bool
	// costOf, chargesOf and sizeOf default to the methods cost, charges
	// and size; unit tests replace them with fixed tables.
	costOf    func(st *statement, set []events.IndexSpec) (float64, bool, error)
	chargesOf func(spec events.IndexSpec) (charge, error)
	sizeOf    func(spec events.IndexSpec) (int64, error)
	// sizes caches size's estimates by index key.
	sizes map[string]int64
	// img is the target's checkpoint cycle against the window, once read
	// (imgRead).
	img     imageModel
	imgRead bool
}

// images reads (once) what the full-page image model needs of the target:
// full_page_writes and checkpoint_timeout.
func (sel *selector) images() (imageModel, error) {
	if sel.imgRead {
		return sel.img, nil
	}
	var fpw bool
	var timeout float64
	if err := sel.pool.QueryRow(sel.ctx, `/* indexpilot:scorer */
select current_setting('full_page_writes')::bool, (select setting::float8 from pg_catalog.pg_settings where name = 'checkpoint_timeout')`).Scan(&fpw, &timeout); err != nil {
		return imageModel{}, fmt.Errorf("read checkpoint settings: %w", err)
	}
	if fpw && timeout > 0 {
		sel.img.cycle = time.Duration(timeout * float64(time.Second))
	}
	sel.imgRead = true
	return sel.img, nil
}

// loadBudget sets the storage budget: scorer.storage_budget_mb when set,
// otherwise scorer.storage_budget_pct of the target database's size but
// at least scorer.storage_budget_min_mb (docs/scorer.md: why a floor).
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
	sel.budget = max(int64(float64(size)*cfg.StorageBudgetPct/100), cfg.StorageBudgetMinMB<<20)
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
			before, ok, err := sel.costOf(st, sel.inFlight)
			if err != nil {
				return nil, err
			}
			if !ok || before <= 0 {
				continue
			}
			after, ok, err := sel.costOf(st, append(slices.Clone(sel.inFlight), c.Spec))
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
				CostBefore: round2(before), CostAfter: round2(after), ImprovementPct: pct, Window: st.window(),
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
		set      = slices.Clone(sel.inFlight)
		perTable = map[string]int{}
		used     int64
	)
	maxReg := 1 + cfg.Scorer.MaxRegressionPct/100
	// bound is each candidate's last net benefit (CELF, below).
	bound := map[*scored]float64{}
	// evaluate prices sc against the current set: ok is false when it
	// must be dropped for good — a regression, below the minimum gain
	// given what the set already does, or no positive net benefit (its
	// marginal benefit only shrinks as the set grows).
	evaluate := func(sc *scored) (bool, error) {
		table := sc.cand.Spec.QualifiedTable()
		// A candidate over the per-table cap that paid for itself at its
		// last pricing is held (listed with those numbers), not silently
		// dropped; it is not priced again.
		if perTable[table] >= cfg.Scorer.MaxIndexesPerTable {
			if b := bound[sc]; !math.IsInf(b, 0) && b > 0 {
				if err := sel.holdPriced(sc, HeldMaxIndexesPerTable, fmt.Sprintf("%d indexes already chosen on %s (scorer.max_indexes_per_table %d)",
					perTable[table], table, cfg.Scorer.MaxIndexesPerTable)); err != nil {
					return false, err
				}
			} else {
				sel.drop(sc, "table cap")
			}
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
		ch, err := sel.chargesOf(sc.cand.Spec)
		if err != nil {
			return false, err
		}
		sc.benefit, sc.write, sc.build, sc.wal = benefit, ch.write, ch.build, ch.wal
		if benefit-ch.write-ch.build <= 0 {
			sel.drop(sc, fmt.Sprintf("benefit %.0f below write %.0f + build %.0f", benefit, ch.write, ch.build))
			sc.overcharged = true
			sel.rejected = append(sel.rejected, sc)
			return false, nil
		}

		return true, nil
	}
	// Lazy greedy (CELF): a candidate's last net benefit bounds its net
	// benefit now, since adding indexes only shrinks what it can add. Each
	// round re-prices candidates in order of that bound and takes the
	// first whose fresh price still tops every other bound. In the first
	// round every candidate is priced.
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
		wider, err := sel.preferWider(best, &pool, bound, fresh, evaluate)
		if err != nil {
			return nil, err
		}
		if wider != nil {
			// The narrower one goes back: choosing the wider one removes
			// it below (Supersedes), unless the wider one is held.
			pool = slices.DeleteFunc(pool, func(sc *scored) bool { return sc == wider })
			pool = append(pool, best)
			best = wider
		}
		size, err := sel.sizeOf(best.cand.Spec)
		if err != nil {
			return nil, err
		}
		if sel.budget > 0 && used+size > sel.budget {
			best.sizeBytes = size
			sel.hold(best, HeldStorageBudget, fmt.Sprintf("estimated size %s does not fit the storage budget: %s of %s already used by this run's choices",
				bytesize.Human(size), bytesize.Human(used), bytesize.Human(sel.budget)))
			continue
		}
		best.sizeBytes = size
		used += size
		chosen = append(chosen, best)
		set = append(set, best.cand.Spec)
		perTable[best.cand.Spec.QualifiedTable()]++
		// What the chosen index serves, no other candidate needs to; nor
		// one it makes redundant.
		cover := asExisting(best.cand.Spec)
		pool = slices.DeleteFunc(pool, func(sc *scored) bool {
			return sc.cand.Spec.QualifiedTable() == best.cand.Spec.QualifiedTable() &&
				(cover.Covers(sc.cand.Spec) || indexdef.Supersedes(best.cand.Spec, sc.cand.Spec, sel.isUpdated(best.cand.Spec)))
		})
		// An earlier choice the new one makes redundant leaves the set.
		chosen = slices.DeleteFunc(chosen, func(old *scored) bool {
			if old == best || !indexdef.Supersedes(best.cand.Spec, old.cand.Spec, sel.isUpdated(best.cand.Spec)) {
				return false
			}
			old.supersededBy = best.cand.Spec.Key()
			sel.rejected = append(sel.rejected, old)
			used -= old.sizeBytes
			perTable[old.cand.Spec.QualifiedTable()]--
			set = slices.DeleteFunc(set, func(sp events.IndexSpec) bool { return sp.Key() == old.cand.Spec.Key() })
			return true
		})
		// The set changed: every price is stale (its bound still holds).
		clear(fresh)
	}
	// What is left when the count cap stopped the selection: every
	// candidate that paid for itself at its last pricing is held.
	if len(chosen) >= cfg.Scorer.MaxNewIndexes {
		for _, sc := range pool {
			if b := bound[sc]; math.IsInf(b, 0) || b <= 0 {
				continue
			}
			if err := sel.holdPriced(sc, HeldMaxNewIndexes, fmt.Sprintf("%d indexes already chosen in this run (scorer.max_new_indexes %d)",
				len(chosen), cfg.Scorer.MaxNewIndexes)); err != nil {
				return nil, err
			}
		}
	}
	sortScored(chosen)
	sortScored(sel.held)
	sortScored(sel.rejected)
	// A candidate is listed once (the same definition may come from
	// several statements).
	sel.rejected = slices.CompactFunc(sel.rejected, func(a, b *scored) bool { return a.cand.Spec.Key() == b.cand.Spec.Key() })
	return chosen, nil
}

// Why a candidate that pays for itself was held back (IndexCandidateScored.HeldReason).
const (
	HeldStorageBudget      = string(events.ReasonHeldStorageBudget)
	HeldMaxIndexesPerTable = string(events.ReasonMaxIndexesPerTable)
	HeldMaxNewIndexes      = string(events.ReasonMaxNewIndexes)
)

// holdPriced holds a candidate with the numbers of its last pricing (an
// upper bound of what it adds to the final set, which the detail says),
// after estimating its size.
func (sel *selector) holdPriced(sc *scored, reason, detail string) error {
	size, err := sel.sizeOf(sc.cand.Spec)
	if err != nil {
		return err
	}
	sc.sizeBytes = size
	sel.hold(sc, reason, detail+"; benefit and charges as last priced, before the set was complete")
	return nil
}

// hold records sc as held back by a budget or a cap: it is reported (and
// published, so the gatekeeper lists it as held), never silently dropped.
func (sel *selector) hold(sc *scored, reason, detail string) {
	sc.held, sc.heldDetail = reason, detail
	sel.held = append(sel.held, sc)
	sel.drop(sc, reason+": "+detail)
}

// isUpdated reports the columns of spec's table the workload's UPDATEs set.
func (sel *selector) isUpdated(spec events.IndexSpec) func(string) bool {
	cols := sel.updated[spec.QualifiedTable()]
	return func(c string) bool { return cols[c] }
}

// drop logs why a candidate left the selection (debug level).
func (sel *selector) drop(sc *scored, why string) {
	if sel.s.deps.Logger != nil {
		sel.s.deps.Logger.Debug("candidate dropped", "target", sel.target, "index", sc.cand.Spec.Key(), "why", why)
	}
}

// evaluateCounted runs evaluate and counts the pricing.
// widerSlack is how much less net benefit a wider alternative may have
// than the narrower one and still be chosen instead (preferWider).
const widerSlack = 0.01

// preferWider returns, of the pool's candidates on best's table whose key
// extends best's (indexdef.Supersedes: it serves everything best does),
// the one with the highest net benefit when that is within widerSlack of
// best's, and its recurring net (read saving less write cost, per window)
// higher. Two such alternatives serve the same statements about equally
// well and differ mostly by build cost, which the narrower one wins while
// calls are few; choosing it then means building the wider one a few runs
// later and dropping the narrower one (seen in the chaos runs:
// interactions(contact_id), then (contact_id, occurred_at), then the
// first dropped): a build and a drop on the server for nothing. Stale
// candidates are priced again; one that no longer pays leaves the pool,
// as in the main loop.
func (sel *selector) preferWider(best *scored, pool *[]*scored, bound map[*scored]float64, fresh map[*scored]bool,
	evaluate func(*scored) (bool, error)) (*scored, error) {
	net := func(sc *scored) float64 { return sc.benefit - sc.write - sc.build }
	recurring := func(sc *scored) float64 { return sc.benefit - sc.write }
	floor := net(best) * (1 - widerSlack)
	var pick *scored
	for i := 0; i < len(*pool); i++ {
		sc := (*pool)[i]
		if sc.cand.Spec.QualifiedTable() != best.cand.Spec.QualifiedTable() ||
			!indexdef.Supersedes(sc.cand.Spec, best.cand.Spec, sel.isUpdated(sc.cand.Spec)) {
			continue
		}
		if b := bound[sc]; !math.IsInf(b, 1) && b < floor {
			continue // its bound already rules it out
		}
		if !fresh[sc] {
			ok, err := sel.evaluateCounted(evaluate, sc)
			if err != nil {
				return nil, err
			}
			if !ok {
				*pool = slices.Delete(*pool, i, i+1)
				i--
				continue
			}
			bound[sc] = net(sc)
			fresh[sc] = true
		}
		// Only one that saves more per window than it costs in writes,
		// better than best does, would ever replace it (its extra build
		// cost is paid once); an extra key that helps no statement never
		// does, and stays out.
		if n := net(sc); n > 0 && n >= floor && recurring(sc) > recurring(best) && (pick == nil || n > net(pick)) {
			pick = sc
		}
	}
	return pick, nil
}

func (sel *selector) evaluateCounted(evaluate func(*scored) (bool, error), sc *scored) (bool, error) {
	sel.pricings++
	return evaluate(sc)
}

// asExisting describes spec as a valid index of the catalog would be, so
// that Covers can compare candidates with it.
func asExisting(spec events.IndexSpec) indexdef.Existing { return indexdef.FromSpec(spec) }

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
// statistics (deduplication modelled, within 25 % of the built index;
// HypoPG's estimate ignores deduplication and overstates btrees up to
// ~3×), else HypoPG's.
func (sel *selector) size(spec events.IndexSpec) (int64, error) {
	if n, ok := sel.sizes[spec.Key()]; ok {
		return n, nil
	}
	n, err := sel.sess.StatsSize(sel.ctx, spec)
	if err != nil || n <= 0 {
		if sel.stats {
			return 0, nil
		}
		if n, err = sel.sess.Size(sel.ctx, spec); err != nil {
			if isNotEvaluable(err) {
				return 0, nil
			}
			return 0, err
		}
	}
	if sel.sizes == nil {
		sel.sizes = map[string]int64{}
	}
	sel.sizes[spec.Key()] = n
	return n, nil
}

// charge is what the formula charges one candidate over the window, in
// planner cost units (write, build), with the write model's figures.
type charge struct {
	write, build float64
	wal          writeCharge
}

// charges prices spec under the formula: the write overhead is the WAL the
// index adds over the window (walCharge: HOT updates it would stop, its own
// maintenance) in cost units; the build cost (a table scan, a sort and
// writing the index) is spread over scorer.build_amortization, of which
// one window's share is charged.
func (sel *selector) charges(spec events.IndexSpec) (charge, error) {
	if !sel.formula.writeOverhead && !sel.formula.buildCost {
		return charge{}, nil
	}
	ti, err := sel.table(spec.Schema, spec.Table)
	if err != nil {
		return charge{}, err
	}
	entry := entryWidth(ti, spec.Columns) + float64(len(spec.Expressions))*exprKeyWidth
	// A partial index holds (and maintains) only the rows that pass its
	// predicate.
	frac := 1.0
	if spec.Predicate != "" {
		if frac, err = sel.sess.PredicateFraction(sel.ctx, spec); err != nil {
			return charge{}, err
		}
	}
	var ch charge
	n := math.Max(ti.tuples*frac, 2)
	pages := math.Ceil(n * entry / (8192 * 0.9))
	if sel.formula.writeOverhead {
		ch.wal = walCharge(ti, sel.writeStmts, spec.QualifiedTable(), spec, frac, sel.writeTxns)
		img, err := sel.images()
		if err != nil {
			return charge{}, err
		}
		// The index's leaves: its estimated size in pages, or the build
		// estimate's when there is none.
		leaves := pages
		size, err := sel.sizeOf(spec)
		if err != nil {
			return charge{}, err
		}
		if size > 8192 {
			leaves = float64(size)/8192 - 1
		}
		addImages(&ch.wal, ti, spec, frac, leaves, img)
		ch.write = ch.wal.cost
	}
	if sel.formula.buildCost {
		full := ti.pages*seqPageCost + n*(cpuTupleCost+2*cpuOperatorCost*math.Log2(n)) + pages*seqPageCost
		share := sel.window.Hours() / sel.s.deps.Config.Scorer.BuildAmortization.Hours()
		ch.build = full * math.Min(share, 1)
	}
	return ch, nil
}

// table loads (once) the statistics of schema.table from the target and
// its writes in the window from the stored table statistics samples.
func (sel *selector) table(schema, name string) (*tableInfo, error) {
	key := schema + "." + name
	if ti, ok := sel.tables[key]; ok {
		return ti, nil
	}
	ti := &tableInfo{width: map[string]float64{}, nDistinct: map[string]float64{}, correlation: map[string]float64{}}
	rows, err := sel.pool.Query(sel.ctx, `/* indexpilot:scorer */
select c.relpages::float8, greatest(c.reltuples, 0)::float8, a.attname,
       coalesce(st.avg_width, case when a.attlen > 0 then a.attlen else 32 end)::float8,
       coalesce(st.n_distinct, 0)::float8, coalesce(st.correlation, 0)::float8
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
		var w, nd, corr float64
		if err := rows.Scan(&ti.pages, &ti.tuples, &col, &w, &nd, &corr); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read statistics of %s: %w", key, err)
		}
		ti.width[col] = w
		ti.correlation[col] = corr
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
	counters, err := sel.writes(schema, name)
	if err != nil {
		return nil, err
	}
	ti.writes = counters
	if err := sel.loadTableWrites(schema, name, ti); err != nil {
		return nil, err
	}
	sel.tables[key] = ti
	return ti, nil
}

// writes is the write counters' increases over the window (inserts,
// updates, HOT updates, deletes and, from PostgreSQL 16, updates to a new
// page): the sum of the counter increases between
// consecutive samples (a counter that went back was reset and counts from
// 0). Like the statements' calls, it is what was observed in the window,
// never extrapolated: a bulk load seen over a few seconds is not taken for
// a rate that lasts all day.
func (sel *selector) writes(schema, name string) (tableWrites, error) {
	from, to := sel.windowEnd.Add(-sel.window), sel.windowEnd.Add(sel.s.deps.Config.Collector.Interval)
	if sel.retained != nil {
		return retainedWrites(sel.retained, sel.target, schema, name, from, to), nil
	}
	rows, err := sel.s.deps.Control.Query(sel.ctx, `/* indexpilot:scorer */
select observed_at, array[inserts, updates, hot_updates, deletes, coalesce(newpage_updates::float8, $6)]::float8[]
  from indexpilot.table_stat_samples
 where target = $1 and schema_name = $2 and table_name = $3 and observed_at > $4 and observed_at <= $5
 order by observed_at`, sel.target, schema, name, from, to, notCounted)
	if err != nil {
		return tableWrites{}, fmt.Errorf("read write rate of %s.%s: %w", schema, name, err)
	}
	var at []time.Time
	values, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (writeCounters, error) {
		var t time.Time
		var v []float64
		if err := r.Scan(&t, &v); err != nil || len(v) != len(writeCounters{}) {
			return writeCounters{}, fmt.Errorf("scan write counters: %w", err)
		}
		at = append(at, t)
		return writeCounters(v), nil
	})
	if err != nil {
		return tableWrites{}, fmt.Errorf("read write rate of %s.%s: %w", schema, name, err)
	}
	return countersIncrease(values, at), nil
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
