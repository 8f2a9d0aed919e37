package pgstat

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
)

// TestVersionMatrixStatementsDeltasResetAndStatsSince reads
// pg_stat_statements and pg_stat_statements_info on every server of the
// matrix and feeds the reads to delta.Compute: a normal delta, an entry
// reset by (userid, dbid, queryid) — what the collector also sees when an
// entry is evicted and comes back — and, on 17+, stats_since catching an
// entry that came back with counters higher than before.
func TestVersionMatrixStatementsDeltasResetAndStatsSince(t *testing.T) {
	pgtest.ForEachVersion(t, func(t *testing.T, v pgtest.Version) {
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.RequireExtension(t, "pg_stat_statements")
		db.Exec(t, "create table items (id bigint primary key, sku text not null)")
		const q = "select sku from items where id = $1"
		run := func(n int) {
			t.Helper()
			for i := range n {
				_, err := db.Pool.Exec(ctx, q, i)
				require.NoError(t, err)
			}
		}

		src, err := ProbeStatements(ctx, db.Pool)
		require.NoError(t, err)
		require.True(t, src.Usable, "probe said: %s", src.Reason)
		require.Equal(t, v.Major, src.ServerVersion/10000)
		require.Equal(t, map[int]string{14: "1.9", 15: "1.10", 16: "1.10", 17: "1.11", 18: "1.12"}[v.Major], src.ExtVersion,
			"the extension version a fresh CREATE EXTENSION installs")
		require.Equal(t, v.Major >= 17, src.HasStatsSince())

		var texts Texts
		read := func() (delta.Sample, delta.Row) {
			t.Helper()
			s, err := ReadStatements(ctx, db.Pool, src, time.Now().UTC(), &texts)
			require.NoError(t, err)
			require.False(t, s.StatsReset.IsZero(), "pg_stat_statements_info.stats_reset is read")
			for _, r := range s.Rows {
				if r.Query == q {
					return s, r
				}
			}
			t.Fatalf("%q is not among the %d rows", q, len(s.Rows))
			return s, delta.Row{}
		}
		var source string
		callsOf := func(b *delta.Baseline, s delta.Sample) (int64, *delta.Baseline) {
			t.Helper()
			evs, next := delta.Compute("main", b, s)
			for _, e := range evs {
				if e.Query == q {
					source = e.WindowSource
					return e.Calls, next
				}
			}
			return 0, next
		}

		run(3)
		s, row := read()
		require.Equal(t, int64(3), row.Calls)
		require.Equal(t, v.Major >= 17, !row.StatsSince.IsZero(), "stats_since is read on 17+ only")
		calls, base := callsOf(nil, s)
		require.Equal(t, int64(3), calls, "the first poll publishes the history")
		wantSource := events.WindowHistoryStatsReset
		if v.Major >= 17 {
			wantSource = events.WindowHistoryStatsSince
		}
		require.Equal(t, wantSource, source, "the history window starts at stats_since on 17+, else at pg_stat_statements_info.stats_reset")

		run(2)
		s, _ = read()
		calls, base = callsOf(base, s)
		require.Equal(t, int64(2), calls, "a normal delta")

		// Reset the one entry (never the whole view: the server may be
		// shared) and run the statement once: its counters went down.
		reset := func() {
			t.Helper()
			_, err := db.Pool.Exec(ctx, `select pg_stat_statements_reset(s.userid, s.dbid, s.queryid)
  from pg_stat_statements s
 where s.dbid = (select oid from pg_database where datname = current_database()) and s.query = $1`, q)
			require.NoError(t, err)
		}
		reset()
		run(1)
		s, row = read()
		require.Equal(t, int64(1), row.Calls)
		calls, base = callsOf(base, s)
		require.Zero(t, calls, "an entry that was reset or evicted and came back is baselined again")
		run(2)
		s, row = read()
		calls, base = callsOf(base, s)
		require.Equal(t, int64(2), calls, "and counts from there")

		if v.Major < 17 {
			return
		}
		// 17+: the entry comes back with more calls than before; only
		// stats_since tells that it is a new entry.
		before := row
		reset()
		run(int(before.Calls) + 2)
		s, row = read()
		require.Greater(t, row.Calls, before.Calls)
		require.True(t, row.StatsSince.After(before.StatsSince), "stats_since %v must move past %v", row.StatsSince, before.StatsSince)
		calls, _ = callsOf(base, s)
		require.Zero(t, calls, "a changed stats_since re-baselines even with higher counters")
	})
}

