package adapters_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/adapters"
)

// TestOTLPExportsTracesAndMetrics points the OTLP/HTTP exporters at a local
// server: after a span and a metric, Shutdown flushes both to their paths.
// With OTLP off (the default) no tracer provider is installed.
func TestOTLPExportsTracesAndMetrics(t *testing.T) {
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

	cfg := config.Default()
	cfg.DatabaseURL = "postgres://u@h/db"
	off, err := adapters.Setup(context.Background(), cfg, "test", adapters.SetupOptions{NoGlobal: true})
	require.NoError(t, err)
	require.Nil(t, off.TracerProvider, "a tracer provider without OTLP")
	require.NoError(t, off.Shutdown(context.Background()))

	cfg.Adapters.OTLP.Enabled = true
	cfg.Adapters.OTLP.Insecure = true
	cfg.Adapters.OTLP.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	require.NoError(t, cfg.Validate())
	tel, err := adapters.Setup(context.Background(), cfg, "test", adapters.SetupOptions{NoGlobal: true})
	require.NoError(t, err)
	require.NotNil(t, tel.TracerProvider)
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "probe")
	span.End()
	c, err := tel.MeterProvider.Meter("test").Int64Counter("indexpilot_probe")
	require.NoError(t, err)
	c.Add(context.Background(), 1)
	require.NoError(t, tel.Shutdown(context.Background()))

	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, paths["/v1/traces"], "no trace export; got %v", paths)
	require.Positive(t, paths["/v1/metrics"], "no metric export; got %v", paths)
}
