package pgstat

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
)

func TestProbeAndReadStatements(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	ctx := context.Background()
	db.Exec(t, "create table items (id bigint primary key, sku text not null)")
	for i := range 4 {
		_, err := db.Pool.Exec(ctx, "select sku from items where id = $1", i)
		require.NoError(t, err)
	}

	src, err := ProbeStatements(ctx, db.Pool)
	require.NoError(t, err)
	require.True(t, src.Usable, "probe said: %s", src.Reason)
	require.Equal(t, "public", src.Schema)

	at := time.Now().UTC()
	s, err := ReadStatements(ctx, db.Pool, src, at, nil)
	require.NoError(t, err)
	require.Equal(t, at, s.At)
	require.False(t, s.StatsReset.IsZero(), "pg_stat_statements_info.stats_reset must be read")
	var found bool
	for _, r := range s.Rows {
		require.NotEmpty(t, r.QueryID)
		if r.Query == "select sku from items where id = $1" {
			found = true
			require.Equal(t, int64(4), r.Calls, "row: %+v", r)
			require.True(t, r.TopLevel)
		}
	}
	require.True(t, found, "the test statement is not among %d rows", len(s.Rows))
}

// TestReadStatementsTextsOnce checks that texts are read once per statement:
// a second read of the same statements fetches no text, a new statement's
// text is fetched, and a statement gone from the view is forgotten.
func TestReadStatementsTextsOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	ctx := context.Background()
	db.Exec(t, "create table items (id bigint primary key, sku text not null)")
	_, err := db.Pool.Exec(ctx, "select sku from items where id = $1", 1)
	require.NoError(t, err)
	src, err := ProbeStatements(ctx, db.Pool)
	require.NoError(t, err)
	require.True(t, src.Usable, "probe said: %s", src.Reason)

	textOf := func(s delta.Sample, q string) bool {
		for _, r := range s.Rows {
			if r.Query == q {
				return true
			}
		}
		return false
	}
	var texts Texts
	s, err := ReadStatements(ctx, db.Pool, src, time.Now(), &texts)
	require.NoError(t, err)
	require.True(t, textOf(s, "select sku from items where id = $1"))
	first := texts.Fetched
	require.Positive(t, first)
	require.Equal(t, texts.Len(), first)

	// Nothing new but the reads themselves (whose texts were read with
	// the first statement or are new now): the known texts are not read again.
	s, err = ReadStatements(ctx, db.Pool, src, time.Now(), &texts)
	require.NoError(t, err)
	require.True(t, textOf(s, "select sku from items where id = $1"), "a remembered text is used")
	again := texts.Fetched
	s, err = ReadStatements(ctx, db.Pool, src, time.Now(), &texts)
	require.NoError(t, err)
	require.Equal(t, again, texts.Fetched, "a third read of the same statements fetches no text")

	_, err = db.Pool.Exec(ctx, "select id from items where sku = $1", "x")
	require.NoError(t, err)
	s, err = ReadStatements(ctx, db.Pool, src, time.Now(), &texts)
	require.NoError(t, err)
	require.True(t, textOf(s, "select id from items where sku = $1"), "a new statement's text is read")
	require.Equal(t, again+1, texts.Fetched, "only the new statement's text is read")

	// An id gone from the view is forgotten.
	texts.m[-42] = "select 'gone'"
	_, err = ReadStatements(ctx, db.Pool, src, time.Now(), &texts)
	require.NoError(t, err)
	require.NotContains(t, texts.m, int64(-42))
}

func TestProbeWithoutExtension(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.Exec(t, "drop extension if exists pg_stat_statements")
	src, err := ProbeStatements(context.Background(), db.Pool)
	require.NoError(t, err)
	require.False(t, src.Usable)
	require.Contains(t, src.Reason, "not installed")
}

