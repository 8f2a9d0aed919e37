package statsclient

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func migrated(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	return db
}

func count(t *testing.T, db *pgtest.Database, where string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), "select count(*) from indexpilot.query_stats where "+where).Scan(&n))
	return n
}

func TestBatchesBySizeAndCloseFlushes(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	c, err := New(db.Pool, Options{BatchSize: 10, FlushInterval: time.Hour})
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 25 {
		tenant := "t1"
		if i%5 == 0 {
			tenant = "" // NULL tenant
		}
		require.True(t, c.Record(ctx, Stat{TenantID: tenant, Table: "orders", Field: "email", QueryType: "select", Duration: 1500 * time.Microsecond}))
	}
	require.Eventually(t, func() bool { return count(t, db, "true") == 20 }, 10*time.Second, 5*time.Millisecond,
		"two full batches of 10 must be written without waiting for the interval")
	require.NoError(t, c.Close(ctx))
	require.Equal(t, 25, count(t, db, "true"), "Close must flush the last 5")
	require.Equal(t, 5, count(t, db, "tenant_id is null"))
	require.Equal(t, 25, count(t, db, "duration_ms = 1.5 and field_name = 'email' and table_name = 'orders'"))
	require.Equal(t, Counters{Recorded: 25, Written: 25}, c.Counters())

	require.False(t, c.Record(ctx, Stat{Table: "orders", QueryType: "select"}), "after Close rows are dropped")
	require.Equal(t, int64(1), c.Counters().Dropped)
	require.NoError(t, c.Close(ctx), "Close twice is fine")
}

func TestFlushesByTime(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	c, err := New(db.Pool, Options{BatchSize: 100, FlushInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	for range 3 {
		c.Record(context.Background(), Stat{Table: "orders", QueryType: "select"})
	}
	require.Eventually(t, func() bool { return count(t, db, "true") == 3 }, 10*time.Second, 5*time.Millisecond)
}

func TestRecordNeverBlocksAndCountsDrops(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ctx := context.Background()
	// Hold the table so that every write waits.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "lock table indexpilot.query_stats in access exclusive mode")
	require.NoError(t, err)

	c, err := New(db.Pool, Options{BatchSize: 1, BufferSize: 5, FlushInterval: time.Hour})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			c.Record(ctx, Stat{Table: "orders", QueryType: "select"})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked while the database was stuck")
	}
	got := c.Counters()
	require.Equal(t, int64(100), got.Recorded+got.Dropped)
	require.LessOrEqual(t, got.Recorded, int64(6), "at most the buffer plus the batch being written: %+v", got)
	require.GreaterOrEqual(t, got.Dropped, int64(94))

	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, c.Close(ctx))
	require.Equal(t, int(got.Recorded), count(t, db, "true"), "everything accepted is written once the lock goes")
}

func TestFlushErrorsAreLoggedAndCountedNotReturned(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t) // no indexpilot.query_stats here
	logs := &logtest.Buffer{}
	c, err := New(db.Pool, Options{BatchSize: 2, FlushInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	ctx := context.Background()
	for range 4 {
		require.True(t, c.Record(ctx, Stat{Table: "orders", QueryType: "select"}))
	}
	require.NoError(t, c.Close(ctx), "a failed write is never returned")
	got := c.Counters()
	require.Equal(t, int64(2), got.FlushErrors)
	require.Equal(t, int64(4), got.FailedRows)
	require.Zero(t, got.Written)
	require.Contains(t, logs.String(), "indexpilot stats flush failed")
}

func TestNewRejectsNil(t *testing.T) {
	t.Parallel()
	_, err := New(nil, Options{})
	require.ErrorContains(t, err, "nil database")
}
