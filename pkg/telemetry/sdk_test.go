package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

func TestNoTracerProviderWhenOTLPIsOff(t *testing.T) {
	tp, err := telemetry.NewTracerProvider(context.Background(), config.Default(), "scorer")
	require.NoError(t, err)
	require.Nil(t, tp)
	shutdown, err := telemetry.SetupTracing(context.Background(), config.Default(), "scorer")
	require.NoError(t, err)
	require.NoError(t, shutdown(context.Background()))
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

// TestSetupTracingExportsOverOTLPHTTP: with adapters.otlp on, a span ended
// under the global tracer reaches an OTLP/HTTP endpoint by shutdown.
func TestSetupTracingExportsOverOTLPHTTP(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)

	cfg := config.Default()
	cfg.Adapters.OTLP.Enabled = true
	cfg.Adapters.OTLP.Traces = true
	cfg.Adapters.OTLP.Insecure = true
	cfg.Adapters.OTLP.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cfg.Adapters.Tracing.SampleRatio = 1
	shutdown, err := telemetry.SetupTracing(context.Background(), cfg, "executor")
	require.NoError(t, err)
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	require.True(t, ok, "the SDK provider is the global one")
	_, span := telemetry.Tracer().Start(context.Background(), "executor build")
	span.End()
	require.NoError(t, shutdown(context.Background()))
	require.Positive(t, posts.Load(), "no span reached the OTLP endpoint")
}
