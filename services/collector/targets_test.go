package collector

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// startWith runs StartWith in the background until the test ends.
func startWith(t *testing.T, d stage.Deps, opts Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := make(chan struct{})
	d.OnReady = func() { close(r) }
	done := make(chan error, 1)
	opts.NoSignals = true
	go func() { done <- StartWith(ctx, d, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("StartWith did not return after its context was cancelled")
		}
	})
	<-r
}

// controlDB is a migrated control database for health and reload tests.
func controlDB(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	return db
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

type healthRow struct {
	Healthy  bool
	Failures int
	LastPoll *time.Time
	LastOK   *time.Time
	Error    string
	Interval int64
}

func readHealth(t *testing.T, db *pgtest.Database, target string) (healthRow, bool) {
	t.Helper()
	var h healthRow
	err := db.Pool.QueryRow(context.Background(), `select healthy, consecutive_failures, last_poll_at, last_success_at, last_error, interval_ms
  from indexpilot.collector_targets where target = $1`, target).Scan(&h.Healthy, &h.Failures, &h.LastPoll, &h.LastOK, &h.Error, &h.Interval)
	if err != nil {
		return h, false
	}
	return h, true
}

func TestTargetIsolationAndHealth(t *testing.T) {
	t.Parallel()
	ctl := controlDB(t)
	work := pgtest.NewDatabase(t)
	work.Exec(t, "create table orders (id bigint primary key)")

	const interval = 50 * time.Millisecond
	d := deps(t, []config.Target{
		{Name: "down", DSN: "postgres://u:secret@" + closedPort(t) + "/db?sslmode=disable"},
		{Name: "main", DSN: work.URL},
	}, interval, nil)
	d.Control = ctl.Pool
	s := subscribe(t, d.Bus)
	startWith(t, d, Options{})

	// The healthy target keeps its own rhythm while the other one fails.
	require.Eventually(t, func() bool { return len(s.polls("main")) >= 10 }, 20*time.Second, 10*time.Millisecond,
		"main must keep publishing while down fails")
	require.Empty(t, s.polls("down"))

	require.Eventually(t, func() bool {
		h, ok := readHealth(t, ctl, "down")
		return ok && !h.Healthy && h.Failures >= 2 && h.LastOK == nil && h.Error != ""
	}, 20*time.Second, 10*time.Millisecond, "the unreachable target must be recorded unhealthy with its failures")
	h, _ := readHealth(t, ctl, "down")
	require.NotContains(t, h.Error, "secret", "no password in the recorded error")
	require.Eventually(t, func() bool {
		h, ok := readHealth(t, ctl, "main")
		return ok && h.Healthy && h.Failures == 0 && h.LastOK != nil && h.Interval == interval.Milliseconds()
	}, 20*time.Second, 10*time.Millisecond, "main must be recorded healthy")
}

func TestPerTargetIntervalOverride(t *testing.T) {
	t.Parallel()
	work := pgtest.NewDatabase(t)
	work.Exec(t, "create table orders (id bigint primary key)")
	d := deps(t, []config.Target{
		{Name: "slow", DSN: work.URL, Interval: time.Hour},
		{Name: "fast", DSN: work.URL},
	}, 20*time.Millisecond, nil)
	s := subscribe(t, d.Bus)
	startWith(t, d, Options{})
	require.Eventually(t, func() bool { return len(s.polls("fast")) >= 5 }, 20*time.Second, 10*time.Millisecond)
	require.Len(t, s.polls("slow"), 1, "the target with interval: 1h polls once, at start")
}

func TestReloadAddsAndRemovesTargets(t *testing.T) {
	t.Parallel()
	ctl := controlDB(t)
	work := pgtest.NewDatabase(t)
	work.Exec(t, "create table orders (id bigint primary key)")

	var mu sync.Mutex
	next := []config.Target{{Name: "a", DSN: work.URL}}
	load := func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		cfg := config.Default()
		cfg.DatabaseURL = ctl.URL
		cfg.Targets = append([]config.Target(nil), next...)
		cfg.Collector.Interval = 20 * time.Millisecond
		return cfg, cfg.Validate()
	}
	d := deps(t, next, 20*time.Millisecond, nil)
	d.Control = ctl.Pool
	s := subscribe(t, d.Bus)
	reload := make(chan struct{})
	startWith(t, d, Options{LoadConfig: load, Reload: reload})
	require.Eventually(t, func() bool { return len(s.polls("a")) >= 2 }, 20*time.Second, 10*time.Millisecond)
	require.Empty(t, s.polls("b"))

	// Add b.
	mu.Lock()
	next = []config.Target{{Name: "a", DSN: work.URL}, {Name: "b", DSN: work.URL}}
	mu.Unlock()
	reload <- struct{}{}
	require.Eventually(t, func() bool { return len(s.polls("b")) >= 2 }, 20*time.Second, 10*time.Millisecond,
		"a target added by a reload must be polled")

	// An invalid configuration changes nothing.
	mu.Lock()
	next = []config.Target{{Name: "Bad Name", DSN: work.URL}}
	mu.Unlock()
	reload <- struct{}{}
	nb := len(s.polls("b"))
	require.Eventually(t, func() bool { return len(s.polls("b")) > nb+2 }, 20*time.Second, 10*time.Millisecond,
		"an invalid configuration must keep the current targets running")

	// Remove a.
	mu.Lock()
	next = []config.Target{{Name: "b", DSN: work.URL}}
	mu.Unlock()
	reload <- struct{}{}
	require.Eventually(t, func() bool { _, ok := readHealth(t, ctl, "a"); return !ok }, 20*time.Second, 10*time.Millisecond,
		"a removed target's health row must be deleted")
	na := len(s.polls("a"))
	nb = len(s.polls("b"))
	require.Eventually(t, func() bool { return len(s.polls("b")) > nb+3 }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, na, len(s.polls("a")), "a removed target must not be polled any more")
}

func TestReloadRequestInControlDatabase(t *testing.T) {
	t.Parallel()
	ctl := controlDB(t)
	work := pgtest.NewDatabase(t)
	work.Exec(t, "create table orders (id bigint primary key)")
	// A request made before the collector starts is not acted on.
	_, err := ctl.Pool.Exec(context.Background(), "insert into indexpilot.collector_reload (requested_at) values (now() - interval '1 minute')")
	require.NoError(t, err)

	var mu sync.Mutex
	loads := 0
	load := func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		loads++
		cfg := config.Default()
		cfg.DatabaseURL = ctl.URL
		cfg.Targets = []config.Target{{Name: "main", DSN: work.URL}, {Name: "extra", DSN: work.URL}}
		cfg.Collector.Interval = 20 * time.Millisecond
		return cfg, cfg.Validate()
	}
	d := deps(t, []config.Target{{Name: "main", DSN: work.URL}}, 20*time.Millisecond, nil)
	d.Control = ctl.Pool
	d.Config.Collector.ReloadCheckInterval = 20 * time.Millisecond
	s := subscribe(t, d.Bus)
	startWith(t, d, Options{LoadConfig: load})
	require.Eventually(t, func() bool { return len(s.polls("main")) >= 3 }, 20*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Zero(t, loads, "an old request must not trigger a reload")
	mu.Unlock()

	require.NoError(t, RequestReload(context.Background(), ctl.Pool))
	require.Eventually(t, func() bool { return len(s.polls("extra")) >= 1 }, 20*time.Second, 10*time.Millisecond,
		"indexpilot reload must make the running collector pick up the new target")
	mu.Lock()
	require.Equal(t, 1, loads)
	mu.Unlock()
}
