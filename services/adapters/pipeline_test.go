package adapters_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestPipelineMetricsAndTrace runs the four stages and the Prometheus
// adapter in one process (as indexpilot run does) in apply mode against a
// real database, until the index is built. Then /metrics has the expected
// series with non-zero values, and the in-memory span exporter shows one
// trace — the lead statement's — spanning all four stages for the
// candidate, whose span attributes carry no statement text.
func TestPipelineMetricsAndTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	// The load is history when IndexPilot starts (pgtest.Load).
	db.Load(t,
		`create table public.orders (id bigint generated always as identity primary key,
			customer_id int not null, status text not null, total_cents int not null, created_at timestamptz not null)`,
		`insert into public.orders (customer_id, status, total_cents, created_at)
		 select (g * 7919) % 20000, (array['new','paid','shipped','void'])[1 + g % 4], g % 10000,
		        timestamptz '2026-01-01' + g * interval '1 minute'
		   from generate_series(1, 60000) g`,
		`analyze public.orders`)

	// Safety rules that would defer or refuse the build on a small, shared
	// test machine are relaxed by name, as an operator would.
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=apply",
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_GATEKEEPER_STORAGE_MAX_PCT_OF_DATABASE=0",
		"INDEXPILOT_SCORER_STORAGE_BUDGET_MB=1024",
		"INDEXPILOT_EXECUTOR_CPU_ENABLED=false",
		"INDEXPILOT_EXECUTOR_VALIDATION_ENABLED=false",
	})
	require.NoError(t, err)
	cfg.Collector.Interval = 300 * time.Millisecond
	cfg.Scorer.Interval = 300 * time.Millisecond
	cfg.Executor.PollInterval = 100 * time.Millisecond
	cfg.Adapters.Listen = "127.0.0.1:0"
	cfg.Adapters.Prometheus = config.PrometheusAdapter{Enabled: true, StateInterval: 100 * time.Millisecond}
	require.NoError(t, cfg.Validate())

	spans := tracetest.NewSpanRecorder()
	tel, err := adapters.Setup(ctx, cfg, "test", adapters.SetupOptions{SpanProcessors: []sdktrace.SpanProcessor{spans}})
	require.NoError(t, err)
	defer tel.Shutdown(context.Background())

	var logw io.Writer = io.Discard
	if os.Getenv("INDEXPILOT_TEST_LOG") != "" {
		logw = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := bus.NewMemory(logger)
	defer b.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, s := range []struct {
		name  string
		start stage.StartFunc
	}{
		{adapters.Name, adapters.Start}, {"executor", executor.Start}, {"gatekeeper", gatekeeper.Start},
		{"scorer", scorer.Start}, {"collector", collector.Start},
	} {
		ready := make(chan struct{})
		var once sync.Once
		targets := stage.NewTargets(cfg.Targets, s.name)
		d := stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: targets, Logger: logger.With("stage", s.name),
			OnReady: func() { once.Do(func() { close(ready) }) }}
		errc := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer targets.Close()
			errc <- s.start(ctx, d)
		}()
		select {
		case <-ready:
		case err := <-errc:
			t.Fatalf("%s stopped before ready: %v", s.name, err)
		case <-time.After(time.Minute):
			t.Fatalf("%s not ready within a minute", s.name)
		}
	}

	count := func(sql string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	builtOK := assert.Eventually(t, func() bool {
		for i := 0; i < 400; i++ {
			rows, err := db.Pool.Query(ctx, "select id, total_cents from public.orders where customer_id = $1", (i*37)%20000)
			if err != nil {
				return false
			}
			rows.Close()
		}
		return count("select count(*) from indexpilot.recommendations where state = 'applied'") == 1
	}, 2*time.Minute, 200*time.Millisecond, "the index built in apply mode")
	if !builtOK {
		var states string
		_ = db.Pool.QueryRow(ctx, `select coalesce(string_agg(state || ':' || reason, ', '), 'none') from indexpilot.recommendations`).Scan(&states)
		var builds string
		_ = db.Pool.QueryRow(ctx, `select coalesce(string_agg(state || ':' || coalesce(last_error, ''), ', '), 'none') from indexpilot.builds`).Scan(&builds)
		var dec []string
		for _, l := range strings.Split(scrape(t, tel), "\n") {
			if strings.HasPrefix(l, "indexpilot_decisions") {
				dec = append(dec, l)
			}
		}
		t.Fatalf("no index built; recommendations %s; builds %s; decisions %v", states, builds, dec)
	}

	// --- /metrics
	want := []string{
		`indexpilot_builds_total{outcome="built",target="main"} 1`,
		`indexpilot_build_duration_seconds_count{target="main"} 1`,
		`indexpilot_recommendations{state="applied",target="main"} 1`,
		`indexpilot_decisions_total{reason="apply_mode",target="main",verdict="approved"}`,
		`indexpilot_candidates_total{target="main",what_if_method="hypopg"}`,
		`indexpilot_scorer_whatif_calls_total{target="main",what_if_method="hypopg"}`,
		`indexpilot_scorer_whatif_cache_misses_total{target="main",what_if_method="hypopg"}`,
		`indexpilot_events_produced_total{outcome="observed",producer="collector",type="querystat.observed.v1"}`,
		`indexpilot_events_produced_total{outcome="built",producer="executor",type="index_build.completed.v1"} 1`,
		`indexpilot_events_consumed_total{adapter="prometheus",outcome="ok",type="index_decision.made.v1"}`,
		`indexpilot_event_age_seconds{adapter="prometheus",type="index_build.completed.v1"}`,
		`indexpilot_bus_published_total{stage="gatekeeper",type="index_decision.made.v1"}`,
		`indexpilot_bus_consumed_total{group="indexpilot.executor.decisions",outcome="ok",stage="executor",type="index_decision.made.v1"}`,
	}
	var body string
	ok := assert.Eventually(t, func() bool {
		body = scrape(t, tel)
		for _, w := range want {
			if !hasNonZero(body, w) {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond)
	if !ok {
		for _, w := range want {
			if !hasNonZero(body, w) {
				t.Errorf("/metrics has no non-zero %s", w)
			}
		}
		t.FailNow()
	}

	// --- the trace
	var build sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == "publish "+string(events.TypeIndexBuildCompleted) {
			build = s
		}
	}
	require.NotNil(t, build, "no span for the build's publish")
	trace := build.SpanContext().TraceID()
	var candidateID string
	for _, a := range build.Attributes() {
		if string(a.Key) == telemetry.AttrCandidate {
			candidateID = a.Value.AsString()
		}
	}
	require.NotEmpty(t, candidateID)
	stages := map[string]bool{}
	names := map[string]bool{}
	var queryIDs []string
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() != trace {
			continue
		}
		names[s.Name()] = true
		for _, a := range s.Attributes() {
			v := a.Value.Emit()
			require.NotContains(t, strings.ToLower(v), "orders", "span %s attribute %s carries statement text", s.Name(), a.Key)
			require.NotContains(t, strings.ToLower(v), "postgres://", "span %s attribute %s carries a DSN", s.Name(), a.Key)
			switch string(a.Key) {
			case telemetry.AttrStage:
				stages[v] = true
			case telemetry.AttrQueryID:
				queryIDs = append(queryIDs, v)
			case telemetry.AttrCandidate:
				require.Equal(t, candidateID, v, "span %s of another candidate in the trace", s.Name())
			}
		}
	}
	for _, st := range []string{"collector", "scorer", "gatekeeper", "executor"} {
		require.True(t, stages[st], "no %s span in the trace; stages %v, spans %v", st, stages, names)
	}
	for _, n := range []string{
		"publish querystat.observed.v1", "scorer handle querystat.observed.v1",
		"publish index_candidate.scored.v1", "gatekeeper handle index_candidate.scored.v1",
		"publish index_decision.made.v1", "executor handle index_decision.made.v1",
		"publish index_build.completed.v1", "adapters.prometheus handle index_build.completed.v1",
	} {
		require.True(t, names[n], "span %q missing from the trace: %v", n, names)
	}
	require.NotEmpty(t, queryIDs)
	require.Equal(t, telemetry.StatementSpanContext("main", queryIDs[0]).TraceID(), trace,
		"the trace is not the statement's deterministic trace")
	t.Log(fmt.Sprintf("trace %s: %d span names, stages %v", trace, len(names), stages))
}

// hasNonZero reports whether a sample line starting with series has a
// value other than 0.
func hasNonZero(body, series string) bool {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, series) {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 2 && f[len(f)-1] != "0" {
			return true
		}
	}
	return false
}
