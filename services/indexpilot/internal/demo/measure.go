package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Timing is the client-observed execution time of one statement over a
// measured run: from sending it to reading its last row.
type Timing struct {
	// Count is the number of timed executions.
	Count int
	// Mean, P50 and P95 summarize the timed executions (nearest rank).
	Mean, P50, P95 time.Duration
	// Rows is the total number of rows the timed executions returned;
	// equal before and after when an index changed only the plan.
	Rows int64
}

// Measure runs every statement exactly perStatement times, one statement
// after the other on a single connection (no competing queries), with the
// arguments Drive would draw from the same seed, and returns the timings
// keyed by statement name. Each statement first runs once untimed with its
// first arguments, to prepare it and warm the cache, so a before and an
// after measurement compare the same number of timed executions of the
// same arguments under the same conditions.
func Measure(ctx context.Context, pool *pgxpool.Pool, stmts []Statement, perStatement int, seed int64) (map[string]Timing, error) {
	if perStatement < 1 || len(stmts) == 0 {
		return nil, errors.New("measure workload: need at least one statement and one execution each")
	}
	plan := argPlan(stmts, perStatement, seed)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %s", postgres.Describe(err))
	}
	defer conn.Release()

	out := make(map[string]Timing, len(stmts))
	durations := make([]time.Duration, perStatement)
	for i, st := range stmts {
		if _, err := runOnce(ctx, conn, st.SQL, plan[i][0]); err != nil {
			return nil, fmt.Errorf("warm up statement %s: %w", st.Name, err)
		}
		var rows int64
		var total time.Duration
		for k := range perStatement {
			t := time.Now()
			n, err := runOnce(ctx, conn, st.SQL, plan[i][k])
			d := time.Since(t)
			if err != nil {
				return nil, fmt.Errorf("measure statement %s: %w", st.Name, err)
			}
			durations[k] = d
			total += d
			rows += n
		}
		sorted := slices.Clone(durations)
		slices.Sort(sorted)
		out[st.Name] = Timing{
			Count: perStatement,
			Mean:  total / time.Duration(perStatement),
			P50:   percentile(sorted, 50),
			P95:   percentile(sorted, 95),
			Rows:  rows,
		}
	}
	return out, nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// FormatComparison writes a table comparing two measurements by
// statement: executions, mean before and after, speed-up (mean before /
// mean after), and p95 before and after. Statements present in only one
// measurement show "-" for the other; unequal counts are flagged, since a
// comparison is only fair on equal query counts.
func FormatComparison(w io.Writer, before, after map[string]Timing) {
	names := make([]string, 0, len(before)+len(after))
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "statement\tcount\tmean before\tmean after\tspeed-up\tp95 before\tp95 after")
	for _, n := range names {
		b, okB := before[n]
		a, okA := after[n]
		count := "-"
		switch {
		case okB && okA && b.Count == a.Count:
			count = fmt.Sprint(b.Count)
		case okB && okA:
			count = fmt.Sprintf("%d/%d UNEQUAL", b.Count, a.Count)
		case okB:
			count = fmt.Sprint(b.Count)
		case okA:
			count = fmt.Sprint(a.Count)
		}
		speedup := "-"
		if okB && okA && a.Mean > 0 {
			speedup = fmt.Sprintf("%.1fx", float64(b.Mean)/float64(a.Mean))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n, count,
			ms(b.Mean, okB), ms(a.Mean, okA), speedup, ms(b.P95, okB), ms(a.P95, okA))
	}
	_ = tw.Flush()
}

// ms renders a duration in milliseconds with microsecond resolution.
func ms(d time.Duration, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}
