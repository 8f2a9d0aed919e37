package main

// The measurement every workload shares (issue 11.7): an index set is built
// for real and measured on what matters to a written database —
//
//   - the read cost: Σ calls × the planner's cost of a custom plan with the
//     statements' real constants (EXPLAIN with the values bound), on the
//     real indexes;
//   - the WAL bytes per write transaction of the workload's fixed-seed write
//     script, from pg_stat_statements.wal_bytes;
//   - the real index size (pg_relation_size);
//   - for the scored sets, the selection time.
//
// A workload is scored once, from one window of query statistics (its reads
// and its write statements with their calls) and the table counters of the
// write script's runs on the database without secondary indexes, scaled to
// the window.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/scorer"
)

const (
	// scriptTxns is the length of the measured write script (bench's
	// scriptTxns); its mix is the window's (the workload's writeTxn
	// calls) scaled down.
	scriptTxns = 2_000
	// readSamples is the number of argument sets each read is priced with.
	readSamples = 5
	// measureSet runs the write script once right after a checkpoint,
	// then warm: at least minWarmRuns times, and on until a run logs no
	// full-page image, at most maxWarmRuns times.
	minWarmRuns = 2
	maxWarmRuns = 20
)

// writeTxn is one kind of transaction in a workload's write mix: its
// statements run in order in one transaction, with the arguments args
// draws (one slice per statement, so that they can share values, as
// TPC-B's do). calls is how many run in the scoring window; it is also the
// kind's weight in the write script.
type writeTxn struct {
	sqls  []string
	calls int
	args  func(r *rand.Rand) [][]any
}

// single is a write transaction of one statement.
func single(sql string, calls int, args func(r *rand.Rand) []any) writeTxn {
	return writeTxn{sqls: []string{sql}, calls: calls, args: func(r *rand.Rand) [][]any { return [][]any{args(r)} }}
}

// scriptRun numbers the runs of the write script: every run updates the
// same rows (a fixed seed), and a workload whose UPDATE sets a constant
// uses it to set a value that differs from the previous run's, since an
// UPDATE that leaves an indexed column unchanged can still be HOT.
var scriptRun int

// indexSet is one index set of a workload and what was measured with it.
type indexSet struct {
	name     string
	specs    []events.IndexSpec
	readCost float64
	// walPerTxn is the WAL per write transaction of the script's later
	// runs (their pages already logged since the checkpoint: mostly the
	// records alone, what the scorer's model prices; of the warm run with
	// the fewest full-page images), warmFPI that run's full-page images per
	// write transaction (pages first touched in it, e.g. leaves of an index
	// the updates insert into at random, or a checkpoint that began during
	// every run), warmRuns how many warm runs it took; coldWAL and
	// fpiPerTxn are of its first run right after a checkpoint, full-page
	// images included.
	walPerTxn  float64
	warmFPI    float64
	warmRuns   int
	coldWAL    float64
	fpiPerTxn  float64
	indexBytes int64
	// txnPerSec is the write script's rate on one connection (the faster
	// warm run): an extra, noisier than the WAL.
	txnPerSec float64
	// execTime is the median time of the reads run for real, when the
	// workload is executed.
	execTime time.Duration
	// selection and whatIfCalls are the scoring run's, for a scored set.
	selection   time.Duration
	whatIfCalls int
	scored      bool
}

// benchRun is a workload being benched: its database, its scorer, the
// scoring report and the sets measured, for a workload's others and check.
type benchRun struct {
	b      *bench
	s      *scorer.Scorer
	rep    *scorer.Report
	w      workload
	none   *indexSet
	chosen *indexSet
	// others are the sets the workload's others returned.
	others []*indexSet
}

