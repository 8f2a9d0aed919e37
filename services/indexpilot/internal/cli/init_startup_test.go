package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestInitRefusesUnderTheStartupBypass: with the startup bypass set, init
// exits non-zero with one line and creates no metadata schema.
func TestInitRefusesUnderTheStartupBypass(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_FEATURES_BYPASS_STARTUP": "true"}
	code, out, stderr := runCLI(t, env, "init")
	require.Equal(t, 1, code, "stdout %s stderr %s", out, stderr)
	require.Empty(t, out)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "error is not one line: %q", stderr)
	require.Contains(t, stderr, "startup bypass is set")
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"select count(*) from pg_namespace where nspname = 'indexpilot'").Scan(&n))
	require.Zero(t, n, "init must not touch the metadata schema under the startup bypass")

	// status says so, and reads nothing from the (absent) schema.
	code, out, stderr = runCLI(t, env, "status")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "startup bypass is on")

	code, _, stderr = runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_FEATURES_BYPASS_STARTUP": "false"}, "init")
	require.Equal(t, 0, code, stderr)
}
