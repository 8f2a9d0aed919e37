package stage_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// TestLaunchUnderTheStartupBypass: a stage that needs the metadata schema
// is not started (one log line, ready, idle until ctx ends); the collector
// is started without the control pool.
func TestLaunchUnderTheStartupBypass(t *testing.T) {
	cfg := config.Default()
	cfg.Features.Bypass.Startup = true
	var logs bytes.Buffer
	ready := 0
	d := stage.Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnReady: func() { ready++ }}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	started := false
	require.NoError(t, stage.Launch(ctx, "gatekeeper", func(context.Context, stage.Deps) error { started = true; return nil }, d))
	require.False(t, started, "a stage that needs the metadata schema was started under the startup bypass")
	require.Equal(t, 1, ready)
	require.Equal(t, 1, strings.Count(logs.String(), "needs the metadata schema and stays idle"), logs.String())

	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none") // never used: not connected
	require.NoError(t, err)
	defer pool.Close()
	d.Control = pool
	var gotControl bool
	require.NoError(t, stage.Launch(context.Background(), "collector", func(_ context.Context, d stage.Deps) error {
		gotControl = d.Control != nil
		return nil
	}, d))
	require.False(t, gotControl, "the collector got the control pool under the startup bypass")
}

// TestLaunchCarriesTheConfiguredMutationLoggingSwitch: with
// mutation_logging in features.bypass.features, a stage's ordinary
// mutation_log rows are not written; bypass rows are.
func TestLaunchCarriesTheConfiguredMutationLoggingSwitch(t *testing.T) {
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	for _, off := range []bool{false, true} {
		cfg := config.Default()
		if off {
			cfg.Features.Bypass.Features = []string{config.FeatureMutationLogging}
		}
		d := stage.Deps{Config: cfg, Control: db.Pool, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
		require.NoError(t, stage.Launch(context.Background(), "gatekeeper", func(ctx context.Context, d stage.Deps) error {
			for _, st := range []string{"gatekeeper", metadata.StageBypass} {
				if _, err := metadata.AppendLog(ctx, d.Control, metadata.Entry{Stage: st, Action: "test", Outcome: "ok"}); err != nil {
					return err
				}
			}
			return nil
		}, d))
	}
	var gk, bp int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `select count(*) filter (where stage = 'gatekeeper'),
       count(*) filter (where stage = 'bypass') from indexpilot.mutation_log`).Scan(&gk, &bp))
	require.Equal(t, 1, gk, "only the run with logging on wrote the ordinary row")
	require.Equal(t, 2, bp, "bypass rows are always written")
}
