package cli

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestTenantSharesInRecommendationsAndReport: the evidence's split by
// tenant is printed by `recommendations --evidence` and `report`, and
// the validated saving is split by each statement's shares, estimated.
func TestTenantSharesInRecommendationsAndReport(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_CONFIG": ""}
	code, _, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)

	spec := events.IndexSpec{Schema: "public", Table: "tickets", Method: "btree", Columns: []string{"note"}}
	recID := events.RecommendationID("main", spec)
	app := events.TenantSourceAppStats
	ev := events.IndexCandidateScored{
		Target: "main", Index: spec, FormulaVersion: "v2", WhatIfMethod: "hypopg",
		Statements: []events.StatementEvidence{
			{QueryID: "42", Query: "SELECT id FROM tickets WHERE tenant_id = $1 AND note = $2", Calls: 900,
				Tenants: []events.TenantShare{{Tenant: "17", Share: 1, Source: app}}},
			{QueryID: "43", Query: "SELECT id FROM tickets WHERE note = $1", Calls: 100,
				Tenants: []events.TenantShare{{Tenant: "3", Share: 1, Source: app}}},
		},
		Tenants: []events.TenantShare{{Tenant: "17", Share: 0.72, Source: app}, {Tenant: "3", Share: 0.28, Source: app}},
	}
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	db.Exec(t,
		`insert into indexpilot.recommendations (id, target, index_key, schema_name, table_name, index_spec, index_name, state,
   reason, candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
 values ('`+recID+`', 'main', '`+spec.Key()+`', 'public', 'tickets', '{"schema":"public","table":"tickets","method":"btree","columns":["note"]}',
   'ip_tickets_note_x', 'applied', 'apply_mode', gen_random_uuid(), gen_random_uuid(), 'v2', 90, 1000, '`+string(b)+`')`,
		// Measured: 42 saved 100 × 9 ms, 43 100 × 1 ms.
		`insert into indexpilot.validations (recommendation_id, target, schema_name, table_name, index_name, index_key, query_ids,
   build_started_at, built_at, state, verdict, reverted, evidence)
 values ('`+recID+`', 'main', 'public', 'tickets', 'ip_tickets_note_x', '`+spec.Key()+`', '{42,43}', now(), now(), 'done',
   'improved', false, '{"change_pct": 80, "statements": [
     {"query_id": "42", "before_calls": 100, "before_mean_ms": 10, "after_calls": 100, "after_mean_ms": 1},
     {"query_id": "43", "before_calls": 100, "before_mean_ms": 5, "after_calls": 100, "after_mean_ms": 4}]}')`,
	)

	code, out, stderr := runCLI(t, env, "recommendations", "--evidence")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "  tenants: 72 % of the saving goes to tenant 17; tenant 3 28 % (from app_stats)\n")

	code, out, stderr = runCLI(t, env, "recommendations", "--json")
	require.Equal(t, 0, code, stderr)
	var recs []Recommendation
	require.NoError(t, json.Unmarshal([]byte(out), &recs))
	require.Equal(t, ev.Tenants, recs[0].Evidence.Tenants)
	require.Equal(t, ev.Statements[1].Tenants, recs[0].Evidence.Statements[1].Tenants)

	code, out, stderr = runCLI(t, env, "report")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "| "+recID[:8]+" | main | `ip_tickets_note_x` | public.tickets | applied | 72 % of the saving goes to tenant 17; tenant 3 28 % (from app_stats) |")
	require.Contains(t, out, "By tenant (measured saving, estimated split): 90 % of the saving goes to tenant 17; tenant 3 10 % (from estimated:app_stats).")

	code, out, stderr = runCLI(t, env, "report", "--json")
	require.Equal(t, 0, code, stderr)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Len(t, r.Tenants, 1)
	require.Equal(t, ev.Tenants, r.Tenants[0].Tenants)
	require.Equal(t, []events.TenantShare{
		{Tenant: "17", Share: 0.9, Source: "estimated:app_stats"},
		{Tenant: "3", Share: 0.1, Source: "estimated:app_stats"},
	}, r.Validations[0].Tenants)
}