func TestReadTables(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	db.Exec(t,
		"create table orders (id bigint primary key, customer_id bigint not null, note text)",
		"create unique index orders_customer_note on orders (customer_id, note)",
		"insert into orders select g, g % 10, 'n' || g from generate_series(1, 200) g",
		"update orders set note = note || 'x' where id <= 5",
		"delete from orders where id > 190",
		"create schema indexpilot",
		"create table indexpilot.mutation_log (id bigint primary key)",
		"create schema app",
		"create table app.empty_one (a int, b text)",
	)
	pgtest.FlushStats(t, db.Pool)

	at := time.Now().UTC()
	var got []*events.TableStatObserved
	require.Eventually(t, func() bool {
		var err error
		got, err = ReadTables(ctx, db.Pool, "main", 0, at)
		require.NoError(t, err)
		for _, ts := range got {
			if ts.Table == "orders" {
				return ts.LiveRows == 190 && ts.Deletes == 10
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "live rows of orders never reached 190")

	names := []string{}
	for _, ts := range got {
		names = append(names, ts.Schema+"."+ts.Table)
	}
	require.Equal(t, []string{"app.empty_one", "public.orders"}, names, "the indexpilot schema must be left out")

	empty, orders := got[0], got[1]
	require.Equal(t, "main", orders.Target)
	require.Equal(t, at, orders.ObservedAt)
	require.Positive(t, orders.TableSizeBytes)
	require.Greater(t, orders.TotalSizeBytes, orders.TableSizeBytes)
	require.Positive(t, orders.AvgRowWidthBytes)
	require.Equal(t, int64(200), orders.Inserts)
	require.Equal(t, int64(5), orders.Updates)
	require.LessOrEqual(t, orders.HotUpdates, orders.Updates)
	require.Len(t, orders.Indexes, 2)
	uq, pk := orders.Indexes[0], orders.Indexes[1] // ordered by name
	require.Equal(t, events.IndexStat{
		Name: "orders_pkey", Definition: "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
		Scans: pk.Scans, SizeBytes: pk.SizeBytes, Valid: true, Primary: true, Unique: true,
		TuplesRead: pk.TuplesRead, TuplesFetched: pk.TuplesFetched, Constraint: true, LastScanAt: pk.LastScanAt,
	}, pk)
	require.False(t, uq.Constraint, "a unique index made by CREATE INDEX backs no constraint")
	require.Positive(t, pk.SizeBytes)
	require.True(t, uq.Unique)
	require.False(t, uq.Primary)
	require.Equal(t, "CREATE UNIQUE INDEX orders_customer_note ON public.orders USING btree (customer_id, note)", uq.Definition)

	// Never analysed: the width falls back to the column types (4 + 32).
	require.Equal(t, int64(36), empty.AvgRowWidthBytes)
	require.NotNil(t, empty.Indexes)
	require.Empty(t, empty.Indexes)
}

func TestReadTablesUsesAnalyzedWidth(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		"create table notes (id int, body text)",
		"insert into notes select g, repeat('x', 100) from generate_series(1, 50) g",
		"analyze notes",
	)
	got, err := ReadTables(context.Background(), db.Pool, "main", 0, time.Now())
	require.NoError(t, err)
	require.Len(t, got, 1)
	// 4 for the int, 101 for a 100-byte text (1-byte varlena header).
	require.Equal(t, int64(105), got[0].AvgRowWidthBytes)
}

func TestReadTablesSkipsExclusivelyLockedTables(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	db.Exec(t, "create table busy (id int primary key)", "create table calm (id int primary key)")

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "lock table busy in access exclusive mode")
	require.NoError(t, err)

	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := ReadTables(qctx, db.Pool, "main", 0, time.Now())
	require.NoError(t, err, "a locked table must not block the read")
	require.Len(t, got, 1)
	require.Equal(t, "calm", got[0].Table)
}

func TestReadTablesIndexFlagsAndScans(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	db.Exec(t,
		"create extension if not exists btree_gist",
		"create table rooms (id bigint not null, code text not null, during tsrange not null, note text)",
		"alter table rooms add constraint rooms_code_key unique (code)",
		"create unique index rooms_id_idx on rooms (id)",
		"alter table rooms replica identity using index rooms_id_idx",
		"alter table rooms add constraint rooms_no_overlap exclude using gist (id with =, during with &&)",
		"create index rooms_note_idx on rooms (note)",
		"insert into rooms select g, 'c' || g, tsrange('2026-01-01'::timestamp + g * interval '1 day', '2026-01-01'::timestamp + (g + 1) * interval '1 day') from generate_series(1, 50) g",
	)
	// One session: the setting, the scan and the flush.
	c, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = c.Exec(ctx, "set enable_seqscan = off; select count(*) from rooms where code = 'c7'")
	require.NoError(t, err)
	pgtest.FlushStats(t, c)
	c.Release()
	var got []*events.TableStatObserved
	require.Eventually(t, func() bool {
		var err error
		got, err = ReadTables(ctx, db.Pool, "main", 0, time.Now())
		require.NoError(t, err)
		for _, ix := range got[0].Indexes {
			if ix.Name == "rooms_code_key" && ix.Scans > 0 {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "the scan of rooms_code_key never showed up")
	require.Len(t, got, 1)
	byName := map[string]events.IndexStat{}
	for _, ix := range got[0].Indexes {
		byName[ix.Name] = ix
	}
	code := byName["rooms_code_key"]
	require.True(t, code.Constraint && code.Unique && !code.ReplicaIdentity && !code.Exclusion, "%+v", code)
	require.Positive(t, code.TuplesRead)
	id := byName["rooms_id_idx"]
	require.True(t, id.ReplicaIdentity && id.Unique && !id.Constraint, "%+v", id)
	ex := byName["rooms_no_overlap"]
	require.True(t, ex.Exclusion && ex.Constraint && !ex.Unique, "%+v", ex)
	note := byName["rooms_note_idx"]
	require.False(t, note.Constraint || note.Unique || note.Primary || note.ReplicaIdentity || note.Exclusion, "%+v", note)
	require.Zero(t, note.Scans)
	require.Nil(t, note.LastScanAt, "never scanned: no last scan time")

	v, err := postgres.ServerVersion(ctx, db.Pool)
	require.NoError(t, err)
	if v >= 160000 {
		require.NotNil(t, code.LastScanAt, "PostgreSQL 16+ reports the last index scan")
	} else {
		require.Nil(t, code.LastScanAt)
	}
}

func TestStatementsSQLPerVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		server    int
		ext       string
		wantSince bool
	}{
		{140012, "1.9", false},
		{150020, "1.10", false},
		{160008, "1.10", false},
		{170004, "1.11", true},
		{170004, "1.10", false}, // PostgreSQL 17 with the extension not yet updated
		{180000, "1.12", true},
	} {
		sql := StatementsSQL(tc.server, tc.ext, "public")
		require.True(t, strings.HasPrefix(sql, "/* indexpilot:collector */"), "marker first: %s", sql)
		require.Contains(t, sql, `from "public"."pg_stat_statements"(false) s`, "counters without texts")
		for _, col := range []string{"s.queryid", "s.userid", "s.toplevel", "s.calls", "s.total_exec_time", "s.shared_blks_hit", "s.shared_blks_read"} {
			require.Contains(t, sql, col, "server %d", tc.server)
		}
		require.NotContains(t, sql, "blk_read_time", "renamed in PostgreSQL 17: never read")
		if tc.wantSince {
			require.Contains(t, sql, "s.stats_since", "server %d ext %s", tc.server, tc.ext)
		} else {
			require.NotContains(t, sql, "s.stats_since", "server %d ext %s", tc.server, tc.ext)
			require.Contains(t, sql, "null::timestamptz")
		}
	}
}

func TestTablesSQLPerVersion(t *testing.T) {
	t.Parallel()
	for _, v := range []int{140012, 150020, 160008, 170004} {
		sql := TablesSQL(v)
		require.True(t, strings.HasPrefix(sql, "/* indexpilot:collector */"))
		require.Contains(t, sql, "indisreplident")
		require.Contains(t, sql, "stats_reset")
		if v >= 160000 {
			require.Contains(t, sql, "s.last_seq_scan")
			require.Contains(t, sql, "si.last_idx_scan")
			require.Contains(t, sql, "s.n_tup_newpage_upd")
		} else {
			require.NotContains(t, sql, "last_seq_scan", "version %d", v)
			require.NotContains(t, sql, "last_idx_scan", "version %d", v)
			require.NotContains(t, sql, "n_tup_newpage_upd", "version %d", v)
		}
	}
}

func TestReadStatementsStatsResetIsReadOn15(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	ctx := context.Background()
	src, err := ProbeStatements(ctx, db.Pool)
	require.NoError(t, err)
	require.True(t, src.Usable)
	require.GreaterOrEqual(t, src.ServerVersion, 140000)
	require.NotEmpty(t, src.ExtVersion)
	// Runs whatever SQL StatementsSQL chose for the local server.
	_, err = ReadStatements(ctx, db.Pool, src, time.Now(), nil)
	require.NoError(t, err)
}
