// Command scorer-bench measures the quality of the scorer's index
// selection on real workloads against a PostgreSQL server: for each
// workload it creates a throwaway database, loads data, measures it with
// no secondary index (the reads' plan cost with their real constants, the
// WAL per write transaction of a fixed-seed write script, and for some the
// reads' execution time), scores the workload, builds the chosen indexes
// and measures again, and prints one row per index set. See
// docs/benchmarks.md.
//
//	go run ./services/scorer/cmd/scorer-bench [--admin URL] [--workloads demo,pgbench,synthetic,analytical,oltp]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

var marker = postgres.Marker("bench")

// stmt is one workload statement: its normalized text (what
// pg_stat_statements would report), how many times it runs in the scoring
// window, and its arguments for the i-th run.
type stmt struct {
	sql   string
	calls int
	args  func(r *rand.Rand) []any
}

// workload is a named data set, its reads and its write mix.
type workload struct {
	name string
	load func(ctx context.Context, b *bench) error
	// reads are the statements an index can speed up, priced for the
	// read cost (pgbench's include an UPDATE that finds its rows by an
	// unindexed column).
	reads []stmt
	// writes is the write mix, run as the fixed-seed write script.
	writes []writeTxn
	// window is the scoring window the calls are observed in.
	window time.Duration
	// execute times the reads for real with each set (false where that
	// would take too long).
	execute bool
	// others, when set, gives more index sets to measure after the
	// chosen one (it may score again: it runs before anything is built);
	// check then writes its notes to notes, and an error is a failed check.
	others func(ctx context.Context, run *benchRun) ([]*indexSet, error)
	check  func(ctx context.Context, run *benchRun, notes io.Writer) error
}

// bench is one workload's throwaway database.
type bench struct {
	admin, dsn, db string
	pool           *pgxpool.Pool
	// runs is the number of timed runs of the reads; scriptTxns the
	// length of the write script.
	runs, scriptTxns int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet("scorer-bench", flag.ContinueOnError)
	admin := fs.String("admin", envOr("INDEXPILOT_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"), "admin connection URL (creates and drops its own databases)")
	names := fs.String("workloads", "demo,pgbench,synthetic", "comma-separated: demo, pgbench, synthetic, analytical, oltp")
	runs := fs.Int("runs", 3, "timed runs of the reads with each set, for the workloads that execute them (the median is reported)")
	verbose := fs.Bool("verbose", false, "log the scorer's decisions to stderr and print every workload's Pareto view (read saving against estimated WAL per candidate)")
	budget := fs.Int64("budget-mb", 256, "scorer.storage_budget_mb (the bench databases are small: 10 % of them is a few MB)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scorer-bench:", err)
		os.Exit(2)
	}
	for _, n := range strings.Split(*names, ",") {
		n = strings.TrimSpace(n)
		if n == "analytical" {
			// Read-only: its own report, literal statements priced.
			r, err := runAnalytical(ctx, *admin, *budget, *verbose)
			if err != nil {
				fmt.Fprintf(os.Stderr, "scorer-bench: analytical: %v\n", err)
				os.Exit(1)
			}
			printAnalytical(os.Stdout, r)
			continue
		}
		w, ok := workloads()[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "scorer-bench: unknown workload %q\n", n)
			os.Exit(2)
		}
		if err := runWorkload(ctx, *admin, w, *runs, *budget, *verbose, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "scorer-bench: %s: %v\n", w.name, err)
			os.Exit(1)
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
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

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// tableCounters reads the write counters of every user table, once every
// write of the bench's connections is counted (settleStats).
func (b *bench) tableCounters(ctx context.Context) (map[string]*events.TableStatObserved, error) {
	if err := b.settleStats(ctx); err != nil {
		return nil, err
	}
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

// settleStats closes the pool's connections and waits until their backends
// have left pg_stat_activity. A backend sends its table counters up to a
// second after its last transaction, but always before it exits: without
// this, a load's rows can land in the counters read after it, and be taken
// for the window's writes.
func (b *bench) settleStats(ctx context.Context) error {
	b.pool.Reset()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var others int
		if err := b.pool.QueryRow(ctx, marker+`select count(*) from pg_stat_activity
 where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`).Scan(&others); err != nil {
			return err
		}
		if others == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("settle statistics: %d other connections to the bench database still open", others)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
