package appstats

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestSlotName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	long := strings.Repeat("x", 63)
	for _, name := range []string{"main", "eu-west-1", long, "a_b"} {
		s := SlotName(name, "app")
		require.Regexp(t, valid, s, "slot of %q", name)
	}
	require.NotEqual(t, SlotName("main", "db1"), SlotName("main", "db2"), "slots are cluster-wide: the database must count")
	require.NotEqual(t, SlotName("a-b", "db"), SlotName("a_b", "db"))
	require.Equal(t, SlotName("main", "db"), SlotName("main", "db"))
}

func TestInstallAndUninstall(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	for range 2 { // idempotent
		logical, err := Install(ctx, db.Pool)
		require.NoError(t, err)
		wal, err := WALIsLogical(ctx, db.Pool)
		require.NoError(t, err)
		require.Equal(t, wal, logical)
	}
	_, err := db.Pool.Exec(ctx, "insert into indexpilot.query_stats (tenant_id, table_name, field_name, query_type, duration_ms) values (null, 'orders', 'email', 'select', 1.5)")
	require.NoError(t, err, "a NULL tenant must be accepted")
	var pubTables []string
	rows, err := db.Pool.Query(ctx, "select schemaname || '.' || tablename from pg_publication_tables where pubname = $1", Publication)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		pubTables = append(pubTables, s)
	}
	require.Equal(t, []string{"indexpilot.query_stats"}, pubTables)

	logical, err := WALIsLogical(ctx, db.Pool)
	require.NoError(t, err)
	slot := SlotName("main", db.Name)
	if logical {
		_, err = db.Pool.Exec(ctx, "select pg_create_logical_replication_slot($1, 'pgoutput')", slot)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = DropSlot(context.Background(), db.Pool, slot) })
	}
	dropped, err := Uninstall(ctx, db.Pool, "main")
	require.NoError(t, err)
	require.Equal(t, logical, dropped)
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_name = $1", slot).Scan(&n))
	require.Zero(t, n, "no slot may be left behind")
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from pg_publication where pubname = $1", Publication).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.query_stats").Scan(&n))
	require.Equal(t, 1, n, "uninstall keeps the table's rows")
}
