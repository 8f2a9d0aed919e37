package adapters_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/adapters/adapterstest"
)

// exact reads what the control database holds, exactly, to compare the
// gauges' cheap reads with.
func exact(t *testing.T, db *pgtest.Database, sql string, args ...any) float64 {
	t.Helper()
	var v float64
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v))
	return v
}

// TestHealthGaugesFollowTheControlDatabase writes mutation_log rows, a
// collector poll and an emergency stop through the product's writers and
// checks that ReadHealth reports them, that the 24-hour window and
// `indexpilot archive` (metadata.ArchiveLog) move the gauges, and that the
// values reach the Prometheus /metrics, DogStatsD and OTLP (an OTel reader
// on the same sink) outputs.
func TestHealthGaugesFollowTheControlDatabase(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)

	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}, {Name: "quiet", DSN: db.URL}}
	started := time.Now()

	h, err := adapters.ReadHealth(ctx, db.Pool, cfg, started)
	require.NoError(t, err)
	assert.Equal(t, db.Name, h.Database)
	assert.Zero(t, h.LogOldestAge, "empty mutation_log")
	assert.False(t, h.EmergencyStop)
	assert.Equal(t, map[string]int64{"main": 0, "quiet": 0}, h.Failed24h)

	for _, e := range []metadata.Entry{
		{Stage: "executor", Action: "build", Outcome: "failed", Target: "main", IndexName: "ip_a"},
		{Stage: "executor", Action: "build", Outcome: "failed", Target: "main", IndexName: "ip_a"},
		{Stage: "executor", Action: "build", Outcome: "built", Target: "main", IndexName: "ip_b"},
		{Stage: "executor", Action: "revert", Outcome: "reverted", Target: "main", IndexName: "ip_b"},
		{Stage: "gatekeeper", Action: "decide", Outcome: "approved", Target: "quiet", IndexName: "ip_c"},
	} {
		_, err := metadata.AppendLog(ctx, db.Pool, e)
		require.NoError(t, err)
	}
	db.Exec(t, "analyze indexpilot.mutation_log")
	h, err = adapters.ReadHealth(ctx, db.Pool, cfg, started)
	require.NoError(t, err)
	assert.Equal(t, exact(t, db, "select count(*) from indexpilot.mutation_log"), h.LogRows)
	assert.Equal(t, float64(5), h.LogRows)
	assert.Equal(t, exact(t, db, "select pg_total_relation_size('indexpilot.mutation_log')"), h.LogBytes)
	assert.Less(t, h.LogOldestAge, 3600.0)
	assert.Equal(t, map[string]int64{"main": 2, "quiet": 0}, h.Failed24h)
	assert.Equal(t, map[string]int64{"main": 1, "quiet": 0}, h.Reverted24h)

	// The failed attempts move out of the 24-hour window, then `indexpilot
	// archive` moves them out of mutation_log.
	db.Exec(t, "update indexpilot.mutation_log set occurred_at = now() - interval '30 hours' where outcome = 'failed'")
	h, err = adapters.ReadHealth(ctx, db.Pool, cfg, started)
	require.NoError(t, err)
	assert.Zero(t, h.Failed24h["main"])
	assert.GreaterOrEqual(t, h.LogOldestAge, 30*3600.0)
	moved, err := metadata.ArchiveLog(ctx, db.Pool, time.Now().Add(-24*time.Hour), 0, false)
	require.NoError(t, err)
	require.Equal(t, int64(2), moved)
	db.Exec(t, "analyze indexpilot.mutation_log")
	h, err = adapters.ReadHealth(ctx, db.Pool, cfg, started)
	require.NoError(t, err)
	assert.Equal(t, float64(3), h.LogRows)
	assert.Less(t, h.LogOldestAge, 3600.0)

	// A poll the collector recorded (the row its health writer upserts)
	// 90 s ago, every 30 s; "quiet" was never polled.
	db.Exec(t, `insert into indexpilot.collector_targets (target, healthy, last_poll_at, last_success_at, interval_ms)
		values ('main', true, now() - interval '90 seconds', now() - interval '90 seconds', 30000)`)
	_, err = bypass.Set(ctx, db.Pool, nil, bypass.Change{Level: bypass.LevelEmergency, Disabled: true,
		Reason: "test", Actor: "test"}, time.Now())
	require.NoError(t, err)
	h, err = adapters.ReadHealth(ctx, db.Pool, cfg, started)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, h.PollAge["main"], 90.0)
	assert.Less(t, h.PollAge["main"], 3600.0)
	assert.Equal(t, 30.0, h.PollInterval["main"])
	assert.Contains(t, h.PollAge, "quiet", "a configured target never polled has an age")
	assert.True(t, h.EmergencyStop)
	require.Len(t, h.Bypass, 1)
	assert.Equal(t, bypass.LevelEmergency, h.Bypass[0].Level)

	// The adapters: Prometheus and Datadog through Start, OTLP through an
	// OTel reader on the sink the OTLP adapter uses.
	udp := adapterstest.ListenDogStatsD(t)
	cfg.Adapters.Listen = "127.0.0.1:0"
	cfg.Adapters.HealthInterval = 50 * time.Millisecond
	cfg.Adapters.Prometheus = config.PrometheusAdapter{Enabled: true, StateInterval: time.Second}
	cfg.Adapters.Datadog.Enabled = true
	cfg.Adapters.Datadog.Address = udp.Addr()
	cfg.Adapters.Datadog.StateInterval = time.Second
	require.NoError(t, cfg.Validate())
	tel, err := adapters.Setup(ctx, cfg, "test", adapters.SetupOptions{})
	require.NoError(t, err)
	defer tel.Shutdown(context.Background())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		done <- adapters.Start(ctx, stage.Deps{Config: cfg, Bus: b, Control: db.Pool,
			Targets: stage.NewTargets(cfg.Targets, "adapters"), Logger: logger})
	}()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	go adapters.PollHealth(ctx, db.Pool, cfg, 50*time.Millisecond, []adapters.Sink{adapters.NewOTelSink(mp)}, nil)

	promWant := []string{
		fmt.Sprintf(`indexpilot_mutation_log_rows{database=%q} 3`, db.Name),
		fmt.Sprintf(`indexpilot_mutation_log_bytes{database=%q} `, db.Name),
		fmt.Sprintf(`indexpilot_mutation_log_oldest_age_seconds{database=%q} `, db.Name),
		`indexpilot_builds_failed_24h{target="main"} 0`,
		`indexpilot_builds_reverted_24h{target="main"} 1`,
		`indexpilot_builds_reverted_24h{target="quiet"} 0`,
		`indexpilot_collector_poll_interval_seconds{target="main"} 30`,
		`indexpilot_collector_last_success_age_seconds{target="main"} `,
		`indexpilot_collector_last_success_age_seconds{target="quiet"} `,
		`indexpilot_bypass_active{level="emergency",name=""} 1`,
		`indexpilot_emergency_stop 1`,
	}
	ddWant := []string{
		"indexpilot.mutation_log_rows:3|g|#database:" + db.Name,
		"indexpilot.builds_reverted_24h:1|g|#target:main",
		"indexpilot.emergency_stop:1|g",
		"indexpilot.bypass_active:1|g|#level:emergency,name:",
	}
	missing := func(got string, want []string) []string {
		var out []string
		for _, w := range want {
			if !strings.Contains(got, w) {
				out = append(out, w)
			}
		}
		return out
	}
	if !assert.Eventually(t, func() bool {
		return len(missing(scrape(t, tel), promWant)) == 0 && len(missing(udp.Text(), ddWant)) == 0
	}, 20*time.Second, 50*time.Millisecond) {
		t.Fatalf("missing on /metrics %q, on DogStatsD %q", missing(scrape(t, tel), promWant), missing(udp.Text(), ddWant))
	}

	// The emergency stop ends: every output says 0.
	_, err = bypass.Set(ctx, db.Pool, nil, bypass.Change{Level: bypass.LevelEmergency, Disabled: false,
		Reason: "over", Actor: "test"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		body := scrape(t, tel)
		return strings.Contains(body, "indexpilot_emergency_stop 0") &&
			strings.Contains(body, `indexpilot_bypass_active{level="emergency",name=""} 0`) &&
			strings.Contains(udp.Text(), "indexpilot.emergency_stop:0|g")
	}, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return otelGauge(t, reader, "indexpilot_emergency_stop") == 0 &&
			otelGauge(t, reader, "indexpilot_builds_reverted_24h") == 1 &&
			otelGauge(t, reader, "indexpilot_mutation_log_rows") == 3
	}, 20*time.Second, 50*time.Millisecond, "OTLP gauges")

	cancel()
	require.NoError(t, <-done)
}

// otelGauge collects reader and returns the sum of the gauge name's points
// (-1 when it has none).
func otelGauge(t *testing.T, reader *sdkmetric.ManualReader, name string) float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	sum, found := 0.0, false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[float64]); ok && m.Name == name {
				for _, p := range g.DataPoints {
					sum, found = sum+p.Value, true
				}
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}
