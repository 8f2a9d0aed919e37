package whatif

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestTenantValuesFromEachSource(t *testing.T) {
	sh, err := AnalyzeStatement("SELECT id FROM tickets WHERE note = $1 AND tenant_id = $2")
	require.NoError(t, err)
	stats := map[string]*colStats{
		// 10 % nulls: the most common values are fractions of the other 90 %.
		"tenant_id": {mcv: []string{"7", "9"}, freqs: []float64{0.45, 0.27}, nullFrac: 0.1},
	}
	lookup := func(_, col string) *colStats { return stats[col] }

	tv := tenantValues(sh, "tenant_id", nil, lookup, nil)
	require.Equal(t, MethodPgStats, tv.Method)
	require.Equal(t, []TenantValue{{"7", 0.5}, {"9", 0.3}}, roundValues(tv.Values))
	require.InDelta(t, 0.2, tv.Rest, 1e-9, "rows of tenants outside the most common values")

	// pg_qualstats' constants come first: executions, not rows.
	quals := map[int][]weighted{2: {{value: "9", weight: 30}, {value: "7", weight: 10}}}
	tv = tenantValues(sh, "tenant_id", quals, lookup, nil)
	require.Equal(t, MethodQualstats, tv.Method)
	require.Equal(t, []TenantValue{{"9", 0.75}, {"7", 0.25}}, tv.Values)
	require.Zero(t, tv.Rest)

	// Observed samples when nothing else knows the column.
	tv = tenantValues(sh, "tenant_id", nil, func(string, string) *colStats { return nil },
		[][]string{{"a", "7"}, {"b", "7"}, {"c", "7"}, {"d", "8"}})
	require.Equal(t, MethodObserved, tv.Method)
	require.Equal(t, []TenantValue{{"7", 0.75}, {"8", 0.25}}, tv.Values)

	require.Nil(t, tenantValues(sh, "tenant_id", nil, func(string, string) *colStats { return nil }, nil), "no source")
	require.Nil(t, tenantValues(sh, "account_id", nil, lookup, nil), "no parameter on the column")
	sh, err = AnalyzeStatement("SELECT id FROM tickets WHERE tenant_id > $1")
	require.NoError(t, err)
	require.Nil(t, tenantValues(sh, "tenant_id", nil, lookup, nil), "a range is not one tenant")
}

func roundValues(vs []TenantValue) []TenantValue {
	out := make([]TenantValue, len(vs))
	for i, v := range vs {
		out[i] = TenantValue{v.Value, float64(int(v.Weight*1e6+0.5)) / 1e6}
	}
	return out
}

// TestTopTenantsKeepsTheMostCalledAndOneForTheRest: at most maxValueSets
// values, the most called first; the others are one value (the tenant
// at the median of their calls) carrying all their calls.
func TestTopTenantsKeepsTheMostCalledAndOneForTheRest(t *testing.T) {
	got := topTenants(map[string]float64{"2": 600, "1": 300, "3": 60, "0": 20, "5": 10, "6": 10, "": 500})
	require.Equal(t, []weighted{{value: "2", weight: 600}, {value: "1", weight: 300}, {value: "3", weight: 60},
		{value: "0", weight: 40, n: 3}}, got, "calls without a tenant are no value")
	require.Equal(t, []weighted{{value: "a", weight: 2}, {value: "b", weight: 2}}, topTenants(map[string]float64{"b": 2, "a": 2}))

	apps := []AppTenants{{Schema: "public", Table: "t", Calls: map[string]float64{"1": 1}},
		{Schema: "other", Table: "u", Calls: map[string]float64{"2": 1}}}
	require.Equal(t, apps[0].Calls, appCallsOn([]string{`"public"."t"`}, apps))
	require.Equal(t, apps[1].Calls, appCallsOn([]string{`"t2"`, `"u"`}, apps), "an unqualified name matches by table")
	require.Nil(t, appCallsOn([]string{`"other"."t"`}, apps), "another schema's t")
	apps = append(apps, AppTenants{Schema: "other", Table: "t", Calls: map[string]float64{"3": 1}})
	require.Nil(t, appCallsOn([]string{`"t"`}, apps), "two tables named t: an unqualified name is ambiguous")
}