// runWorkload creates the workload's database, measures it with no
// secondary index, scores it, measures the chosen set and the workload's
// others, runs its check, and prints the sets and the check's notes to
// out. It returns the check's error after printing.
func runWorkload(ctx context.Context, admin string, w workload, runs int, budgetMB int64, verbose bool, out io.Writer) (err error) {
	b, drop, err := openBench(ctx, admin, fmt.Sprintf("ipscorerbench_%s_%d", w.name, os.Getpid()), "hypopg", "pg_stat_statements")
	if err != nil {
		return err
	}
	defer func() {
		if derr := drop(); err == nil && derr != nil {
			err = derr
		}
	}()
	b.runs, b.scriptTxns = runs, scriptTxns
	fmt.Fprintf(os.Stderr, "[%s] loading data\n", w.name)
	if err := w.load(ctx, b); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	run := &benchRun{b: b, w: w, none: &indexSet{name: "none"}}

	// No secondary index: measure, and give the scorer the table counters
	// of the script's runs as the window's write statistics.
	before, err := b.tableCounters(ctx)
	if err != nil {
		return err
	}
	if err := b.measureSet(ctx, w, run.none); err != nil {
		return err
	}
	after, err := b.tableCounters(ctx)
	if err != nil {
		return err
	}
	var closeScorer func()
	if run.s, closeScorer, err = b.newScorer(w.window, budgetMB, verbose); err != nil {
		return err
	}
	defer closeScorer()
	if err := b.feedScorer(ctx, run.s, w, 1+run.none.warmRuns, before, after); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "[%s] scoring %d statements\n", w.name, len(w.reads)+len(w.writeStatements()))
	if run.rep, err = run.s.Score(ctx, "bench", scorer.Options{}); err != nil {
		return err
	}
	run.chosen = scoredSet("chosen", run.rep)
	sets := []*indexSet{run.none, run.chosen}
	if w.others != nil {
		if run.others, err = w.others(ctx, run); err != nil {
			return err
		}
		sets = append(sets, run.others...)
	}
	for _, set := range sets[1:] {
		if err := b.measureSet(ctx, w, set); err != nil {
			return err
		}
	}
	var notes bytes.Buffer
	var cerr error
	if w.check != nil {
		cerr = w.check(ctx, run, &notes)
	} else if verbose {
		printParetoView(&notes, run.rep)
	}
	printHeader(out, w, run.rep)
	printSets(out, w, sets)
	if _, err := out.Write(notes.Bytes()); err != nil {
		return err
	}
	return cerr
}

// scoredSet is the set a scoring run chose, with its selection time.
func scoredSet(name string, rep *scorer.Report) *indexSet {
	return &indexSet{name: name, specs: specsOf(rep.Chosen), selection: rep.Duration, whatIfCalls: rep.WhatIfCalls, scored: true}
}

// feedScorer hands s one window of query statistics — every read and
// every write statement with its calls — and two samples of the table
// counters, before and after the write script's runs on the database
// without secondary indexes (scriptRuns of them), scaled to the window's
// write transactions. The samples carry a server transaction counter that
// advances by the same scaled count (scriptRuns × scriptTxns transactions,
// one xid each), as the collector's would on a server running only the
// bench, so the scorer's WAL is per write transaction.
func (b *bench) feedScorer(ctx context.Context, s *scorer.Scorer, w workload, scriptRuns int, before, after map[string]*events.TableStatObserved) error {
	end := time.Now().UTC().Truncate(time.Second)
	scale := float64(writeCalls(w.writes)) / float64(scriptRuns*b.scriptTxns)
	xactBefore := int64(1_000)
	xactAfter := xactBefore + int64(math.Round(float64(scriptRuns*b.scriptTxns)*scale))
	for name, c := range before {
		a := after[name]
		c.ServerXactNext, a.ServerXactNext = &xactBefore, &xactAfter
		a.Inserts = c.Inserts + int64(float64(a.Inserts-c.Inserts)*scale)
		a.Updates = c.Updates + int64(float64(a.Updates-c.Updates)*scale)
		a.HotUpdates = c.HotUpdates + int64(float64(a.HotUpdates-c.HotUpdates)*scale)
		a.Deletes = c.Deletes + int64(float64(a.Deletes-c.Deletes)*scale)
		for i, ts := range []*events.TableStatObserved{c, a} {
			ts.ObservedAt = end.Add(time.Duration(i-1) * w.window / 2)
			env, err := events.Wrap(ts, "bench", "", ts.ObservedAt)
			if err != nil {
				return err
			}
			if _, err := s.HandleTableStat(ctx, env, ts); err != nil {
				return err
			}
		}
	}
	for i, st := range append(append([]stmt(nil), w.reads...), w.writeStatements()...) {
		q := &events.QueryStatObserved{Target: "bench", QueryID: fmt.Sprintf("%05d", i), Query: st.sql,
			WindowStart: end.Add(-w.window), WindowEnd: end, Calls: int64(st.calls),
			TotalExecTimeMs: float64(st.calls), MeanExecTimeMs: 1, Rows: int64(st.calls)}
		env, err := events.Wrap(q, "bench", "", end)
		if err != nil {
			return err
		}
		if _, err := s.HandleQueryStat(ctx, env, q); err != nil {
			return err
		}
	}
	return nil
}

