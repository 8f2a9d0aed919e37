package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// TestStatusAndEvidenceNameTheHistoryWindow: a target whose workload began
// with the history pg_stat_statements held shows that window in status,
// and a recommendation's evidence names it per statement.
func TestStatusAndEvidenceNameTheHistoryWindow(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_TARGETS": "main=" + db.URL}
	code, _, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)
	db.Exec(t, `insert into indexpilot.workload_stats (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows, window_source)
		values ('main', '1', '2026-12-07T02:00:00Z', '2026-11-02T01:00:00Z', 'select * from t where a = $1', 60, 600, 60, 'history:stats_reset'),
		       ('main', '2', '2026-12-07T02:00:00Z', '2026-11-01T00:00:00Z', 'select * from t where b = $1', 6, 60, 6, 'history:stats_reset'),
		       ('main', '1', '2026-12-07T02:00:30Z', '2026-12-07T02:00:00Z', 'select * from t where a = $1', 3, 30, 3, '')`)
	code, out, stderr := runCLI(t, env, "status")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "HISTORY")
	require.Contains(t, out, "history since 2026-11-01, 36 days", "the earliest start of the first window's statements")
	// --json: the structs of GET /api/v1/targets, decoded strictly.
	code, out, stderr = runCLI(t, env, "status", "--json")
	require.Equal(t, 0, code, stderr)
	var sts []decisions.TargetStatus
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&sts), out)
	require.Len(t, sts, 1)
	require.Equal(t, "main", sts[0].Target)
	require.Equal(t, int64(2), sts[0].Statements)
	require.Equal(t, "history since 2026-11-01, 36 days", sts[0].History)
	require.Len(t, sts[0].Stages, 4)

	db.Exec(t, `insert into indexpilot.recommendations (id, target, index_key, schema_name, table_name, index_spec, index_name,
		state, reason, candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
		values ('9f36b406-9336-5349-b39c-fdef26eb2fd7', 'main', 'public.t|btree|a|', 'public', 't',
		'{"schema":"public","table":"t","method":"btree","columns":["a"]}', 'ip_t_a_12345678', 'proposed', 'advisory_mode',
		'487650a2-4ea2-56e3-a2ab-512d3a7cc7c6', '5c05671c-c558-5f2f-9624-a656d19f511d', 'v2', 97.5, 8192,
		'{"target":"main","candidate_id":"487650a2-4ea2-56e3-a2ab-512d3a7cc7c6","index":{"schema":"public","table":"t","method":"btree","columns":["a"]},"formula_version":"v2","what_if_method":"hypopg","window_end":"2026-12-07T02:00:30Z","max_improvement_pct":97.5,"estimated_size_bytes":8192,"statements":[{"query_id":"1","query":"select * from t where a = $1","calls":63,"mean_exec_time_ms":10,"cost_before":100,"cost_after":2.5,"improvement_pct":97.5,"window":"history since 2026-11-02, 35 days"}]}')`)
	code, out, stderr = runCLI(t, env, "recommendations", "--evidence")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "window: history since 2026-11-02, 35 days")
}
