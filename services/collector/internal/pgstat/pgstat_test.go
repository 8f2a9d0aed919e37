package pgstat

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
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
	s, err := ReadStatements(ctx, db.Pool, src, at)
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
		"delete from orders where id > 190; select pg_stat_force_next_flush()",
		"create schema indexpilot",
		"create table indexpilot.mutation_log (id bigint primary key)",
		"create schema app",
		"create table app.empty_one (a int, b text)",
	)

	at := time.Now().UTC()
	var got []*events.TableStatObserved
	require.Eventually(t, func() bool {
		var err error
		got, err = ReadTables(ctx, db.Pool, "main", at)
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
	}, pk)
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
	got, err := ReadTables(context.Background(), db.Pool, "main", time.Now())
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
	got, err := ReadTables(qctx, db.Pool, "main", time.Now())
	require.NoError(t, err, "a locked table must not block the read")
	require.Len(t, got, 1)
	require.Equal(t, "calm", got[0].Table)
}
