package pgstat

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
)

// TestEvictionStatementsDeltas overflows pg_stat_statements for real on
// every version, 14 to 18, and polls it the way the collector does
// (ReadStatements, then delta.Compute) before and after each eviction.
//
// Eviction is server-wide, so it runs only on the eviction servers
// (pgtest.ForEachEvictionServer: a cluster of its own per version with
// pg_stat_statements.max = 100, which `make test-versions` starts for this
// test alone); a shared server would lose other tests' entries.
//
// The statement under watch, E, is evicted four times by a flood of
// distinct statements (pg_stat_statements_info.dealloc goes up, E's query
// id leaves the view):
//   - A: a poll runs while E is out; E comes back and counts in full from
//     that poll;
//   - B: E is out and back between two polls with fewer calls than before:
//     re-baselined;
//   - C: the same with more calls but fewer rows than before: re-baselined;
//   - D: the same with more calls and rows than before: on 17+
//     stats_since re-baselines it; before 17 the collector cannot tell and
//     publishes the difference, which is less than what ran.
//
// Then a full pg_stat_statements_reset() (the server is the test's alone):
// stats_reset moves and every statement is re-baselined, even E coming
// back with higher counters, on every version.
//
// Every poll also checks every event of the database: no counter is ever
// negative, and no statement (E or any flood statement, evicted and back
// any number of times) is published with more calls than it ran.
func TestEvictionStatementsDeltas(t *testing.T) {
	pgtest.ForEachEvictionServer(t, func(t *testing.T, v pgtest.Version) {
		// Each version has its own server: they run side by side.
		t.Parallel()
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.RequireExtension(t, "pg_stat_statements")

		var maxEntries int
		require.NoError(t, db.Pool.QueryRow(ctx, "select current_setting('pg_stat_statements.max')::int").Scan(&maxEntries))
		require.LessOrEqual(t, maxEntries, 500,
			"an eviction server keeps few statements (pg_stat_statements.max = 100 from pg-versions.sh evict); this one keeps %d: is it a shared server?", maxEntries)

		// The flood: 3 × pg_stat_statements.max distinct statements, one
		// per column of a wide table, sent as one simple-protocol query.
		// Run in a cycle, each comes back as a new entry: the 2 × max
		// statements behind it evicted it.
		floodN := 3 * maxEntries
		cols := make([]string, floodN)
		floodTexts := make([]string, floodN)
		for i := range floodN {
			cols[i] = fmt.Sprintf("c%d int", i+1)
			floodTexts[i] = fmt.Sprintf("select c%d from flood", i+1)
		}
		flood := strings.Join(floodTexts, ";\n")
		db.Exec(t,
			"create table items (id bigint primary key, sku text not null)",
			"insert into items select g, 'sku-' || g from generate_series(1, 100) g",
			"create table flood ("+strings.Join(cols, ", ")+")",
		)

		// E sleeps $2 seconds for each row it finds: the test sets its
		// rows counter and, in D, raises its execution time as well.
		const q = "select sku from items where id = $1 and pg_sleep($2) is not null"
		var ran int64 // E's calls
		// run runs E n times, each finding its row (hit) or none (E's rows
		// counter goes up by n or by 0) and sleeping sleep seconds a row.
		run := func(n int, hit bool, sleep float64) {
			t.Helper()
			for i := range n {
				id := -(i + 1)
				if hit {
					id = i + 1
				}
				_, err := db.Pool.Exec(ctx, q, id, sleep)
				require.NoError(t, err)
			}
			ran += int64(n)
		}
		dealloc := func() int64 {
			t.Helper()
			var n int64
			require.NoError(t, db.Pool.QueryRow(ctx, "select dealloc from pg_stat_statements_info").Scan(&n))
			return n
		}
		var queryID int64 // E's
		inView := func() bool {
			t.Helper()
			var n int
			require.NoError(t, db.Pool.QueryRow(ctx, `select count(*) from pg_stat_statements
 where dbid = (select oid from pg_database where datname = current_database()) and queryid = $1`, queryID).Scan(&n))
			return n > 0
		}
		floodRounds := 0
		// evict runs the flood until E has left the view (its usage, one
		// per call, decays at each deallocation: the more calls, the
		// longer it stays) and checks that the server deallocated.
		evict := func() {
			t.Helper()
			before := dealloc()
			for round := 1; inView(); round++ {
				require.LessOrEqual(t, round, 40, "E still in pg_stat_statements after %d floods of %d statements", round-1, floodN)
				_, err := db.Pool.Exec(ctx, flood, pgx.QueryExecModeSimpleProtocol)
				require.NoError(t, err)
				floodRounds++
			}
			require.Greater(t, dealloc(), before, "pg_stat_statements_info.dealloc counts the deallocations")
		}

		deallocStart := dealloc()
		src, err := ProbeStatements(ctx, db.Pool)
		require.NoError(t, err)
		require.True(t, src.Usable, "probe said: %s", src.Reason)
		require.Equal(t, v.Major >= 17, src.HasStatsSince())

		var (
			texts      Texts
			base       *delta.Baseline
			statsReset time.Time
			resetAll   bool                 // a full reset ran since the last poll
			published  = map[string]int64{} // calls published, by statement text
		)
		// poll reads the view as the collector does, computes the deltas,
		// checks every event and returns E's row (ok false when E is not
		// in the view) and the calls published for E.
		poll := func() (row delta.Row, ok bool, calls int64) {
			t.Helper()
			s, err := ReadStatements(ctx, db.Pool, src, time.Now().UTC(), &texts)
			require.NoError(t, err)
			if base == nil || resetAll {
				require.True(t, base == nil || s.StatsReset.After(statsReset), "the full reset moved pg_stat_statements_info.stats_reset")
				statsReset, resetAll = s.StatsReset, false
			}
			require.True(t, s.StatsReset.Equal(statsReset), "nothing reset the whole view but the full reset: only eviction re-baselines here")
			for _, r := range s.Rows {
				if r.Query == q {
					row, ok = r, true
				}
			}
			evs, next := delta.Compute("main", base, s)
			base = next
			for _, e := range evs {
				require.Positive(t, e.Calls, "%s", e.Query)
				require.GreaterOrEqual(t, e.TotalExecTimeMs, 0.0, "%s", e.Query)
				require.GreaterOrEqual(t, e.Rows, int64(0), "%s", e.Query)
				require.GreaterOrEqual(t, e.SharedBlksHit, int64(0), "%s", e.Query)
				require.GreaterOrEqual(t, e.SharedBlksRead, int64(0), "%s", e.Query)
				published[e.Query] += e.Calls
				if e.Query == q {
					calls = e.Calls
				}
			}
			// No call counted twice: a flood statement ran once a round.
			require.LessOrEqual(t, published[q], ran, "E published with more calls than it ran")
			for _, text := range floodTexts {
				require.LessOrEqual(t, published[text], int64(floodRounds), "%q published with more calls than it ran", text)
			}
			return row, ok, calls
		}

		// A normal start: the history, then a delta.
		run(3, true, 0)
		row, ok, calls := poll()
		require.True(t, ok)
		require.Equal(t, int64(3), calls, "the first poll publishes the history")
		queryID, err = strconv.ParseInt(row.QueryID, 10, 64)
		require.NoError(t, err)
		run(2, true, 0)
		_, _, calls = poll()
		require.Equal(t, int64(2), calls, "a normal delta")

		// A: out while a poll runs, then back.
		evict()
		_, ok, calls = poll()
		require.False(t, ok, "E is not in the view after the flood")
		require.Zero(t, calls)
		run(4, true, 0)
		row, ok, calls = poll()
		require.True(t, ok)
		require.Equal(t, int64(4), row.Calls, "E came back as a new entry")
		require.Equal(t, int64(4), calls, "every call of an entry that was not there at the previous poll is new")
		run(1, true, 0)
		row, _, calls = poll()
		require.Equal(t, int64(1), calls, "and counts from there")

		// B: out and back between two polls, with fewer calls than before.
		before := row
		evict()
		run(2, true, 0)
		row, ok, calls = poll()
		require.True(t, ok)
		require.Equal(t, int64(2), row.Calls, "E came back as a new entry (%d calls before)", before.Calls)
		require.Zero(t, calls, "counters lower than before: re-baselined, no negative delta")
		run(3, true, 0)
		row, _, calls = poll()
		require.Equal(t, int64(3), calls, "and counts from there")

		// C: out and back between two polls with more calls but fewer rows
		// (its calls find nothing): a counter went down, so re-baselined
		// on every version; the rows are never published negative.
		before = row
		evict()
		run(int(before.Calls)+3, false, 0)
		row, ok, calls = poll()
		require.True(t, ok)
		require.Equal(t, before.Calls+3, row.Calls, "E came back as a new entry")
		require.Less(t, row.Rows, before.Rows)
		require.Zero(t, calls, "rows went down: re-baselined although calls went up")
		run(1, true, 0)
		row, _, calls = poll()
		require.Equal(t, int64(1), calls, "and counts from there")

		// D: out and back between two polls with more calls, rows and
		// execution time (5 ms a call against microseconds): only
		// stats_since tells.
		before = row
		evict()
		run(int(before.Calls)+3, true, 0.005)
		row, ok, calls = poll()
		require.True(t, ok)
		require.Equal(t, before.Calls+3, row.Calls, "E came back as a new entry")
		require.Greater(t, row.Rows, before.Rows)
		if v.Major >= 17 {
			require.True(t, row.StatsSince.After(before.StatsSince), "stats_since %v moved past %v", row.StatsSince, before.StatsSince)
			require.Zero(t, calls, "a changed stats_since re-baselines even with higher counters")
		} else {
			// Before 17 nothing tells the new entry from the old one: the
			// difference is published (fewer calls than ran), or nothing
			// when another of its counters (blocks read, execution time)
			// happens to be lower than the old entry's.
			require.Contains(t, []int64{0, 3}, calls,
				"before 17: the counters' difference or a baseline, never more than the difference")
		}
		run(1, true, 0)
		_, _, calls = poll()
		require.Equal(t, int64(1), calls, "and counts from there")

		var floodPublished int64
		for _, text := range floodTexts {
			floodPublished += published[text]
		}
		require.Positive(t, floodPublished, "the flood statements were read and published too (their check above is not empty)")
		deallocs, floods, ranBefore, publishedBefore := dealloc()-deallocStart, floodRounds, ran, published[q]

		// E: a full pg_stat_statements_reset() (safe here: the server is
		// this test's alone), then E with more calls and rows than before:
		// a moved stats_reset re-baselines every statement, on every
		// version, whatever its counters.
		before = row
		_, err = db.Pool.Exec(ctx, "select pg_stat_statements_reset()")
		require.NoError(t, err)
		resetAll = true
		published = map[string]int64{}
		ran, floodRounds = 0, 0
		run(int(before.Calls)+5, true, 0)
		row, ok, calls = poll()
		require.True(t, ok)
		require.Equal(t, before.Calls+5, row.Calls, "E counts from the reset")
		require.Zero(t, calls, "a full reset re-baselines every statement, even with higher counters")
		run(2, true, 0)
		_, _, calls = poll()
		require.Equal(t, int64(2), calls, "and counts from there")

		t.Logf("PostgreSQL %d: %d deallocations over %d floods of %d statements; E ran %d times, %d published; flood calls published %d",
			v.Major, deallocs, floods, floodN, ranBefore, publishedBefore, floodPublished)
	})
}
