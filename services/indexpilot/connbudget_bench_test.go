package indexpilot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/collector"
)

// BenchmarkPollCycleWithinBudget runs the collector on 1, 10 and 100
// databases of one throwaway server (max_connections = 100) with the
// default budget (3 connections per server) and reports, per poll cycle,
// how long the cycle takes from the first target's poll to the last one's
// end (cycle_ms), the mean database time of one target's poll
// (poll_db_ms), and the most connections of the collector's role the
// server saw at once (peak_conns, pg_stat_activity every 100 ms).
//
//	cd services/indexpilot && go test -run '^$' -bench PollCycleWithinBudget -benchtime 3x .
func BenchmarkPollCycleWithinBudget(b *testing.B) {
	ctx := context.Background()
	f := startFleet(b, ctx, 100)
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) { benchCycles(b, f, n) })
	}
}

func benchCycles(b *testing.B, f *fleet, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	control, err := postgres.Connect(ctx, f.cluster.URL("control"), "bench")
	require.NoError(b, err)
	defer control.Close()
	_, err = metadata.Migrate(ctx, control)
	require.NoError(b, err)
	_, err = control.Exec(ctx, "truncate indexpilot.collector_targets")
	require.NoError(b, err)

	cfg := config.Default()
	cfg.DatabaseURL = f.cluster.URL("control")
	const interval = 10 * time.Second
	cfg.Collector.Interval = interval
	cfg.Collector.QueryTimeout = 30 * time.Second
	for _, db := range f.targets[:n] {
		cfg.Targets = append(cfg.Targets, config.Target{Name: db, DSN: f.url(db, budgetRole)})
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	postgres.Configure(cfg.Connections, logger)
	bb := bus.NewMemory(logger)
	defer bb.Close()
	targets := stage.NewTargets(cfg.Targets, collector.Name)
	defer targets.Close()
	d := stage.Deps{Config: cfg, Bus: bb, Control: control, Targets: targets, Logger: logger}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); _ = collector.StartWith(ctx, d, collector.Options{NoSignals: true}) }()

	var (
		mu   sync.Mutex
		peak int
	)
	sampled := make(chan struct{})
	sctx, stop := context.WithCancel(ctx)
	go func() {
		defer close(sampled)
		c, err := pgx.Connect(sctx, f.cluster.URL("postgres"))
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		for sctx.Err() == nil {
			var k int
			if c.QueryRow(sctx, "select count(*) from pg_stat_activity where usename = $1", budgetRole).Scan(&k) == nil {
				mu.Lock()
				peak = max(peak, k)
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// cycle waits until every target has polled after since and returns
	// the cycle's last poll time, its span and its mean poll database time.
	cycle := func(since time.Time) (time.Time, time.Duration, float64) {
		deadline := time.Now().Add(3 * interval)
		for {
			var (
				done, healthy int
				first, last   time.Time
				lastEnd       time.Time
				meanDB        float64
			)
			require.NoError(b, control.QueryRow(ctx, `select count(*), count(*) filter (where healthy),
       coalesce(min(last_poll_at), now()), coalesce(max(last_poll_at), now()),
       coalesce(max(last_poll_at + poll_db_ms * interval '1 millisecond'), now()), coalesce(avg(poll_db_ms), 0)
  from indexpilot.collector_targets where last_poll_at > $1`, since).Scan(&done, &healthy, &first, &last, &lastEnd, &meanDB))
			if done == n {
				require.Equal(b, n, healthy, "a poll failed")
				return last, lastEnd.Sub(first), meanDB
			}
			require.True(b, time.Now().Before(deadline), "only %d of %d targets polled within %s", done, n, 3*interval)
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The first cycle connects, reads the texts and takes the baselines.
	since, _, _ := cycle(time.Time{})
	mu.Lock()
	peak = 0
	mu.Unlock()
	b.ResetTimer()
	var span time.Duration
	var db float64
	for range b.N {
		last, s, m := cycle(since)
		since, span, db = last, span+s, db+m
	}
	b.StopTimer()
	stop()
	<-sampled
	b.ReportMetric(float64(span.Milliseconds())/float64(b.N), "cycle_ms")
	b.ReportMetric(db/float64(b.N), "poll_db_ms")
	b.ReportMetric(float64(peak), "peak_conns")
}
