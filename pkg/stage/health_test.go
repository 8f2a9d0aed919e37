package stage_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

func get(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// TestRunServesHealth starts a stage through RunWith with a listener: the
// process is live at once, ready only after the stage calls Ready, and the
// extra handler is served next to the probes.
func TestRunServesHealth(t *testing.T) {
	db := pgtest.NewDatabase(t)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Adapters.Listen = "127.0.0.1:0"
	require.NoError(t, cfg.Validate())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	goReady := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- stage.RunWith(ctx, cfg, "probe", func(ctx context.Context, d stage.Deps) error {
			<-goReady
			d.Ready()
			<-ctx.Done()
			return nil
		}, stage.RunOptions{
			Handlers: map[string]http.Handler{"/metrics": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(`{"status":"metrics"}`))
			})},
			Listening: func(a net.Addr) { addrc <- a },
		})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("RunWith returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no listener within 30 s")
	}

	code, body := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["status"])
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "ready before the stage said so: %v", body)
	require.Equal(t, "starting", body["reason"])

	close(goReady)
	require.Eventually(t, func() bool { c, _ := get(t, base+"/readyz"); return c == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "metrics", body["status"])

	cancel()
	require.NoError(t, <-done)
	_, err := http.Get(base + "/healthz")
	require.Error(t, err, "the listener outlived the stage")
}

// TestReadyNeedsTheControlDatabase: a ready stage whose control database
// is gone is not ready.
func TestReadyNeedsTheControlDatabase(t *testing.T) {
	db := pgtest.NewDatabase(t)
	h := stage.NewHealth(db.Pool)
	h.SetReady(true)
	ok, why := h.Ready(context.Background())
	require.True(t, ok, why)
	db.Pool.Close()
	ok, why = h.Ready(context.Background())
	require.False(t, ok)
	require.Equal(t, "control database unreachable", why)
}
