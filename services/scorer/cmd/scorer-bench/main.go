// Command scorer-bench measures the quality of the scorer's index
// selection on real workloads against the local PostgreSQL: for each
// workload it creates a throwaway database, loads data, runs the
// statements, scores them, builds the chosen indexes and runs the
// statements again, and prints one table row. See docs/benchmarks.md.
//
//	go run ./services/scorer/cmd/scorer-bench [--admin URL] [--workloads demo,pgbench,synthetic]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/scorer"
)

var marker = postgres.Marker("bench")

// stmt is one workload statement: its normalized text (what
// pg_stat_statements would report), how many times it runs, and its
// arguments for the i-th run.
type stmt struct {
	sql   string
	calls int
	args  func(r *rand.Rand) []any
}

// workload is a named data set plus statements.
type workload struct {
	name    string
	load    func(ctx context.Context, b *bench) error
	stmts   []stmt
	execute bool   // run the statements and pgbench (false: selection only)
	script  string // pgbench script for the write TPS ("" = default TPC-B)
}

type bench struct {
	admin, dsn, db string
	pool           *pgxpool.Pool
	pgbenchSecs    int
	runs           int
}

type result struct {
	name                   string
	statements             int
	costBefore, costAfter  float64
	timeBefore, timeAfter  time.Duration
	indexBytes             int64
	chosen                 []string
	tpsBefore, tpsAfter    float64
	selection              time.Duration
	whatIfCalls            int
	hits, misses           uint64
	notEvaluable, unparsed int
	executed               bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet("scorer-bench", flag.ContinueOnError)
	admin := fs.String("admin", envOr("INDEXPILOT_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"), "admin connection URL (creates and drops its own databases)")
	names := fs.String("workloads", "demo,pgbench,synthetic", "comma-separated: demo, pgbench, synthetic")
	secs := fs.Int("pgbench-seconds", 10, "duration of each pgbench write run")
	runs := fs.Int("runs", 3, "timed runs of the workload before and after (the median is reported)")
	verbose := fs.Bool("verbose", false, "log the scorer's decisions to stderr")
	budget := fs.Int64("budget-mb", 256, "scorer.storage_budget_mb (the bench databases are small: 10 % of them is a few MB)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scorer-bench:", err)
		os.Exit(2)
	}
	var results []result
	for _, n := range strings.Split(*names, ",") {
		w, ok := workloads()[strings.TrimSpace(n)]
		if !ok {
			fmt.Fprintf(os.Stderr, "scorer-bench: unknown workload %q\n", n)
			os.Exit(2)
		}
		r, err := runWorkload(ctx, *admin, w, *secs, *runs, *budget, *verbose)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scorer-bench: %s: %v\n", w.name, err)
			os.Exit(1)
		}
		results = append(results, r)
	}
	print(os.Stdout, results)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func runWorkload(ctx context.Context, admin string, w workload, secs, runs int, budgetMB int64, verbose bool) (res result, err error) {
	res = result{name: w.name, statements: len(w.stmts), executed: w.execute}
	b := &bench{admin: admin, db: fmt.Sprintf("ipscorerbench_%s_%d", w.name, os.Getpid()), pgbenchSecs: secs, runs: runs}
	aconn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return res, fmt.Errorf("connect admin: %w", err)
	}
	defer aconn.Close(context.Background())
	if _, err := aconn.Exec(ctx, marker+"create database "+postgres.Ident(b.db)); err != nil {
		return res, fmt.Errorf("create database: %w", err)
	}
	defer func() {
		if b.pool != nil {
			b.pool.Close()
		}
		_, derr := aconn.Exec(context.Background(), marker+"drop database if exists "+postgres.Ident(b.db)+" with (force)")
		if err == nil && derr != nil {
			err = fmt.Errorf("drop database: %w", derr)
		}
	}()
	u, err := url.Parse(admin)
	if err != nil {
		return res, fmt.Errorf("parse admin url: %w", err)
	}
	u.Path = "/" + b.db
	b.dsn = u.String()
	if b.pool, err = pgxpool.New(ctx, b.dsn); err != nil {
		return res, err
	}
	for _, sql := range []string{"create extension if not exists hypopg"} {
		if _, err := b.pool.Exec(ctx, marker+sql); err != nil {
			return res, fmt.Errorf("%s: %w", sql, err)
		}
	}
	if _, err := metadata.Migrate(ctx, b.pool); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "[%s] loading data\n", w.name)
	if err := w.load(ctx, b); err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	if _, err := b.pool.Exec(ctx, marker+"vacuum analyze"); err != nil {
		return res, err
	}

	// The scorer sees the workload as one window of query statistics and,
	// for the write rate, two table statistics samples around a pgbench
	// run of the same length as the window.
	cfg := config.Default()
	cfg.DatabaseURL = b.dsn
	cfg.Targets = []config.Target{{Name: "bench", DSN: b.dsn}}
	cfg.Scorer.Window = time.Duration(secs) * time.Second
	cfg.Scorer.StorageBudgetMB = budgetMB
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	mem := bus.NewMemory(logger)
	defer func() { _ = mem.Close() }()
	targets := stage.NewTargets(cfg.Targets, scorer.Name)
	defer targets.Close()
	s, err := scorer.New(stage.Deps{Config: cfg, Bus: mem, Control: b.pool, Targets: targets, Logger: logger})
	if err != nil {
		return res, err
	}
	end := time.Now().UTC().Truncate(time.Second)
	if w.execute {
		fmt.Fprintf(os.Stderr, "[%s] pgbench before\n", w.name)
		before, err := b.tableCounters(ctx)
		if err != nil {
			return res, err
		}
		if res.tpsBefore, err = b.pgbench(ctx, w.script); err != nil {
			return res, err
		}
		after, err := b.tableCounters(ctx)
		if err != nil {
			return res, err
		}
		for name, c := range before {
			a := after[name]
			for i, ts := range []*events.TableStatObserved{c, a} {
				ts.ObservedAt = end.Add(time.Duration(i-1) * cfg.Scorer.Window)
				env, err := events.Wrap(ts, "bench", "", ts.ObservedAt)
				if err != nil {
					return res, err
				}
				if _, err := s.HandleTableStat(ctx, env, ts); err != nil {
					return res, err
				}
			}
		}
		fmt.Fprintf(os.Stderr, "[%s] timing the workload without indexes\n", w.name)
		if res.timeBefore, err = b.timeWorkload(ctx, w.stmts); err != nil {
			return res, err
		}
	}
	for i, st := range w.stmts {
		q := &events.QueryStatObserved{Target: "bench", QueryID: fmt.Sprintf("%05d", i), Query: st.sql,
			WindowStart: end.Add(-cfg.Scorer.Window), WindowEnd: end, Calls: int64(st.calls),
			TotalExecTimeMs: float64(st.calls), MeanExecTimeMs: 1, Rows: int64(st.calls)}
		env, err := events.Wrap(q, "bench", "", end)
		if err != nil {
			return res, err
		}
		if _, err := s.HandleQueryStat(ctx, env, q); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(os.Stderr, "[%s] scoring %d statements\n", w.name, len(w.stmts))
	rep, err := s.Score(ctx, "bench", scorer.Options{})
	if err != nil {
		return res, err
	}
	res.selection, res.whatIfCalls, res.hits, res.misses = rep.Duration, rep.WhatIfCalls, rep.CacheHits, rep.CacheMisses
	res.costBefore, res.costAfter = rep.WorkloadCostBefore, rep.WorkloadCostAfter
	res.notEvaluable, res.unparsed = rep.NotEvaluable, rep.Unparsed
	for _, c := range rep.Chosen {
		label := c.Index.Table + "(" + strings.Join(c.Index.Columns, ",")
		for _, e := range c.Index.Expressions {
			if !strings.HasSuffix(label, "(") {
				label += ","
			}
			label += e.String()
		}
		res.chosen = append(res.chosen, label+")")
	}
	if !w.execute {
		return res, nil
	}
	fmt.Fprintf(os.Stderr, "[%s] building %d indexes\n", w.name, len(rep.Chosen))
	for _, c := range rep.Chosen {
		name := indexdef.Name(c.Index)
		if _, err := b.pool.Exec(ctx, marker+indexdef.CreateSQL(c.Index, name, false)); err != nil {
			return res, fmt.Errorf("build %s: %w", name, err)
		}
		var n int64
		if err := b.pool.QueryRow(ctx, marker+"select pg_relation_size($1::regclass)", postgres.Ident(c.Index.Schema, name)).Scan(&n); err != nil {
			return res, err
		}
		res.indexBytes += n
	}
	if _, err := b.pool.Exec(ctx, marker+"vacuum analyze"); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "[%s] timing the workload with the chosen indexes\n", w.name)
	if res.timeAfter, err = b.timeWorkload(ctx, w.stmts); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "[%s] pgbench after\n", w.name)
	if res.tpsAfter, err = b.pgbench(ctx, w.script); err != nil {
		return res, err
	}
	return res, nil
}

