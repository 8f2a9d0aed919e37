package decisions

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
)

func TestValidationTenants(t *testing.T) {
	rec := events.IndexCandidateScored{
		Statements: []events.StatementEvidence{
			{QueryID: "1", Tenants: []events.TenantShare{{Tenant: "a", Share: 0.5, Source: "pg_stats"}, {Tenant: "b", Share: 0.5, Source: "pg_stats"}}},
			{QueryID: "2"},
		},
		Tenants: []events.TenantShare{{Tenant: "a", Share: 0.6, Source: "pg_stats"}, {Tenant: "b", Share: 0.4, Source: "pg_stats"}},
	}
	// Statement 1 saved 300 ms, statement 2 (no split) 100 ms, statement 3
	// (not in the evidence) got slower: left out.
	got := ValidationTenants([]events.ValidatedStatement{
		{QueryID: "1", AfterCalls: 100, BeforeMeanMs: 4, AfterMeanMs: 1},
		{QueryID: "2", AfterCalls: 50, BeforeMeanMs: 3, AfterMeanMs: 1},
		{QueryID: "3", AfterCalls: 50, BeforeMeanMs: 1, AfterMeanMs: 3},
	}, rec)
	require.Equal(t, []events.TenantShare{
		{Tenant: "a", Share: 0.375, Source: "estimated:pg_stats"},
		{Tenant: "b", Share: 0.375, Source: "estimated:pg_stats"},
		{Bucket: events.TenantUnattributed, Share: 0.25, Source: events.TenantSourceNone},
	}, got)

	require.Equal(t, events.EstimatedShares(rec.Tenants), ValidationTenants(nil, rec), "no per-statement numbers: the recommendation's split")
	require.Nil(t, ValidationTenants([]events.ValidatedStatement{{QueryID: "1", AfterCalls: 10, BeforeMeanMs: 1, AfterMeanMs: 2}}, rec),
		"nothing saved, nothing to split")
	require.Nil(t, ValidationTenants(nil, events.IndexCandidateScored{}), "no split in the evidence")
}
