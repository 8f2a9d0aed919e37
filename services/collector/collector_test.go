package collector

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// start runs Start in the background and returns a stop function that
// cancels it and checks that it returned nil.
func start(t *testing.T, d stage.Deps) (ready <-chan struct{}, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := make(chan struct{})
	d.OnReady = func() { close(r) }
	done := make(chan error, 1)
	go func() { done <- StartWith(ctx, d, Options{NoSignals: true}) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "Start must return nil when its context is cancelled")
		case <-time.After(30 * time.Second):
			t.Fatal("Start did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	return r, stop
}

func TestStartPublishesDeltasOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t,
		"create table orders (id bigint primary key, note text)",
		"insert into orders select g, 'n' || g from generate_series(1, 100) g",
	)
	runWorkload(t, db, 5)

	d := deps(t, []config.Target{{Name: "main", DSN: db.URL}}, 20*time.Millisecond, nil)
	s := subscribe(t, d.Bus)
	ready, stop := start(t, d)
	<-ready

	// Wait for a poll to have baselined the statement, then run it again.
	require.Eventually(t, func() bool { return len(s.polls("main")) >= 1 }, 15*time.Second, 5*time.Millisecond)
	const m = 7
	runWorkload(t, db, m)

	sum := func() int64 {
		var n int64
		for _, e := range s.queryStats(isWorkload) {
			n += e.Calls
		}
		return n
	}
	// The first poll publishes the 5 calls made before it as the history.
	require.Eventually(t, func() bool { return sum() == 5+m }, 15*time.Second, 5*time.Millisecond,
		"the %d new calls never showed up in querystat events", m)
	last := s.queryStats(isWorkload)
	end := last[len(last)-1].WindowEnd

	// More polls with no new workload publish nothing more.
	require.Eventually(t, func() bool {
		n := 0
		for _, at := range s.polls("main") {
			if at.After(end) {
				n++
			}
		}
		return n >= 3
	}, 15*time.Second, 5*time.Millisecond, "the collector stopped polling")
	stop()

	require.Equal(t, int64(5+m), sum(), "the history and the deltas must add up to the calls made, never doubled")
	for _, e := range s.queryStats(nil) {
		require.True(t, isWorkload(e) || events.IsHistory(e.WindowSource), "only the workload statement ran after the first poll, got %+v", e)
	}
}

func TestStartSlowTargetsDoNotStallOthers(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.Exec(t, "create table orders (id bigint primary key)")

	// A server that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	// A closed port: connections are refused at once.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := closed.Addr().String()
	require.NoError(t, closed.Close())

	d := deps(t, []config.Target{
		{Name: "hung", DSN: "postgres://u:secret@" + ln.Addr().String() + "/db?sslmode=disable"},
		{Name: "down", DSN: "postgres://u:secret@" + refused + "/db?sslmode=disable"},
		{Name: "main", DSN: db.URL},
	}, 20*time.Millisecond, nil)
	d.Config.Collector.QueryTimeout = time.Minute // the hung target blocks its poll for long
	s := subscribe(t, d.Bus)
	ready, stop := start(t, d)
	<-ready

	require.Eventually(t, func() bool { return len(s.polls("main")) >= 3 }, 15*time.Second, 5*time.Millisecond,
		"the healthy target must keep being polled while the others hang or fail")
	stop() // also proves the hung poll gives up when the stage stops
	require.Empty(t, s.polls("hung"))
	require.Empty(t, s.polls("down"))
}

func TestStartLogsNoSecrets(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := closed.Addr().String()
	require.NoError(t, closed.Close())

	logs := &logtest.Buffer{}
	d := deps(t, []config.Target{{Name: "down", DSN: "postgres://u:hunter2@" + refused + "/db?sslmode=disable"}}, 10*time.Millisecond, logs)
	ready, stop := start(t, d)
	<-ready
	require.Eventually(t, func() bool { return logs.Count("poll failed") >= 2 }, 15*time.Second, 5*time.Millisecond)
	stop()
	require.NotContains(t, logs.String(), "hunter2")
	require.Contains(t, logs.String(), `"target":"down"`)
}

func TestStartRejectsMissingDependencies(t *testing.T) {
	t.Parallel()
	d := deps(t, nil, time.Second, nil)
	for name, broken := range map[string]stage.Deps{
		"bus":     {Targets: d.Targets, Logger: d.Logger},
		"targets": {Bus: d.Bus, Logger: d.Logger},
		"logger":  {Bus: d.Bus, Targets: d.Targets},
	} {
		err := Start(context.Background(), broken)
		require.ErrorContains(t, err, "nil "+name)
	}
}

func TestStartWithoutTargetsWaitsForCancel(t *testing.T) {
	t.Parallel()
	d := deps(t, nil, time.Second, nil)
	ready, stop := start(t, d)
	<-ready
	stop()
}
