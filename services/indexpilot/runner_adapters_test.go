package indexpilot_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunAllWithAdapters runs the all-in-one process with the Prometheus
// adapter in it: /healthz answers, /readyz turns ready once every stage
// (the adapters included) runs, and /metrics shows the adapter's and the
// stages' series.
func TestRunAllWithAdapters(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t, `create table public.items (id int primary key, name text)`, `insert into public.items values (1, 'a')`)
	addr := freeAddr(t)
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_COLLECTOR_INTERVAL=200ms",
		"INDEXPILOT_ADAPTERS_LISTEN=" + addr,
		"INDEXPILOT_ADAPTERS_PROMETHEUS_ENABLED=true",
		"INDEXPILOT_ADAPTERS_PROMETHEUS_STATE_INTERVAL=100ms",
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tel, err := adapters.Setup(ctx, cfg, "test", adapters.SetupOptions{})
	require.NoError(t, err)
	defer tel.Shutdown(context.Background())

	errc := make(chan error, 1)
	go func() {
		errc <- indexpilot.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
			indexpilot.Options{Handlers: map[string]http.Handler{"/metrics": tel.MetricsHandler()}})
	}()
	base := "http://" + addr
	require.Eventually(t, func() bool { c, _ := httpGet(base + "/readyz"); return c == http.StatusOK },
		60*time.Second, 50*time.Millisecond, "/readyz never ready")
	code, _ := httpGet(base + "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool {
		_, body := httpGet(base + "/metrics")
		return strings.Contains(body, `indexpilot_events_produced_total{outcome="observed",producer="collector",type="tablestat.observed.v1"}`) &&
			strings.Contains(body, `indexpilot_bus_published_total{stage="collector",type="tablestat.observed.v1"}`) &&
			strings.Contains(body, `indexpilot_events_consumed_total{adapter="prometheus",outcome="ok",type="tablestat.observed.v1"}`)
	}, 60*time.Second, 100*time.Millisecond, "the collector's events never reached /metrics")
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("RunAll did not stop")
	}
}
