package indexpilot_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

// TestRunAllWithStartupBypassLeavesTheSchemaAlone starts the all-in-one
// process with the startup bypass on a fresh control database: the
// metadata schema is not created.
func TestRunAllWithStartupBypassLeavesTheSchemaAlone(t *testing.T) {
	db := pgtest.NewDatabase(t)
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_FEATURES_BYPASS_STARTUP=true",
		"INDEXPILOT_COLLECTOR_INTERVAL=50ms",
	})
	require.NoError(t, err)
	require.True(t, cfg.Features.Bypass.Startup)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- indexpilot.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
			indexpilot.Options{Ready: func() { close(ready) }})
	}()
	exited := false
	select {
	case <-ready:
	case err := <-errc:
		t.Logf("RunAll exited before ready: %v", err)
		// A stage may refuse to run without its tables; the point is
		// that nothing created them.
		exited = true
	case <-time.After(30 * time.Second):
		t.Fatal("RunAll neither became ready nor exited within 30 s")
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"select count(*) from pg_namespace where nspname = 'indexpilot'").Scan(&n))
	require.Zero(t, n, "the startup bypass must leave the metadata schema untouched")
	cancel()
	if !exited {
		select {
		case <-errc:
		case <-time.After(30 * time.Second):
			t.Fatal("RunAll did not stop within 30 s of cancel")
		}
	}
}