// timeWorkload runs every statement its number of times with the same
// arguments (a fixed seed), b.runs times, and returns the median total.
func (b *bench) timeWorkload(ctx context.Context, stmts []stmt) (time.Duration, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var totals []time.Duration
	for run := 0; run < b.runs; run++ {
		r := rand.New(rand.NewSource(42))
		began := time.Now()
		for _, st := range stmts {
			for i := 0; i < st.calls; i++ {
				rows, err := conn.Query(ctx, st.sql, st.args(r)...)
				if err != nil {
					return 0, fmt.Errorf("run %.40q: %w", st.sql, err)
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return 0, fmt.Errorf("run %.40q: %w", st.sql, err)
				}
			}
		}
		totals = append(totals, time.Since(began))
	}
	sort.Slice(totals, func(i, j int) bool { return totals[i] < totals[j] })
	return totals[len(totals)/2], nil
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs pgbench for b.pgbenchSecs seconds with two clients and
// returns its TPS.
func (b *bench) pgbench(ctx context.Context, script string) (float64, error) {
	// Start from a clean slate: no checkpoint of the load's WAL in the
	// middle of the timed run.
	if _, err := b.pool.Exec(ctx, marker+"checkpoint"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	args := []string{"-n", "-T", strconv.Itoa(b.pgbenchSecs), "-c", "2", "-j", "2"}
	if script != "" {
		f := filepath.Join(os.TempDir(), fmt.Sprintf("ipscorerbench-%d.sql", os.Getpid()))
		if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
			return 0, err
		}
		defer os.Remove(f)
		args = append(args, "-f", f)
	}
	args = append(args, b.dsn)
	out, err := exec.CommandContext(ctx, "pgbench", args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, lastLine(string(out)))
	}
	m := tpsRE.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in output: %s", lastLine(string(out)))
	}
	return strconv.ParseFloat(m[1], 64)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// tableCounters reads the write counters of every user table.
