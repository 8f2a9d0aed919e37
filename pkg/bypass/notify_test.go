package bypass_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// watchNoRefresh is an instance whose periodic re-read never comes within
// the test: only the LISTEN connection can tell it of a change.
func watchNoRefresh(t testing.TB, ctx context.Context, db *pgtest.Database) *bypass.State {
	t.Helper()
	b := bus.NewMemory(slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { _ = b.Close() })
	return watchEvery(t, ctx, db, b, nil, time.Hour)
}

// listenerPID waits for the LISTEN session of this process other than except.
func listenerPID(t testing.TB, ctx context.Context, db *pgtest.Database, except int32) int32 {
	t.Helper()
	var pid int32
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(ctx, `select pid from pg_stat_activity
 where datname = current_database() and application_name = $1`, bypass.ListenerApplicationName).Scan(&pid)
		return err == nil && pid != except
	}, 10*time.Second, 10*time.Millisecond, "no LISTEN session on the control database")
	return pid
}

// A change made by another process with no bus at all (the CLI with the
// in-process transport) reaches a running instance through NOTIFY, also
// after its LISTEN connection was killed; and one process holds one LISTEN
// connection however many stages watch.
func TestChangeReachesInstanceThroughNotifyAndAfterReconnect(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	st := watchNoRefresh(t, ctx, db)
	second := watchNoRefresh(t, ctx, db)
	pid := listenerPID(t, ctx, db, 0)
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `select count(*) from pg_stat_activity
 where datname = current_database() and application_name = $1`, bypass.ListenerApplicationName).Scan(&n))
	require.Equal(t, 1, n, "one LISTEN connection per process and control database")

	stopped := func(s *bypass.State) func() bool { return func() bool { ok, _ := s.Stopped(); return ok } }
	_, err = bypass.Set(ctx, db.Pool, nil, bypass.Change{Level: bypass.LevelEmergency, Disabled: true, Reason: "incident", Actor: "t"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, stopped(st), 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, stopped(second), 10*time.Second, 5*time.Millisecond)

	// The control connection drops: it is re-established and the state
	// re-read, so a change made meanwhile is not missed.
	var ok bool
	require.NoError(t, db.Pool.QueryRow(ctx, `select pg_terminate_backend($1)`, pid).Scan(&ok))
	require.True(t, ok)
	_, err = bypass.Set(ctx, db.Pool, nil, bypass.Change{Level: bypass.LevelEmergency, Reason: "over", Actor: "t"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !stopped(st)() }, 10*time.Second, 5*time.Millisecond)
	listenerPID(t, ctx, db, pid)

	// And the new connection listens: a later change arrives by NOTIFY.
	_, err = bypass.Set(ctx, db.Pool, nil, bypass.Change{Level: bypass.LevelFeature, Name: config.FeatureAutoIndexing,
		Disabled: true, Reason: "later", Actor: "t"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool { ok, _ := st.AllowsDDL(config.FeatureAutoIndexing); return !ok }, 10*time.Second, 5*time.Millisecond)

	// The last watcher gone, the LISTEN connection closes.
	cancel()
	require.Eventually(t, func() bool {
		var n int
		_ = db.Pool.QueryRow(context.Background(), `select count(*) from pg_stat_activity
 where datname = current_database() and application_name = $1`, bypass.ListenerApplicationName).Scan(&n)
		return n == 0
	}, 10*time.Second, 10*time.Millisecond)
}
