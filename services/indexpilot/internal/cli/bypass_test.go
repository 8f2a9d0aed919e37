package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestBypassSetShowAndApprove(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL}
	code, _, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)

	for _, args := range [][]string{
		{"bypass"}, {"bypass", "set", "feature", "autoindexing", "disable", "--reason", "x"},
		{"bypass", "set", "feature", "auto_indexing", "disable"}, {"bypass", "set", "system", "maybe", "--reason", "x"},
		{"bypass", "resume", "--reason", "x", "--for", "1m"}, {"reject", "abcd1234"},
	} {
		code, _, stderr := runCLI(t, env, args...)
		require.Equal(t, 2, code, "args %v: %s", args, stderr)
		require.Equal(t, 1, strings.Count(strings.SplitN(stderr, "usage:", 2)[0], "indexpilot:"), stderr)
	}

	code, out, stderr := runCLI(t, env, "bypass", "set", "feature", "auto_indexing", "disable", "--reason", "quarter close")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "feature auto_indexing disabled")
	code, out, stderr = runCLI(t, env, "bypass", "stop", "--reason", "incident 7", "--for", "15m")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "recovers at")
	code, out, _ = runCLI(t, env, "bypass", "show")
	require.Equal(t, 0, code)
	require.Regexp(t, `feature\s+auto_indexing\s+DISABLED\s+runtime \(.+\)\s+\S+\s+-\s+quarter close`, out)
	require.Regexp(t, `emergency\s+-\s+DISABLED\s+runtime .*incident 7`, out)
	require.Regexp(t, `system\s+-\s+enabled`, out)

	// The configuration disables too, and a run-time enable cannot undo it.
	cfgEnv := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_FEATURES_BYPASS_STAGES": "executor"}
	code, out, _ = runCLI(t, cfgEnv, "bypass", "set", "stage", "executor", "enable", "--reason", "try")
	require.Equal(t, 0, code)
	require.Contains(t, out, "stays disabled by the configuration")
	code, out, _ = runCLI(t, cfgEnv, "bypass", "show", "--json")
	require.Equal(t, 0, code)
	var rows []BypassStatus
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	found := false
	for _, r := range rows {
		if r.Level == "stage" && r.Name == "executor" {
			found = true
			require.False(t, r.Enabled)
			require.Equal(t, "config", r.Source)
		}
	}
	require.True(t, found)

	code, _, stderr = runCLI(t, env, "bypass", "resume", "--reason", "resolved")
	require.Equal(t, 0, code, stderr)
	code, out, _ = runCLI(t, env, "bypass", "show")
	require.Equal(t, 0, code)
	require.Regexp(t, `emergency\s+-\s+enabled`, out)
	var n int
	require.NoError(t, db.Pool.QueryRow(t.Context(), `select count(*) from indexpilot.mutation_log where stage = 'bypass'`).Scan(&n))
	require.Equal(t, 4, n, "every change is in mutation_log")

	// A deferred recommendation says why it waits; approve/reject by id.
	db.Exec(t, `insert into indexpilot.recommendations (id, target, index_key, schema_name, table_name, index_spec, index_name,
		state, reason, detail, candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
		values ('9f36b406-9336-5349-b39c-fdef26eb2fd7', 'main', 'public.t|btree|a|', 'public', 't',
		'{"schema":"public","table":"t","method":"btree","columns":["a"]}', 'ip_t_a_12345678', 'deferred', 'cpu_throttled',
		'database CPU at 91%, threshold 75%',
		'487650a2-4ea2-56e3-a2ab-512d3a7cc7c6', '5c05671c-c558-5f2f-9624-a656d19f511d', 'v1', 97.5, 8192,
		'{"target":"main","candidate_id":"487650a2-4ea2-56e3-a2ab-512d3a7cc7c6","index":{"schema":"public","table":"t","method":"btree","columns":["a"]},"formula_version":"v1","what_if_method":"hypopg","window_end":"2026-11-25T12:00:00Z","max_improvement_pct":97.5,"estimated_size_bytes":8192,"statements":[]}')`)
	code, out, _ = runCLI(t, env, "recommendations", "--state", "deferred")
	require.Equal(t, 0, code)
	require.Contains(t, out, "cpu_throttled")
	require.Contains(t, out, "9f36b406  deferred (cpu_throttled): database CPU at 91%, threshold 75%")
	code, _, stderr = runCLI(t, env, "approve", "00000000")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no such recommendation")
	code, out, stderr = runCLI(t, env, "reject", "9f36b406", "--reason", "not now")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "rejected 9f36b406-9336-5349-b39c-fdef26eb2fd7")
	code, _, stderr = runCLI(t, env, "approve", "9f36b406")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "is rejected (operator_rejected)")
}