func (b *bench) tableCounters(ctx context.Context) (map[string]*events.TableStatObserved, error) {
	if _, err := b.pool.Exec(ctx, marker+"select pg_stat_clear_snapshot()"); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, marker+`select schemaname, relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
  from pg_stat_user_tables where schemaname = 'public'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*events.TableStatObserved{}
	for rows.Next() {
		ts := &events.TableStatObserved{Target: "bench"}
		if err := rows.Scan(&ts.Schema, &ts.Table, &ts.Inserts, &ts.Updates, &ts.HotUpdates, &ts.Deletes); err != nil {
			return nil, err
		}
		out[ts.Schema+"."+ts.Table] = ts
	}
	return out, rows.Err()
}

func print(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tstatements\tplan cost before\tafter\tratio\texec before\tafter\tspeed-up\tindex bytes\tTPS before\tafter\tTPS change\tselection\twhat-if calls\tcache hit rate\tchosen")
	for _, r := range results {
		hit := 0.0
		if r.hits+r.misses > 0 {
			hit = 100 * float64(r.hits) / float64(r.hits+r.misses)
		}
		ratio := 0.0
		if r.costBefore > 0 {
			ratio = r.costAfter / r.costBefore
		}
		execB, execA, speed, tpsB, tpsA, tpsC, bytes := "-", "-", "-", "-", "-", "-", "-"
		if r.executed {
			execB, execA = r.timeBefore.Round(time.Millisecond).String(), r.timeAfter.Round(time.Millisecond).String()
			speed = fmt.Sprintf("%.1f×", float64(r.timeBefore)/float64(r.timeAfter))
			tpsB, tpsA = fmt.Sprintf("%.0f", r.tpsBefore), fmt.Sprintf("%.0f", r.tpsAfter)
			tpsC = fmt.Sprintf("%+.1f %%", 100*(r.tpsAfter-r.tpsBefore)/r.tpsBefore)
			bytes = strconv.FormatInt(r.indexBytes, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1f %%\t%s\n",
			r.name, r.statements, r.costBefore, r.costAfter, ratio, execB, execA, speed, bytes, tpsB, tpsA, tpsC,
			r.selection.Round(time.Millisecond), r.whatIfCalls, hit, strings.Join(r.chosen, " "))
	}
	_ = tw.Flush()
}
