package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestArchiveMovesOldLogRows(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL}
	code, _, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)
	db.Exec(t, `insert into indexpilot.mutation_log (occurred_at, stage, action, outcome)
select now() - g * interval '1 day', 'test', 'recommend', 'proposed' from generate_series(1, 12) g`)
	count := func(table string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), "select count(*) from indexpilot."+table).Scan(&n))
		return n
	}

	for _, bad := range []string{"soon", "-5h", "0d", "0s"} {
		code, out, stderr := runCLI(t, env, "archive", "--older-than", bad)
		require.Equal(t, 2, code, "--older-than %s", bad)
		require.Empty(t, out)
		require.True(t, strings.HasPrefix(stderr, "indexpilot: archive: --older-than \""+bad+"\" is not a positive duration"), stderr)
	}
	code, _, stderr = runCLI(t, env, "archive")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--older-than is required")

	code, out, stderr := runCLI(t, env, "archive", "--older-than", "7d", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "dry run: 6 mutation_log rows older than 7d")
	require.Equal(t, 12, count("mutation_log"))

	code, out, stderr = runCLI(t, env, "archive", "--older-than", "168h")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "moved 6 mutation_log rows older than 168h")
	require.Equal(t, 6, count("mutation_log"))
	require.Equal(t, 6, count("mutation_log_archive"))

	code, out, _ = runCLI(t, env, "archive", "--older-than", "7d")
	require.Equal(t, 0, code)
	require.Contains(t, out, "moved 0 mutation_log rows")
}