// writeStatements is every statement of the write mix with the calls of
// its transaction (the same text in two kinds counts once per kind).
func (w workload) writeStatements() []stmt {
	var out []stmt
	for _, t := range w.writes {
		for _, sql := range t.sqls {
			out = append(out, stmt{sql: sql, calls: t.calls})
		}
	}
	return out
}

func writeCalls(writes []writeTxn) int {
	n := 0
	for _, t := range writes {
		n += t.calls
	}
	return n
}

// measureSet builds set's indexes, measures the read cost, the WAL per
// write transaction and the index size (and, for an executed workload, the
// reads' time), then drops them again.
func (b *bench) measureSet(ctx context.Context, w workload, set *indexSet) error {
	fmt.Fprintf(os.Stderr, "[%s] measuring %s (%d indexes)\n", w.name, set.name, len(set.specs))
	var names []string
	defer func() {
		for _, n := range names {
			_ = b.exec(context.Background(), "drop index if exists "+postgres.Ident("public", n))
		}
	}()
	for _, sp := range set.specs {
		n := indexdef.Name(sp)
		if err := b.exec(ctx, indexdef.CreateSQL(sp, n, false)); err != nil {
			return err
		}
		names = append(names, n)
		var size int64
		if err := b.pool.QueryRow(ctx, marker+"select pg_relation_size($1::regclass)", postgres.Ident(sp.Schema, n)).Scan(&size); err != nil {
			return err
		}
		set.indexBytes += size
	}
	if err := b.exec(ctx, "vacuum analyze"); err != nil {
		return err
	}
	cost, err := b.readCost(ctx, w.reads)
	if err != nil {
		return err
	}
	set.readCost = cost
	if err := b.exec(ctx, "checkpoint"); err != nil {
		return err
	}
	if set.coldWAL, set.fpiPerTxn, _, err = b.writeWAL(ctx, w.writes); err != nil {
		return err
	}
	// Warm runs: the one with the fewest full-page images (then the least
	// WAL) is kept, and a run with none ends the series early. A
	// checkpoint that starts during a run makes it log its pages again; on
	// a shared server that happens often (every DROP DATABASE forces one:
	// under the test suite, several a second), so a fixed number of runs
	// can all be caught.
	set.walPerTxn, set.warmFPI = math.Inf(1), math.Inf(1)
	for i := 0; i < maxWarmRuns; i++ {
		wal, fpi, rate, err := b.writeWAL(ctx, w.writes)
		if err != nil {
			return err
		}
		if fpi < set.warmFPI || (fpi == set.warmFPI && wal < set.walPerTxn) {
			set.walPerTxn, set.warmFPI = wal, fpi
		}
		set.txnPerSec = math.Max(set.txnPerSec, rate)
		set.warmRuns++
		if fpi == 0 && i+1 >= minWarmRuns {
			break
		}
	}
	// The read cost once more on fresh statistics; the cheaper total is
	// kept (the planner, on one ANALYZE sample in a few, prices a lookup
	// on an indexed column as a sequential scan).
	if err := b.exec(ctx, "analyze"); err != nil {
		return err
	}
	again, err := b.readCost(ctx, w.reads)
	if err != nil {
		return err
	}
	set.readCost = math.Min(set.readCost, again)
	if w.execute {
		fmt.Fprintf(os.Stderr, "[%s] timing the reads with %s\n", w.name, set.name)
		if set.execTime, err = b.timeWorkload(ctx, w.reads); err != nil {
			return err
		}
	}
	return nil
}