// TestVersionMatrixNewPageUpdates reads n_tup_newpage_upd where the server
// has it (16+) and leaves it unknown before: 20 updates that widen rows on
// a full page (fill factor 100) must move them to another page, and
// updates of a non-indexed column on a table with room stay HOT on their
// page.
func TestVersionMatrixNewPageUpdates(t *testing.T) {
	pgtest.ForEachVersion(t, func(t *testing.T, v pgtest.Version) {
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.Exec(t,
			"create table packed (id int primary key, pad text) with (fillfactor = 100)",
			"insert into packed select g, 'x' from generate_series(1, 1000) g",
			"create table roomy (id int primary key, n int) with (fillfactor = 50)",
			"insert into roomy select g, 0 from generate_series(1, 100) g",
			// Rows 1 to 20 are on the first page, full since the insert;
			// one statement, so no pruning in between makes room.
			"update packed set pad = repeat('y', 200) where id <= 20",
			"update roomy set n = n + 1 where id <= 30",
		)
		pgtest.FlushStats(t, db.Pool)

		var packed, roomy *events.TableStatObserved
		require.Eventually(t, func() bool {
			got, err := ReadTables(ctx, db.Pool, "main", 0, time.Now().UTC())
			require.NoError(t, err)
			for _, ts := range got {
				switch ts.Table {
				case "packed":
					packed = ts
				case "roomy":
					roomy = ts
				}
			}
			return packed != nil && roomy != nil && packed.Updates == 20 && roomy.Updates == 30
		}, 15*time.Second, 100*time.Millisecond, "the updates' counters never showed up")

		require.Zero(t, packed.HotUpdates, "a row that does not fit on its page is never HOT")
		require.Equal(t, int64(30), roomy.HotUpdates, "a non-indexed column on a page with room: HOT")
		if v.Major < 16 {
			require.Nil(t, packed.NewPageUpdates, "PostgreSQL %d does not count updates to a new page: unknown, not 0", v.Major)
			require.Nil(t, roomy.NewPageUpdates)
			return
		}
		require.NotNil(t, packed.NewPageUpdates, "PostgreSQL %d counts n_tup_newpage_upd", v.Major)
		require.Equal(t, int64(20), *packed.NewPageUpdates, "every widened row went to another page")
		require.NotNil(t, roomy.NewPageUpdates)
		require.Zero(t, *roomy.NewPageUpdates, "HOT updates stay on their page")
	})
}

// TestVersionMatrixServerXactNext: every table of a poll carries the
// server's next transaction id, read with its counters; a write
// transaction committed between two polls took an id from the first
// poll's value on, below the second's.
func TestVersionMatrixServerXactNext(t *testing.T) {
	pgtest.ForEachVersion(t, func(t *testing.T, v pgtest.Version) {
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.Exec(t, "create table a (id int)", "create table b (id int)")
		next := func() int64 {
			got, err := ReadTables(ctx, db.Pool, "main", 0, time.Now().UTC())
			require.NoError(t, err)
			require.Len(t, got, 2)
			for _, ts := range got {
				require.NotNil(t, ts.ServerXactNext, "PostgreSQL %d: table %s carries no server_xact_next", v.Major, ts.Table)
			}
			require.Equal(t, *got[0].ServerXactNext, *got[1].ServerXactNext, "one value per poll, server-wide")
			return *got[0].ServerXactNext
		}
		before := next()
		var xid int64
		require.NoError(t, db.Pool.QueryRow(ctx, "insert into a values (1) returning pg_current_xact_id()::text::int8").Scan(&xid))
		after := next()
		require.GreaterOrEqual(t, xid, before, "the write's transaction id is not below the first poll's next id")
		require.Greater(t, after, xid, "the second poll's next id is past the write's transaction id")
	})
}
