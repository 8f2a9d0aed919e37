package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// counters sums every counter data point of reader by metric name.
func counters(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					out[m.Name] += dp.Value
				}
			}
		}
	}
	return out
}

func newReader(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return reader, mp
}

// TestWhatIfCountersAfterScoring: a scoring run records its planner calls
// and cache look-ups as OpenTelemetry counters, with target and method.
func TestWhatIfCountersAfterScoring(t *testing.T) {
	_, d := setup(t)
	reader, mp := newReader(t)
	s, err := scorer.NewWith(d, scorer.StartOptions{Meter: mp})
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end),
		querystat("2", "SELECT id FROM orders WHERE customer_id = $1 AND created_at > $2", 300, end),
	)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.NotEmpty(t, r.Chosen)

	got := counters(t, reader)
	require.Greater(t, got[scorer.MetricWhatIfCalls], int64(0))
	require.Equal(t, int64(r.WhatIfCalls), got[scorer.MetricWhatIfCalls])
	require.Equal(t, int64(r.CacheHits), got[scorer.MetricWhatIfCacheHits])
	require.Equal(t, int64(r.CacheMisses), got[scorer.MetricWhatIfCacheMisses])
	require.Greater(t, got[scorer.MetricWhatIfCacheHits]+got[scorer.MetricWhatIfCacheMisses], int64(0))

	// The attributes name the target and the method, nothing else.
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != scorer.MetricWhatIfCalls {
				continue
			}
			dp := m.Data.(metricdata.Sum[int64]).DataPoints[0]
			v, ok := dp.Attributes.Value("target")
			require.True(t, ok)
			require.Equal(t, "main", v.AsString())
			v, ok = dp.Attributes.Value("what_if_method")
			require.True(t, ok)
			require.Equal(t, scorer.WhatIfHypoPG, v.AsString())
			require.Equal(t, 2, dp.Attributes.Len())
		}
	}

	// A second run adds to the counters.
	_, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Greater(t, counters(t, reader)[scorer.MetricWhatIfCacheMisses]+counters(t, reader)[scorer.MetricWhatIfCacheHits],
		got[scorer.MetricWhatIfCacheHits]+got[scorer.MetricWhatIfCacheMisses])
}

// TestSystemOffSkipsScoring: with the system level off, a scoring round
// asks the planner nothing and publishes nothing; once it is back on, the
// same stored workload is scored.
func TestSystemOffSkipsScoring(t *testing.T) {
	_, d := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reader, mp := newReader(t)
	bp := bypass.NewState(d.Config.Features.Bypass, nil)
	bp.Apply(bypass.Switch{Level: bypass.LevelSystem, Disabled: true, ChangeID: 1, Reason: "incident", Actor: "ops"})
	s, err := scorer.NewWith(d, scorer.StartOptions{Bypass: bp, Meter: mp})
	require.NoError(t, err)
	cands, err := bus.Record(ctx, d.Bus, "test.candidates", events.TypeIndexCandidateScored)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end))

	s.ScoreDirty(ctx)
	got := counters(t, reader)
	require.Zero(t, got[scorer.MetricWhatIfCalls], "no what-if load while the system is off")
	require.Equal(t, int64(1), got[scorer.MetricScoringSkipped])
	require.Empty(t, cands.All())

	bp.Apply(bypass.Switch{Level: bypass.LevelSystem, Disabled: false, ChangeID: 2})
	s.ScoreDirty(ctx)
	require.Greater(t, counters(t, reader)[scorer.MetricWhatIfCalls], int64(0))
	require.Eventually(t, func() bool { return len(cands.All()) >= 1 }, 10*time.Second, 20*time.Millisecond)
}

// TestPausedScorerStoresButDoesNotScore runs the stage with the scorer
// paused: statistics are stored, rounds after that are skipped and no
// candidate goes out; after the resume the candidates come.
func TestPausedScorerStoresButDoesNotScore(t *testing.T) {
	db, d := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reader, mp := newReader(t)
	bp := bypass.NewState(d.Config.Features.Bypass, nil)
	bp.Apply(bypass.Switch{Level: bypass.LevelStage, Name: scorer.Name, Disabled: true, ChangeID: 1, Reason: "maintenance", Actor: "ops"})
	cands, err := bus.Record(ctx, d.Bus, "test.candidates", events.TypeIndexCandidateScored)
	require.NoError(t, err)
	ready := make(chan struct{})
	d.OnReady = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- scorer.StartWith(ctx, d, scorer.StartOptions{Bypass: bp, Meter: mp}) }()
	<-ready

	require.NoError(t, d.Bus.Publish(ctx, "test", "",
		querystat("101", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end)))
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.workload_stats").Scan(&n))
		return n == 1
	}, 30*time.Second, 20*time.Millisecond, "statistics are stored while paused")
	// Two rounds skipped after the row was stored: at least one of them
	// would have scored it.
	skipped := counters(t, reader)[scorer.MetricScoringSkipped]
	require.Eventually(t, func() bool { return counters(t, reader)[scorer.MetricScoringSkipped] >= skipped+2 },
		30*time.Second, 20*time.Millisecond)
	require.Empty(t, cands.All(), "no candidate while paused")
	require.Zero(t, counters(t, reader)[scorer.MetricWhatIfCalls], "no what-if load while paused")

	bp.Apply(bypass.Switch{Level: bypass.LevelStage, Name: scorer.Name, Disabled: false, ChangeID: 2})
	require.Eventually(t, func() bool { return len(cands.All()) >= 1 }, 30*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}
