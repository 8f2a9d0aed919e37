package adapters_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/adapters/adapterstest"
)

func scrape(t *testing.T, tel *adapters.Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	return rec.Body.String()
}

// TestAdaptersTurnEventsIntoMetrics runs the Prometheus and Datadog adapters
// over the in-process bus, publishes one event of every type (one of them
// twice) and checks the /metrics series and the DogStatsD datagrams.
func TestAdaptersTurnEventsIntoMetrics(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t, `insert into indexpilot.recommendations
		(id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason,
		 candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
		values (gen_random_uuid(), 'main', 'k', 'public', 'contacts', '{}', 'ip_x', 'proposed', 'advisory_mode',
		 gen_random_uuid(), gen_random_uuid(), 'v1', 50, 8192, '{}')`)

	udp := adapterstest.ListenDogStatsD(t)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Adapters.Listen = "127.0.0.1:0"
	cfg.Adapters.Prometheus = config.PrometheusAdapter{Enabled: true, StateInterval: 50 * time.Millisecond}
	cfg.Adapters.Datadog.Enabled = true
	cfg.Adapters.Datadog.Address = udp.Addr()
	cfg.Adapters.Datadog.StateInterval = 50 * time.Millisecond
	cfg.Adapters.Datadog.Tags = []string{"env:test"}
	require.NoError(t, cfg.Validate())

	tel, err := adapters.Setup(ctx, cfg, "test", adapters.SetupOptions{})
	require.NoError(t, err)
	defer tel.Shutdown(context.Background())

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	defer b.Close()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- adapters.Start(ctx, stage.Deps{Config: cfg, Bus: b, Control: db.Pool,
			Targets: stage.NewTargets(cfg.Targets, "adapters"), Logger: logger,
			OnReady: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("adapters stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("adapters not ready in 30 s")
	}

	ex := events.Examples()
	require.NoError(t, b.Publish(ctx, "test", "", ex...))
	var build *events.IndexBuildCompleted
	for _, p := range ex {
		if x, ok := p.(*events.IndexBuildCompleted); ok {
			build = x
		}
	}
	require.NotNil(t, build)
	require.NoError(t, b.Publish(ctx, "test", "", build)) // a redelivery

	want := []string{
		`indexpilot_events_produced_total{outcome="scored",producer="test",type="index_candidate.scored.v1"} 1`,
		`indexpilot_events_produced_total{outcome="approved",producer="test",type="index_decision.made.v1"} 1`,
		`indexpilot_events_produced_total{outcome="observed",producer="test",type="querystat.observed.v1"} 1`,
		`indexpilot_events_consumed_total{adapter="prometheus",outcome="duplicate",type="index_build.completed.v1"} 1`,
		`indexpilot_candidates_total{target="main",what_if_method="hypopg"} 1`,
		`indexpilot_decisions_total{reason="apply_mode",target="main",verdict="approved"} 1`,
		`indexpilot_builds_total{outcome="built",target="main"} 1`,
		`indexpilot_builds_total{outcome="failed",target="main"} 1`,
		`indexpilot_build_duration_seconds_count{target="main"} 1`,
		`indexpilot_build_duration_seconds_sum{target="main"} 0.4125`,
		`indexpilot_recommendations{state="proposed",target="main"} 1`,
		`indexpilot_recommendations{state="applied",target="main"} 0`, // every state of the schema's check
		`indexpilot_recommendations{state="superseded",target="main"} 0`,
		`indexpilot_reverts_total{target="main",verdict="regressed"} 1`,
		`indexpilot_validations_total{target="main",verdict="regressed"} 1`,
		`indexpilot_bus_published_total{stage="test",type="index_build.completed.v1"} 2`,
	}
	require.Eventually(t, func() bool {
		body := scrape(t, tel)
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return strings.Contains(body, `indexpilot_event_age_seconds{adapter="prometheus",type="querystat.observed.v1"}`) &&
			strings.Contains(body, `indexpilot_bus_consumed_total{group="indexpilot.adapters.prometheus.index_build.completed.v1",outcome="ok",stage="adapters.prometheus",type="index_build.completed.v1"} 2`)
	}, 20*time.Second, 50*time.Millisecond, "series missing from /metrics; want %q in:\n%s", want, func() string { return scrape(t, tel) }())
	require.NotContains(t, scrape(t, tel), "indexpilot_consumer_lag_messages", "offset lag on the memory transport, which has no offsets")

	ddWant := []string{
		"indexpilot.events_produced:1|c|#env:test,type:querystat.observed.v1,producer:test,outcome:observed",
		"indexpilot.candidates:1|c|#env:test,target:main,what_if_method:hypopg",
		"indexpilot.builds:1|c|#env:test,target:main,outcome:built",
		"indexpilot.build_duration_seconds:0.4125|d|#env:test,target:main",
		"indexpilot.recommendations:1|g|#env:test,target:main,state:proposed",
		"indexpilot.event_age_seconds:",
		"_e{",
		":IndexPilot built ip_contacts_tenant_id_email_3f9a1c2e|",
		"|t:success|",
		"|t:error|",
		":IndexPilot reverted ip_",
		"|t:warning|",
	}
	ddMissing := func() []string {
		var out []string
		got := udp.Text()
		for _, w := range ddWant {
			if !strings.Contains(got, w) {
				out = append(out, w)
			}
		}
		return out
	}
	if !assert.Eventually(t, func() bool { return len(ddMissing()) == 0 }, 20*time.Second, 50*time.Millisecond) {
		t.Fatalf("DogStatsD datagrams missing %q in:\n%s", ddMissing(), udp.Text())
	}
	require.NotContains(t, udp.Text(), "lock timeout", "an error text went to Datadog")

	cancel()
	require.NoError(t, <-done)
}
