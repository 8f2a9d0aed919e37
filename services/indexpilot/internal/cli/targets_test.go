package cli

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/collector/appstats"
)

func TestTargetCommands(t *testing.T) {
	ctl := pgtest.NewDatabase(t)
	target := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": ctl.URL, "INDEXPILOT_TARGETS": "main=" + target.URL + ";down=postgres://u@127.0.0.1:1/x"}
	code, _, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)

	code, out, stderr := runCLI(t, env, "init", "--target", "main")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "target main: indexpilot.query_stats and publication indexpilot_query_stats are ready")
	var n int
	require.NoError(t, target.Pool.QueryRow(context.Background(),
		"select count(*) from pg_publication_tables where pubname = 'indexpilot_query_stats' and tablename = 'query_stats'").Scan(&n))
	require.Equal(t, 1, n)

	code, _, stderr = runCLI(t, env, "init", "--target", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no target named "nope"`)

	// status: the collector has not run yet, then a recorded failure.
	code, out, stderr = runCLI(t, env, "status")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "collector:")
	require.Contains(t, out, "no collector has polled it yet")
	ctl.Exec(t, `insert into indexpilot.collector_targets (target, healthy, last_poll_at, last_success_at, consecutive_failures, interval_ms, poll_db_ms, app_stats_mode)
		values ('main', true, now(), now(), 0, 30000, 12.5, 'replication'),
		       ('down', false, now(), null, 3, 30000, 0, '')`)
	code, out, _ = runCLI(t, env, "status")
	require.Equal(t, 0, code)
	require.Regexp(t, `main\s+ok\s+\S+\s+0s\s+12\.5 ms\s+replication`, out)
	require.Regexp(t, `down\s+failing \(3 in a row\)`, out)

	code, out, stderr = runCLI(t, env, "reload")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "reload requested")
	require.NoError(t, ctl.Pool.QueryRow(context.Background(), "select count(*) from indexpilot.collector_reload").Scan(&n))
	require.Equal(t, 1, n)

	// uninstall drops the slot a collector would have created.
	slot := appstats.SlotName("main", target.Name)
	logical, err := appstats.WALIsLogical(context.Background(), target.Pool)
	require.NoError(t, err)
	if logical {
		target.Exec(t, "select pg_create_logical_replication_slot('"+slot+"', 'pgoutput')")
		t.Cleanup(func() { _, _ = appstats.DropSlot(context.Background(), target.Pool, slot) })
	}
	code, out, stderr = runCLI(t, env, "uninstall", "--target", "main")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "publication indexpilot_query_stats dropped")
	require.NoError(t, target.Pool.QueryRow(context.Background(), "select count(*) from pg_replication_slots where slot_name = $1", slot).Scan(&n))
	require.Zero(t, n)

	code, _, stderr = runCLI(t, env, "uninstall")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--target NAME is required")
}
