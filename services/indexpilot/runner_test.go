package indexpilot_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

// TestRunAllOnTheMemoryBus runs the embedded default — all four stages in
// one process on the in-process bus — in apply mode and waits for the
// missing index to exist and be valid.
func TestRunAllOnTheMemoryBus(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	// The load is history when IndexPilot starts (pgtest.Load).
	db.Load(t,
		`create table public.events (id bigint primary key, account_id int not null, kind text not null, payload text)`,
		`insert into public.events select g, g % 3000, 'k' || (g % 7), md5(g::text) from generate_series(1, 40000) g`,
		`analyze public.events`,
	)
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=apply",
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none", // the shared host's CPU must not defer the build
		"INDEXPILOT_COLLECTOR_INTERVAL=200ms",
		"INDEXPILOT_SCORER_INTERVAL=200ms",
		"INDEXPILOT_EXECUTOR_POLL_INTERVAL=100ms",
	})
	require.NoError(t, err)
	require.Equal(t, config.TransportMemory, cfg.Bus.Transport)

	stop := startAll(t, cfg)
	count := func(sql string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
		return n
	}
	// Wait for the collector's first poll, then run the workload: a
	// statement first seen after it counts in full.
	require.Eventually(t, func() bool { return count("select count(*) from indexpilot.table_stats") > 0 },
		30*time.Second, 50*time.Millisecond, "no table statistics reached the scorer")
	for i := 0; i < 100; i++ {
		_, err := db.Pool.Exec(context.Background(), "select payload from public.events where account_id = $1", i)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return count(`select count(*) from pg_index x join pg_class i on i.oid = x.indexrelid
			where x.indrelid = 'public.events'::regclass and i.relname like 'ip_events_account_id_%' and x.indisvalid`) == 1
	}, 60*time.Second, 100*time.Millisecond, "the index on events(account_id) was not built")
	// The executor records applied after it has seen the index valid, so
	// the row may trail the catalog by a moment.
	require.Eventually(t, func() bool {
		return count("select count(*) from indexpilot.recommendations where state = 'applied'") == 1
	}, 10*time.Second, 50*time.Millisecond, "the built index's recommendation never reached applied")
	stop()
}

// startAll runs the embedded default on cfg until stop is called (or the
// test ends); stop checks that RunAll returned nil.
func startAll(t *testing.T, cfg config.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	errc := make(chan error, 1)
	// The process's log, printed when the test fails: a CI failure
	// then says what each stage did.
	logs := &logtest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("RunAll's log:\n%s", logs.String())
		}
	})
	go func() {
		errc <- indexpilot.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			indexpilot.Options{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("RunAll exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("RunAll not ready within 30 s")
	}
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("RunAll did not stop within 30 s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}
