package indexpilot_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

// TestRunAllWithStartupBypassLeavesTheSchemaAlone starts the all-in-one
// process with the startup bypass on a fresh control database (also its
// one target) and lets it run for a few seconds: the metadata schema is
// not created, nothing is logged at error level, the collector keeps
// polling without it and every other stage says once that it is idle.
func TestRunAllWithStartupBypassLeavesTheSchemaAlone(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_TARGETS=main=" + db.URL,
		"INDEXPILOT_FEATURES_BYPASS_STARTUP=true",
		"INDEXPILOT_COLLECTOR_INTERVAL=50ms",
		"INDEXPILOT_SCORER_INTERVAL=50ms",
		"INDEXPILOT_GATEKEEPER_RECHECK_INTERVAL=50ms",
		"INDEXPILOT_EXECUTOR_POLL_INTERVAL=50ms",
	})
	require.NoError(t, err)
	require.True(t, cfg.Features.Bypass.Startup)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs logtest.Buffer
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- indexpilot.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)),
			indexpilot.Options{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("RunAll exited under the startup bypass: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("RunAll did not become ready within 30 s")
	}
	time.Sleep(3 * time.Second)
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"select count(*) from pg_namespace where nspname = 'indexpilot'").Scan(&n))
	require.Zero(t, n, "the startup bypass must leave the metadata schema untouched")
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("RunAll did not stop within 30 s of cancel")
	}
	out := logs.String()
	for _, line := range strings.Split(out, "\n") {
		require.NotContains(t, line, "level=ERROR", "logs:\n%s", out)
	}
	for _, s := range []string{"executor", "gatekeeper", "scorer"} {
		require.Equal(t, 1, strings.Count(out, "this stage needs the metadata schema and stays idle until the process is restarted without it\" stage="+s+"\n"),
			"stage %s did not say once that it is idle; logs:\n%s", s, out)
	}
	require.Equal(t, 1, strings.Count(out, "running without the metadata schema (no health rows, reload requests or watermarks kept)\" stage=collector\n"), out)
	require.Zero(t, strings.Count(out, "level=WARN")-5, "only the startup warnings (runner + 4 stages); logs:\n%s", out)
}