// TestTenantParameterPricedWithTheAppTenants: tenant 0 holds 97 % of
// the rows and tenants 1 to 3 1 % each, but the application's calls go
// to the small tenants. pg_stats prices tenant_id = $1 by rows (tenant
// 0 almost always: an index on tenant_id looks useless); the app-fed
// calls price it with the tenants really asked for, weighted by their
// calls, and show the index removing most of the cost.
func TestTenantParameterPricedWithTheAppTenants(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	ctx := context.Background()
	db.Exec(t,
		`create table public.tickets (id int primary key, tenant_id int not null, status text not null, pad text not null)`,
		`insert into public.tickets select g, case when g % 100 < 97 then 0 else g % 100 - 96 end,
		   (array['open','closed','waiting'])[1 + g % 3], md5(g::text) from generate_series(1, 100000) g`,
		`analyze public.tickets`)
	calls := map[string]float64{"2": 600, "1": 300, "3": 60, "0": 20, "5": 10, "6": 10}
	apps := []AppTenants{{Schema: "public", Table: "tickets", Calls: calls}}
	const (
		limited = "select * from tickets where tenant_id = $1 order by id limit $2"
		both    = "select * from tickets where tenant_id = $1 and status = $2"
		other   = "select * from public.tickets t where t.tenant_id in ($1, $2)"
	)
	idx := events.IndexSpec{Schema: "public", Table: "tickets", Method: "btree", Columns: []string{"tenant_id"}}

	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	ps, err := s.Price(ctx, []Statement{
		{Query: limited, TenantColumn: "tenant_id", AppTenants: apps},
		{Query: both, TenantColumn: "tenant_id", AppTenants: apps},
		{Query: other, TenantColumn: "tenant_id", AppTenants: apps},
		// The app's calls are on another table: pg_stats.
		{Query: "select * from tickets where tenant_id = $1 and id > 0", TenantColumn: "tenant_id",
			AppTenants: []AppTenants{{Schema: "public", Table: "orders", Calls: calls}}},
	})
	require.NoError(t, err)

	// The tenant parameter alone decides the sets: the tenants' ids,
	// weighted by their calls (the three least called as one).
	require.Equal(t, MethodApp, ps[0].Method)
	got := map[string]float64{}
	for _, vs := range ps[0].Sets {
		got[*vs.Values[0]] = math.Round(vs.Weight*1000) / 1000
		require.Equal(t, "10", *vs.Values[1], "LIMIT")
	}
	require.Equal(t, map[string]float64{"2": 0.6, "1": 0.3, "3": 0.06, "0": 0.04}, got)

	// With a parameter pg_stats knows, the tenant's still come from the
	// app, and the method is the first source that gave a value.
	require.Equal(t, MethodApp, ps[1].Method)
	var tenants []string
	for _, vs := range ps[1].Sets {
		tenants = append(tenants, *vs.Values[0])
		require.Contains(t, []string{"open", "closed", "waiting"}, *vs.Values[1], "status from pg_stats")
	}
	require.Equal(t, []string{"2", "1", "3", "0"}, tenants)
	require.Equal(t, MethodApp, ps[2].Method, "a qualified, aliased column and IN")
	require.Equal(t, "2", *ps[2].Sets[0].Values[0])
	require.Equal(t, MethodPgStats, ps[3].Method)

	before, after := cost(t, s, both), cost(t, s, both, idx)
	method, n := e.PricingMethod("", both)
	require.Equal(t, MethodApp, method)
	require.Equal(t, len(ps[1].Sets), n)

	byRows := acquire(t, newEngine(t, db.Pool, Options{}))
	ps, err = byRows.Price(ctx, []Statement{{Query: both, TenantColumn: "tenant_id"}})
	require.NoError(t, err)
	require.Equal(t, MethodPgStats, ps[0].Method)
	rBefore, rAfter := cost(t, byRows, both), cost(t, byRows, both, idx)

	appSaving, rowSaving := 1-after/before, 1-rAfter/rBefore
	t.Logf("pg_stats %.1f -> %.1f (%.0f %%), app %.1f -> %.1f (%.0f %%)", rBefore, rAfter, 100*rowSaving, before, after, 100*appSaving)
	require.Less(t, rowSaving, 0.2, "priced by rows, tenant 0 dominates and the index barely helps")
	require.Greater(t, appSaving, 0.6, "priced by the app's calls, the index serves the tenants asked for")
}
