package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

func TestNoTracerProviderWhenOTLPIsOff(t *testing.T) {
	tp, err := telemetry.NewTracerProvider(context.Background(), config.Default(), "scorer")
	require.NoError(t, err)
	require.Nil(t, tp)
	sdk, err := telemetry.Setup(context.Background(), config.Default(), "scorer", telemetry.SetupOptions{NoGlobal: true})
	require.NoError(t, err)
	require.Nil(t, sdk.TracerProvider, "a tracer provider without OTLP")
	require.NotNil(t, sdk.MeterProvider, "the Prometheus reader is always there")
	require.NoError(t, sdk.Shutdown(context.Background()))
}

func TestTracerProviderRecordsWithServiceName(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp, err := telemetry.NewTracerProvider(context.Background(), config.Default(), "scorer", rec)
	require.NoError(t, err)
	require.NotNil(t, tp)
	_, span := tp.Tracer(telemetry.ScopeName).Start(context.Background(), "x")
	span.End()
	require.NoError(t, tp.Shutdown(context.Background()))
	require.Len(t, rec.Ended(), 1)
	var name string
	for _, kv := range rec.Ended()[0].Resource().Attributes() {
		if kv.Key == "service.name" {
			name = kv.Value.AsString()
		}
	}
	require.Equal(t, "indexpilot-scorer", name)
}

// TestSetupExportsOverOTLPHTTP: with adapters.otlp on, Setup installs the
// SDK as the global providers; a span ended under the global tracer and a
// counter of the global meter reach an OTLP/HTTP endpoint by shutdown, and
// the counter is on the Prometheus handler too.
func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	prevT, prevM := otel.GetTracerProvider(), otel.GetMeterProvider()
	defer func() { otel.SetTracerProvider(prevT); otel.SetMeterProvider(prevM) }()

	cfg := config.Default()
	cfg.DatabaseURL = "postgres://u@h/db"
	cfg.Adapters.OTLP.Enabled = true
	cfg.Adapters.OTLP.Insecure = true
	cfg.Adapters.OTLP.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cfg.Adapters.Tracing.SampleRatio = 1
	require.NoError(t, cfg.Validate())
	sdk, err := telemetry.Setup(context.Background(), cfg, "executor", telemetry.SetupOptions{})
	require.NoError(t, err)
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	require.True(t, ok, "the SDK tracer provider is the global one")
	_, ok = otel.GetMeterProvider().(*sdkmetric.MeterProvider)
	require.True(t, ok, "the SDK meter provider is the global one")
	_, span := telemetry.Tracer().Start(context.Background(), "executor build")
	span.End()
	c, err := telemetry.Meter().Int64Counter("indexpilot_probe")
	require.NoError(t, err)
	c.Add(context.Background(), 3)

	rec := httptest.NewRecorder()
	sdk.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Contains(t, rec.Body.String(), "indexpilot_probe_total 3")
	require.NoError(t, sdk.Shutdown(context.Background()))

	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, paths["/v1/traces"], "no trace export; got %v", paths)
	require.Positive(t, paths["/v1/metrics"], "no metric export; got %v", paths)
}
