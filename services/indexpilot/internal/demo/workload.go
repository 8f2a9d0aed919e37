package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Statement is one parameterized statement of the demo workload.
type Statement struct {
	// Name identifies the statement in progress lines and tables.
	Name string
	// SQL is the statement text with $n parameters. It carries no
	// IndexPilot marker: it plays the application.
	SQL string
	// Normalized is the text pg_stat_statements shows for SQL (constants
	// replaced by $n), to match its rows and the scorer's evidence.
	Normalized string
	// Args draws the arguments of one execution from rng.
	Args func(rng *rand.Rand) []any
	// Indexed is true for statements an existing index (a primary key)
	// already serves: they should get no recommendation.
	Indexed bool
}

// Workload returns the demo's statements for data loaded at scale s. All
// but the last filter or sort on unindexed columns; the last is served by
// contacts' primary key. Arguments mostly hit existing rows (e-mail
// look-ups always do), computed from the same hash that generated the
// data.
func Workload(s Scale) []Statement {
	stmts := workload(s)
	for i := range stmts {
		if stmts[i].Normalized == "" {
			stmts[i].Normalized = stmts[i].SQL
		}
	}
	return stmts
}

func workload(s Scale) []Statement {
	tenant := func(rng *rand.Rand) int64 { return 1 + rng.Int64N(int64(s.Tenants)) }
	contact := func(rng *rand.Rand) int64 { return 1 + rng.Int64N(int64(s.Contacts)) }
	end := baseEvent.Add(eventSpan * time.Second)
	return []Statement{
		{
			Name: "contact_by_email",
			SQL:  "select id, first_name, last_name, status from contacts where tenant_id = $1 and email = $2",
			Args: func(rng *rand.Rand) []any {
				c := contact(rng)
				return []any{tenantOfOrg(s, orgOfContact(s, c)), contactEmail(s, c)}
			},
		},
		{
			Name:       "contacts_by_status",
			SQL:        "select id, email, created_at from contacts where tenant_id = $1 and status = $2 order by created_at desc limit 20",
			Normalized: "select id, email, created_at from contacts where tenant_id = $1 and status = $2 order by created_at desc limit $3",
			Args: func(rng *rand.Rand) []any {
				return []any{tenant(rng), statuses[rng.IntN(len(statuses))]}
			},
		},
		{
			Name:       "recent_interactions",
			SQL:        "select id, kind, occurred_at from interactions where contact_id = $1 order by occurred_at desc limit 10",
			Normalized: "select id, kind, occurred_at from interactions where contact_id = $1 order by occurred_at desc limit $2",
			Args:       func(rng *rand.Rand) []any { return []any{contact(rng)} },
		},
		{
			Name: "organizations_by_industry",
			SQL:  "select id, name, country from organizations where tenant_id = $1 and industry = $2",
			Args: func(rng *rand.Rand) []any {
				return []any{tenant(rng), industries[rng.IntN(len(industries))]}
			},
		},
		{
			Name: "interactions_by_kind_since",
			SQL:  "select count(*) from interactions where tenant_id = $1 and kind = $2 and occurred_at >= $3",
			Args: func(rng *rand.Rand) []any {
				days := 7 + rng.IntN(84)
				return []any{tenant(rng), kinds[rng.IntN(len(kinds))], end.AddDate(0, 0, -days)}
			},
		},
		{
			Name:    "contact_by_id",
			SQL:     "select id, email, status from contacts where id = $1",
			Args:    func(rng *rand.Rand) []any { return []any{contact(rng)} },
			Indexed: true,
		},
	}
}

// argPlan draws perStatement argument lists for every statement, each
// statement from its own generator seeded with (seed, its position), so
// that the arguments depend only on the seed and never on execution order
// or concurrency. Drive and Measure with the same seed use the same
// arguments.
func argPlan(stmts []Statement, perStatement int, seed int64) [][][]any {
	plan := make([][][]any, len(stmts))
	for i, st := range stmts {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		plan[i] = make([][]any, perStatement)
		for k := range plan[i] {
			plan[i][k] = st.Args(rng)
		}
	}
	return plan
}

// runOnce executes a statement through the extended protocol with a cached
// prepared statement (so that pg_stat_statements normalizes it once) and
// reads every row. It returns the number of rows.
func runOnce(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args []any) (int64, error) {
	full := make([]any, 0, len(args)+1)
	full = append(full, pgx.QueryExecModeCacheStatement)
	full = append(full, args...)
	rows, err := q.Query(ctx, sql, full...)
	if err != nil {
		return 0, err
	}
	var n int64
	for rows.Next() {
		n++
	}
	rows.Close()
	return n, rows.Err()
}

// Drive runs every statement exactly perStatement times with deterministic
// arguments from seed, interleaved round-robin, over a few concurrent
// connections of pool. Progress is a counter line. The first failure stops
// the run; the error names the statement, never its arguments.
func Drive(ctx context.Context, pool *pgxpool.Pool, stmts []Statement, perStatement int, seed int64, progress io.Writer) error {
	progress = orDiscard(progress)
	if perStatement < 1 || len(stmts) == 0 {
		return errors.New("drive workload: need at least one statement and one execution each")
	}
	plan := argPlan(stmts, perStatement, seed)
	total := int64(len(stmts) * perStatement)

	workers := min(runtime.NumCPU(), int(pool.Config().MaxConns), 4)
	workers = max(workers, 1)

	type job struct{ stmt, iter int }
	jobs := make(chan job)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				st := stmts[j.stmt]
				if _, err := runOnce(ctx, pool, st.SQL, plan[j.stmt][j.iter]); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() {
							firstErr = fmt.Errorf("run statement %s: %w", st.Name, err)
							cancel()
						})
					}
					continue
				}
				done.Add(1)
			}
		})
	}

	begin := time.Now()
	stopTicker := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		if progress == io.Discard {
			return
		}
		// On a terminal the counter rewrites one line; elsewhere (logs,
		// pipes) it prints a line at every further tenth, at most every
		// two seconds.
		tty := isTerminal(progress)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var lastPrinted time.Time
		var lastTenth int64
		for {
			select {
			case <-stopTicker:
				return
			case <-t.C:
				n := done.Load()
				if tty {
					fmt.Fprintf(progress, "\rdrive: %d/%d queries", n, total)
					continue
				}
				if tenth := n * 10 / total; tenth > lastTenth && time.Since(lastPrinted) >= 2*time.Second {
					fmt.Fprintf(progress, "drive: %d/%d queries\n", n, total)
					lastTenth, lastPrinted = tenth, time.Now()
				}
			}
		}
	}()

	// The final line starts with \r on a terminal to replace the counter.
	cr := ""
	if isTerminal(progress) {
		cr = "\r"
	}

feed:
	for k := range perStatement {
		for i := range stmts {
			select {
			case jobs <- job{stmt: i, iter: k}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	close(stopTicker)
	<-tickerDone

	if firstErr != nil {
		fmt.Fprintf(progress, "%sdrive: %d/%d queries, stopped by an error\n", cr, done.Load(), total)
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(progress, "%sdrive: %d/%d queries, interrupted\n", cr, done.Load(), total)
		return fmt.Errorf("drive workload: %w", err)
	}
	fmt.Fprintf(progress, "%sdrive: %d/%d queries (%d statements x %d) in %s on %d connections\n",
		cr, done.Load(), total, len(stmts), perStatement, since(begin), workers)
	return nil
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
