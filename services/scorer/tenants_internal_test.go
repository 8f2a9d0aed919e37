package scorer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

func TestStatementBenefits(t *testing.T) {
	evs := []events.StatementEvidence{
		{Calls: 100, MeanExecTimeMs: 2, ImprovementPct: 50, CostBefore: 10, CostAfter: 1},
		{Calls: 10, MeanExecTimeMs: 30, ImprovementPct: 100, CostBefore: 10, CostAfter: 1},
	}
	require.Equal(t, []float64{100, 300}, statementBenefits(evs), "ms saved over the window")
	evs[1].MeanExecTimeMs = 0
	require.Equal(t, []float64{900, 90}, statementBenefits(evs), "without a time for every statement: plan cost saved for all")
}

func TestStatementSharesPreferAppStatsOnTheStatementsField(t *testing.T) {
	st := &statement{QueryID: "1", parsed: &sqlparse.Statement{Kind: sqlparse.KindSelect},
		refs: map[string]map[string]bool{"public.t": {"tenant_id": true, "email": true}}}
	d := &tenantData{
		app: []*appCalls{
			{table: "t", field: "email", kind: "select", tenants: map[string]float64{"a": 60, "b": 20, "": 20}},
			{table: "public.t", field: "email", kind: "select", tenants: map[string]float64{"b": 100}},
			{table: "t", field: "", kind: "select", tenants: map[string]float64{"z": 1000}},
			{table: "t", field: "other", kind: "select", tenants: map[string]float64{"z": 1000}},
			{table: "t", field: "email", kind: "update", tenants: map[string]float64{"z": 1000}},
		},
		values: map[string]*whatif.TenantValues{"1": {Method: whatif.MethodPgStats, Values: []whatif.TenantValue{{Value: "q", Weight: 1}}}},
	}
	require.Equal(t, []events.TenantShare{
		{Tenant: "b", Share: 0.6, Source: "app_stats"},
		{Tenant: "a", Share: 0.3, Source: "app_stats"},
		{Bucket: events.TenantUnattributed, Share: 0.1, Source: "none"},
	}, d.statementShares(st, "public.t"))

	// No field-level report: the table-level ones.
	d.app = d.app[2:]
	d.cache = nil
	require.Equal(t, []events.TenantShare{{Tenant: "z", Share: 1, Source: "app_stats"}}, d.statementShares(st, "public.t"))

	// No app stats at all: the representative values, the rest of the
	// rows as other tenants.
	d.app, d.cache = nil, nil
	d.values["1"] = &whatif.TenantValues{Method: whatif.MethodPgStats, Values: []whatif.TenantValue{{Value: "q", Weight: 0.6}, {Value: "r", Weight: 0.3}}, Rest: 0.1}
	require.Equal(t, []events.TenantShare{
		{Tenant: "q", Share: 0.6, Source: "pg_stats"},
		{Tenant: "r", Share: 0.3, Source: "pg_stats"},
		{Bucket: events.TenantOthers, Share: 0.1, Source: "pg_stats"},
	}, d.statementShares(st, "public.t"))
	require.Nil(t, d.statementShares(&statement{QueryID: "2", parsed: st.parsed}, "public.t"), "nothing known")
}