// readCost is Σ calls × the mean planner cost of each read over
// readSamples argument sets (a fixed seed): EXPLAIN with the values bound,
// so the plan is a custom plan priced with real constants.
func (b *bench) readCost(ctx context.Context, reads []stmt) (float64, error) {
	r := rand.New(rand.NewSource(7))
	total := 0.0
	for _, st := range reads {
		sum := 0.0
		for i := 0; i < readSamples; i++ {
			// No statement cache: each EXPLAIN is planned afresh, with
			// the values bound (a custom plan).
			cost, err := b.explainCost(ctx, st.sql, append([]any{pgx.QueryExecModeExec}, st.args(r)...)...)
			if err != nil {
				return 0, err
			}
			sum += cost
		}
		total += float64(st.calls) * sum / readSamples
	}
	return total, nil
}

// explainCost is the planner's total cost of sql with args (EXPLAIN, the
// statement is not run).
func (b *bench) explainCost(ctx context.Context, sql string, args ...any) (float64, error) {
	var doc []byte
	if err := b.pool.QueryRow(ctx, marker+"EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&doc); err != nil {
		return 0, fmt.Errorf("explain %.60q: %w", sql, err)
	}
	var plans []struct {
		Plan struct {
			TotalCost float64 `json:"Total Cost"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(doc, &plans); err != nil || len(plans) == 0 {
		return 0, fmt.Errorf("explain %.60q: no plan", sql)
	}
	return plans[0].Plan.TotalCost, nil
}

// writeWAL runs the write script — b.scriptTxns transactions in the window's
// mix, in a fixed-seed order, on one connection — and returns the WAL bytes
// and full-page images per write transaction from pg_stat_statements (the
// difference of its counters for this database's write statements;
// nothing is reset), and the transactions per second.
func (b *bench) writeWAL(ctx context.Context, writes []writeTxn) (wal, fpi, rate float64, err error) {
	var texts []string
	for _, t := range writes {
		texts = append(texts, t.sqls...)
	}
	wal0, fpi0, err := b.walCounters(ctx, texts)
	if err != nil {
		return 0, 0, 0, err
	}
	r := rand.New(rand.NewSource(11))
	scriptRun++
	total := writeCalls(writes)
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Release()
	// Commits do not wait for the WAL flush: the same records, a run
	// several times shorter, so fewer runs are caught by a checkpoint.
	if _, err := conn.Exec(ctx, marker+"set synchronous_commit = off"); err != nil {
		return 0, 0, 0, err
	}
	defer func() { _, _ = conn.Exec(context.Background(), marker+"reset synchronous_commit") }()
	began := time.Now()
	for i := 0; i < b.scriptTxns; i++ {
		k := r.Intn(total)
		var t writeTxn
		for _, c := range writes {
			if k < c.calls {
				t = c
				break
			}
			k -= c.calls
		}
		args := t.args(r)
		if len(t.sqls) == 1 {
			_, err = conn.Exec(ctx, t.sqls[0], args[0]...)
		} else {
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for j, sql := range t.sqls {
					if _, err := tx.Exec(ctx, sql, args[j]...); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("run %.40q: %w", t.sqls[0], err)
		}
	}
	n := float64(b.scriptTxns)
	rate = n / time.Since(began).Seconds()
	wal1, fpi1, err := b.walCounters(ctx, texts)
	if err != nil {
		return 0, 0, 0, err
	}
	return (wal1 - wal0) / n, (fpi1 - fpi0) / n, rate, nil
}

// walCounters sums pg_stat_statements' wal_bytes and wal_fpi over this
// database's entries of the write script's statements (texts: sent with
// parameters, so stored as written).
func (b *bench) walCounters(ctx context.Context, texts []string) (wal, fpi float64, err error) {
	err = b.pool.QueryRow(ctx, marker+`select coalesce(sum(wal_bytes), 0)::float8, coalesce(sum(wal_fpi), 0)::float8
  from pg_stat_statements s join pg_database d on d.oid = s.dbid
 where d.datname = current_database() and s.query = any($1)`, texts).Scan(&wal, &fpi)
	return wal, fpi, err
}

func specsOf(list []*events.IndexCandidateScored) []events.IndexSpec {
	out := make([]events.IndexSpec, 0, len(list))
	for _, c := range list {
		out = append(out, c.Index)
	}
	return out
}

func label(spec events.IndexSpec) string {
	l := spec.Table + "(" + strings.Join(spec.Columns, ",")
	for _, e := range spec.Expressions {
		if !strings.HasSuffix(l, "(") {
			l += ","
		}
		l += e.String()
	}
	l += ")"
	if spec.Predicate != "" {
		l += " WHERE " + spec.Predicate
	}
	return l
}

// printHeader prints the workload's shape and how the scorer read it.
func printHeader(w io.Writer, wl workload, rep *scorer.Report) {
	var pricing []string
	for m, n := range rep.Pricing {
		pricing = append(pricing, fmt.Sprintf("%s %d", m, n))
	}
	slices.Sort(pricing)
	fmt.Fprintf(w, "== %s: %d reads, %d write statements in %d transaction kinds (%d write txns per %s window), script %d txns; scorer: %d statements, %d unparsed, %d not evaluable, priced by %s\n",
		wl.name, len(wl.reads), len(wl.writeStatements()), len(wl.writes), writeCalls(wl.writes), wl.window, scriptTxns,
		rep.Statements, rep.Unparsed, rep.NotEvaluable, strings.Join(pricing, ", "))
}

// printSets prints one row per index set, the same columns for every
// workload; ratio is the read cost over the first set's (no secondary
// index), WAL change the WAL per write transaction over the first set's.
func printSets(w io.Writer, wl workload, sets []*indexSet) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tset\tindexes\tread plan cost\tratio\tWAL B/write txn\tWAL change\tits FPI/write txn\tafter checkpoint\tFPI/write txn\tindex MB\tselection\twhat-if calls\twrite txn/s\treads exec\tset")
	base := sets[0]
	for _, s := range sets {
		sel, calls := "-", "-"
		if s.scored {
			sel, calls = s.selection.Round(time.Millisecond).String(), fmt.Sprint(s.whatIfCalls)
		}
		exec := "-"
		if wl.execute {
			exec = s.execTime.Round(time.Millisecond).String()
		}
		var labels []string
		for _, sp := range s.specs {
			labels = append(labels, label(sp))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.3f\t%.1f\t%+.1f %%\t%.2f\t%.1f\t%.2f\t%.1f\t%s\t%s\t%.0f\t%s\t%s\n", wl.name, s.name, len(s.specs),
			s.readCost, s.readCost/base.readCost, s.walPerTxn, 100*(s.walPerTxn-base.walPerTxn)/base.walPerTxn, s.warmFPI, s.coldWAL, s.fpiPerTxn,
			float64(s.indexBytes)/(1<<20), sel, calls, s.txnPerSec, exec, strings.Join(labels, " "))
	}
	_ = tw.Flush()
}

// printParetoView lists the scorer's estimate for every candidate it
// chose, held or rejected: read saving against WAL per write transaction.
func printParetoView(w io.Writer, rep *scorer.Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "candidate\toutcome\tread saving\test. WAL B/write txn\tof it images\tHOT lost\twrite cost\tnet")
	rep.EachCandidate(func(c *events.IndexCandidateScored, outcome string) {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\n", label(c.Index), outcome, c.BenefitCost, c.WALBytesPerWriteTxn,
			c.WALImageBytesPerWriteTxn, c.HotUpdatesLost, c.WriteOverheadCost, c.NetBenefit)
	})
	_ = tw.Flush()
}
