package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestReportShowsVerdictsWithNumbersAndRestoreRecreates(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_CONFIG": ""}
	code, _, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)

	code, out, stderr := runCLI(t, env, "report")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "# IndexPilot report")
	require.Contains(t, out, "## Validations\n\nNone.")

	spec := events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"email"}}
	recID := events.RecommendationID("main", spec)
	def := "CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)"
	removalID := events.RemovalID("main", "public", "contacts_email_idx", def)
	db.Exec(t,
		"create table public.contacts (id int primary key, email text)",
		"insert into public.contacts select g, 'u' || g from generate_series(1, 1000) g",
		`insert into indexpilot.recommendations (id, target, index_key, schema_name, table_name, index_spec, index_name, state,
   reason, candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
 values ('`+recID+`', 'main', '`+spec.Key()+`', 'public', 'contacts', '{"schema":"public","table":"contacts","method":"btree","columns":["email"]}',
   'ip_contacts_email_x', 'reverted', 'apply_mode', gen_random_uuid(), gen_random_uuid(), 'v1', 90, 1000, '{}')`,
		`insert into indexpilot.mutation_log (stage, action, outcome, target, schema_name, table_name, index_name, evidence)
 values ('executor', 'build', 'built', 'main', 'public', 'contacts', 'ip_contacts_email_x', '{"duration_ms": 412.5, "size_bytes": 1204224}')`,
		`insert into indexpilot.validations (recommendation_id, target, schema_name, table_name, index_name, index_key, query_ids,
   build_started_at, built_at, state, verdict, reverted, evidence)
 values ('`+recID+`', 'main', 'public', 'contacts', 'ip_contacts_email_x', '`+spec.Key()+`', '{42}', now(), now(), 'done',
   'regressed', true, '{"change_pct": -18.5, "plan_uses_index": true, "reason": "the targeted statements got slower",
   "statements": [{"query_id": "42", "before_calls": 1200, "before_mean_ms": 4.21, "after_calls": 1310, "after_mean_ms": 4.99}]}')`,
		`insert into indexpilot.removals (id, target, schema_name, table_name, index_name, definition, reason, state, dropped_at)
 values ('`+removalID+`', 'main', 'public', 'contacts', 'contacts_email_idx', '`+def+`', 'unused', 'done', now())`,
	)

	code, out, stderr = runCLI(t, env, "report")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"| reverted | 1 |",
		"| built | 412.500 ms | 1.1 MiB |",
		"Verdict: **regressed**, change -18.5 %",
		"reverted: true",
		"| 42 | 1200 | 4.210 ms | 1310 | 4.990 ms | unknown |",
		"| " + removalID[:8] + " | main | `contacts_email_idx` | done | unused | `" + def + "` |",
	} {
		require.Contains(t, out, want)
	}

	code, out, stderr = runCLI(t, env, "report", "--json")
	require.Equal(t, 0, code, stderr)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Len(t, r.Validations, 1)
	require.Equal(t, "regressed", r.Validations[0].Verdict)
	require.InDelta(t, -18.5, r.Validations[0].ChangePct, 1e-9)
	require.Equal(t, int64(1310), r.Validations[0].Statements[0].AfterCalls)
	require.Len(t, r.Removals, 1)

	code, out, stderr = runCLI(t, env, "restore", removalID[:8])
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "restored contacts_email_idx on main: CREATE INDEX CONCURRENTLY contacts_email_idx ON public.contacts USING btree (email)\n", out)
	var n int
	require.NoError(t, db.Pool.QueryRow(t.Context(), `select count(*) from pg_index
 where indexrelid = to_regclass('public.contacts_email_idx') and indisvalid`).Scan(&n))
	require.Equal(t, 1, n)

	db.Exec(t, `insert into indexpilot.builds (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id,
   state, attempts, claimed_by, lease_until, progress)
 values ('`+recID+`', 'main', '{}', 'ip_contacts_email_x', gen_random_uuid(), gen_random_uuid(), 'running', 1, 'host/1/ab',
   now() + interval '1 minute', '{"table": "contacts", "phase": "building index: scanning table", "blocks_done": 25,
   "blocks_total": 100, "tuples_done": 0, "tuples_total": 0, "cpu_pct": 42}')`)
	code, out, stderr = runCLI(t, env, "status")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "builds running:\n  main ip_contacts_email_x (attempt 1, host/1/ab): building index: scanning table on contacts, 25% of blocks, cpu 42%\n")

	code, _, stderr = runCLI(t, env, "restore", removalID)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no dropped index with this removal id")
	require.Equal(t, 1, strings.Count(stderr, "\n"))
	code, _, _ = runCLI(t, env, "restore")
	require.Equal(t, 2, code)
	code, _, _ = runCLI(t, env, "report", "--since", "-1h")
	require.Equal(t, 2, code)
}
