package stage_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestRunTelemetryServesTheStagesMetrics runs a stage the way a stand-alone
// stage binary does (RunTelemetry, which Main calls): its /metrics, next to
// the probes, serves what the stage recorded on the global meter (its bus's
// published and consumed counters, and an instrument of its own), and with
// adapters.otlp on the same metrics and its spans reach the OTLP endpoint.
func TestRunTelemetryServesTheStagesMetrics(t *testing.T) {
	prevT, prevM := otel.GetTracerProvider(), otel.GetMeterProvider()
	defer func() { otel.SetTracerProvider(prevT); otel.SetMeterProvider(prevM) }()
	var mu sync.Mutex
	posts := map[string]int{}
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	db := pgtest.NewDatabase(t)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Adapters.Listen = "127.0.0.1:0"
	cfg.Adapters.OTLP.Enabled = true
	cfg.Adapters.OTLP.Insecure = true
	cfg.Adapters.OTLP.Endpoint = strings.TrimPrefix(collector.URL, "http://")
	cfg.Adapters.Tracing.SampleRatio = 1
	require.NoError(t, cfg.Validate())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- stage.RunTelemetry(ctx, cfg, "probe", func(ctx context.Context, d stage.Deps) error {
			own, err := telemetry.Meter().Int64Counter("indexpilot_probe_rounds")
			if err != nil {
				return err
			}
			handled := make(chan struct{}, 1)
			r, err := d.Bus.NewRouter("probe", time.Second)
			if err != nil {
				return err
			}
			if err := r.Handle("querystats", events.TypeQueryStatObserved, func(ctx context.Context, _ events.Envelope, _ events.Payload) ([]events.Payload, error) {
				own.Add(ctx, 1)
				handled <- struct{}{}
				return nil, nil
			}); err != nil {
				return err
			}
			go func() { _ = r.Run(ctx) }()
			<-r.Running()
			var p events.Payload
			for _, x := range events.Examples() {
				if x.EventType() == events.TypeQueryStatObserved {
					p = x
				}
			}
			if err := d.Bus.Publish(ctx, "probe", "corr-probe", p); err != nil {
				return err
			}
			select {
			case <-handled:
			case <-ctx.Done():
				return nil
			}
			d.Ready()
			<-ctx.Done()
			return nil
		}, stage.RunOptions{Listening: func(a net.Addr) { addrc <- a }})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("RunTelemetry returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no listener within 30 s")
	}
	require.Eventually(t, func() bool { c, _ := get(t, base+"/readyz"); return c == http.StatusOK }, 20*time.Second, 20*time.Millisecond)

	text := scrapeText(t, base+"/metrics")
	for _, want := range []string{
		`indexpilot_probe_rounds_total 1`,
		`indexpilot_bus_published_total{stage="probe",type="querystat.observed.v1"} 1`,
		`indexpilot_bus_consumed_total{group="indexpilot.probe.querystats",outcome="ok",stage="probe",type="querystat.observed.v1"} 1`,
	} {
		require.True(t, hasSeries(text, want), "missing %s in\n%s", want, text)
	}
	cancel()
	require.NoError(t, <-done)
	// RunTelemetry flushed the SDK on return.
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, posts["/v1/metrics"], "no OTLP metric export; got %v", posts)
	require.Positive(t, posts["/v1/traces"], "no OTLP span export; got %v", posts)
}

// hasSeries reports whether the exposition has the series line want,
// ignoring the unit suffix exporters may add to counters.
func hasSeries(text, want string) bool {
	for _, line := range strings.Split(text, "\n") {
		if line == want {
			return true
		}
	}
	return false
}
