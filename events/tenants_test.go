package events_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
)

func tenant(id string, share float64, source string) events.TenantShare {
	return events.TenantShare{Tenant: id, Share: share, Source: source}
}

func TestCombineTenantSharesWeighsEachStatementByItsBenefit(t *testing.T) {
	// Statement A saves 900 ms, all of it tenant 1's; statement B saves
	// 100 ms, split 50/50 between tenants 1 and 2.
	got := events.CombineTenantShares([]events.TenantPart{
		{Weight: 900, Shares: []events.TenantShare{tenant("1", 1, events.TenantSourceAppStats)}},
		{Weight: 100, Shares: []events.TenantShare{tenant("1", 0.5, events.TenantSourcePgStats), tenant("2", 0.5, events.TenantSourcePgStats)}},
	}, events.TenantTop)
	require.Equal(t, []events.TenantShare{
		{Tenant: "1", Share: 0.95, Source: "app_stats+pg_stats"},
		{Tenant: "2", Share: 0.05, Source: "pg_stats"},
	}, got)
}

func TestCombineTenantSharesBuckets(t *testing.T) {
	got := events.CombineTenantShares([]events.TenantPart{
		// Shares that do not sum to 1 are normalized within the part.
		{Weight: 60, Shares: []events.TenantShare{tenant("a", 2, "app_stats"), tenant("b", 1, "app_stats"), tenant("c", 1, "app_stats")}},
		{Weight: 20, Shares: []events.TenantShare{{Bucket: events.TenantOthers, Share: 1, Source: "pg_stats"}}},
		// No per-tenant data: unattributed.
		{Weight: 20},
		// No benefit: left out.
		{Weight: 0, Shares: []events.TenantShare{tenant("z", 1, "app_stats")}},
		{Weight: -5, Shares: []events.TenantShare{tenant("z", 1, "app_stats")}},
	}, 2)
	require.Equal(t, []events.TenantShare{
		{Tenant: "a", Share: 0.3, Source: "app_stats"},
		{Tenant: "b", Share: 0.15, Source: "app_stats"},
		{Bucket: events.TenantOthers, Share: 0.35, Source: "app_stats+pg_stats"},
		{Bucket: events.TenantUnattributed, Share: 0.2, Source: events.TenantSourceNone},
	}, got)
	var sum float64
	for _, s := range got {
		sum += s.Share
	}
	require.InDelta(t, 1, sum, 1e-9)
}

func TestCombineTenantSharesNeedsANamedTenant(t *testing.T) {
	require.Nil(t, events.CombineTenantShares(nil, 5))
	require.Nil(t, events.CombineTenantShares([]events.TenantPart{{Weight: 10}}, 5), "only unattributed")
	require.Nil(t, events.CombineTenantShares([]events.TenantPart{{Weight: 0, Shares: []events.TenantShare{tenant("1", 1, "x")}}}, 5))
}

func TestTenantSummaryAndEstimated(t *testing.T) {
	shares := []events.TenantShare{
		tenant("17", 0.72, "app_stats"), tenant("3", 0.2, "app_stats"),
		{Bucket: events.TenantOthers, Share: 0.05, Source: "app_stats"},
		{Bucket: events.TenantUnattributed, Share: 0.03, Source: events.TenantSourceNone},
	}
	require.Equal(t, "72 % of the saving goes to tenant 17; tenant 3 20 %, other tenants 5 %, unattributed 3 % (from app_stats)",
		events.TenantSummary(shares))
	est := events.EstimatedShares(shares)
	require.Equal(t, "estimated:app_stats", est[0].Source)
	require.Equal(t, "app_stats", shares[0].Source, "the input is not changed")
	require.Equal(t, "estimated:app_stats", events.EstimatedShares(est)[0].Source, "marked once")
	require.Equal(t, "", events.TenantSummary(nil))
}

func TestTenantsAreOptionalInTheCandidate(t *testing.T) {
	var c events.IndexCandidateScored
	require.NoError(t, json.Unmarshal([]byte(`{"target":"main","statements":[{"query_id":"1"}]}`), &c))
	require.Nil(t, c.Tenants)
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.NotContains(t, string(b), "tenants")
}
