package scorer_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/statsclient"
	"github.com/indexpilot/indexpilot/services/scorer"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// tenantSetup adds public.tickets to the scorer's database: 40 000 rows,
// 80 % of them tenant 1's and 20 % tenant 2's, and names tenant_id the
// tenant column.
func tenantSetup(t *testing.T) (*pgtest.Database, stage.Deps) {
	t.Helper()
	db, d := setup(t)
	db.Exec(t,
		`create table public.tickets (id bigint primary key, tenant_id int not null, note text not null)`,
		`insert into public.tickets select g, case when g % 5 = 0 then 2 else 1 end, md5(g::text) from generate_series(1, 40000) g`,
		`analyze public.tickets`,
	)
	p := filepath.Join(t.TempDir(), "schema_config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("tenant_column: tenant_id\n"), 0o600))
	d.Config.Scorer.SchemaConfig = p
	return db, d
}

func candidateOn(t *testing.T, r *scorer.Report, table string, columns ...string) *events.IndexCandidateScored {
	t.Helper()
	for _, c := range r.Chosen {
		if c.Index.Table == table && (columns == nil || slices.Equal(c.Index.Columns, columns)) {
			return c
		}
	}
	t.Fatalf("no chosen candidate on %s %v: %v", table, columns, columnsOf(r))
	return nil
}

func share(shares []events.TenantShare, tenant string) events.TenantShare {
	for _, s := range shares {
		if s.Tenant == tenant || (tenant != "" && s.Bucket == tenant) {
			return s
		}
	}
	return events.TenantShare{}
}

// appCalls is n calls of one kind an application reports at one time.
type appCalls struct {
	n    int
	at   time.Time
	stat statsclient.Stat
}

// recordAppStats writes the calls as the application does, through the
// client library to indexpilot.query_stats (the control database is the
// target here and has the table), and returns the rows as the collector
// publishes them.
func recordAppStats(t *testing.T, db *pgtest.Database, calls ...appCalls) []*events.AppStatObserved {
	t.Helper()
	ctx := context.Background()
	client, err := statsclient.New(db.Pool, statsclient.Options{BatchSize: 500})
	require.NoError(t, err)
	var total int64
	for _, c := range calls {
		for range c.n {
			st := c.stat
			st.At = c.at
			require.True(t, client.Record(ctx, st))
		}
		total += int64(c.n)
	}
	require.NoError(t, client.Close(ctx))
	require.Equal(t, total, client.Counters().Written)
	rows, err := db.Pool.Query(ctx, `select id::text, recorded_at, tenant_id, table_name, field_name, query_type, duration_ms
  from indexpilot.query_stats order by id`)
	require.NoError(t, err)
	var stats []*events.AppStatObserved
	for rows.Next() {
		a := &events.AppStatObserved{Target: "main"}
		require.NoError(t, rows.Scan(&a.RowID, &a.RecordedAt, &a.TenantID, &a.Table, &a.Field, &a.QueryType, &a.DurationMs))
		stats = append(stats, a)
	}
	require.NoError(t, rows.Err())
	return stats
}

// deliverAppStats hands the rows to the scorer's handler.
func deliverAppStats(t *testing.T, s *scorer.Scorer, stats []*events.AppStatObserved) {
	t.Helper()
	for _, a := range stats {
		env, err := events.Wrap(a, "test", "", a.RecordedAt)
		require.NoError(t, err)
		_, err = s.HandleAppStat(context.Background(), env, a)
		require.NoError(t, err)
	}
}

// TestTenantSharesFromAppStats: the application reports 90 % of its
// calls on tickets.note for tenant 1 and 10 % for tenant 2 (while the
// rows are 80/20): the index's benefit splits 90/10, from app_stats.
func TestTenantSharesFromAppStats(t *testing.T) {
	db, d := tenantSetup(t)
	ctx := context.Background()
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id FROM tickets WHERE tenant_id = $1 AND note = $2", 1000, end))

	// Calls on tickets.note (and, as not this statement's, another table,
	// another kind, another field, and calls outside the scoring window).
	at, old := end.Add(-30*time.Second), end.Add(-48*time.Hour)
	stats := recordAppStats(t, db,
		appCalls{900, at, statsclient.Stat{TenantID: "1", Table: "tickets", Field: "note", QueryType: "select", Duration: 3 * time.Millisecond}},
		appCalls{100, at, statsclient.Stat{TenantID: "2", Table: "tickets", Field: "note", QueryType: "select", Duration: 3 * time.Millisecond}},
		appCalls{500, at, statsclient.Stat{TenantID: "3", Table: "orders", Field: "note", QueryType: "select"}},
		appCalls{500, at, statsclient.Stat{TenantID: "3", Table: "tickets", Field: "note", QueryType: "update"}},
		appCalls{500, at, statsclient.Stat{TenantID: "3", Table: "tickets", Field: "id", QueryType: "select"}},
		appCalls{500, old, statsclient.Stat{TenantID: "3", Table: "tickets", Field: "note", QueryType: "select"}},
	)
	for range 2 { // a redelivery stores nothing twice
		deliverAppStats(t, s, stats)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.app_stats").Scan(&n))
	require.Equal(t, 3000, n)

	r, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	c := candidateOn(t, r, "tickets")
	require.Len(t, c.Tenants, 2, "%+v", c.Tenants)
	require.Equal(t, "1", c.Tenants[0].Tenant)
	require.InDelta(t, 0.9, c.Tenants[0].Share, 0.01)
	require.Equal(t, events.TenantSourceAppStats, c.Tenants[0].Source)
	require.Equal(t, "2", c.Tenants[1].Tenant)
	require.InDelta(t, 0.1, c.Tenants[1].Share, 0.01)
	require.Equal(t, c.Tenants, c.Statements[0].Tenants, "one statement: its split is the index's")
	require.Contains(t, events.TenantSummary(c.Tenants), "90 % of the saving goes to tenant 1")

	// The rows older than the window (or the forecast history) are pruned.
	d.Config.Scorer.Forecast.History = time.Hour
	s, err = scorer.New(d)
	require.NoError(t, err)
	_, err = s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.app_stats").Scan(&n))
	require.Equal(t, 2500, n, "the 48-hour-old rows are gone")
}

// TestTenantSharesFromRepresentativeValues: no app stats. The tenant
// column's values among the representative values (pg_stats: 80 % of
// the rows are tenant 1's) split the statement that filters on it; a
// statement that does not is unattributed.
func TestTenantSharesFromRepresentativeValues(t *testing.T) {
	_, d := tenantSetup(t)
	ctx := context.Background()
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id FROM tickets WHERE tenant_id = $1 AND note = $2", 1000, end),
		querystat("2", "SELECT id FROM tickets WHERE note = $1", 1000, end),
	)
	r, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	c := candidateOn(t, r, "tickets", "note")
	require.Len(t, c.Statements, 2, "the index on note serves both")
	for _, ev := range c.Statements {
		switch ev.QueryID {
		case "1":
			require.InDelta(t, 0.8, share(ev.Tenants, "1").Share, 0.02, "%+v", ev.Tenants)
			require.InDelta(t, 0.2, share(ev.Tenants, "2").Share, 0.02, "%+v", ev.Tenants)
			require.Equal(t, events.TenantSourcePgStats, share(ev.Tenants, "1").Source)
		case "2":
			require.Nil(t, ev.Tenants, "no tenant parameter, no app stats")
		}
	}
	weights := map[string]float64{}
	var total float64
	for _, ev := range c.Statements {
		w := float64(ev.Calls) * ev.MeanExecTimeMs * ev.ImprovementPct / 100
		weights[ev.QueryID] = w
		total += w
	}
	one, two, none := share(c.Tenants, "1"), share(c.Tenants, "2"), share(c.Tenants, events.TenantUnattributed)
	require.InDelta(t, 0.8*weights["1"]/total, one.Share, 0.02, "%+v", c.Tenants)
	require.InDelta(t, 0.2*weights["1"]/total, two.Share, 0.02, "%+v", c.Tenants)
	require.InDelta(t, weights["2"]/total, none.Share, 0.001, "%+v", c.Tenants)
	require.Equal(t, events.TenantSourceNone, none.Source)
}

// TestTenantParameterPricedWithTheAppTenants: two tables whose rows and
// calls disagree. On cases, tenant 0 holds 97 % of the rows and tenants
// 1 to 3 1 % each, but the application calls for the small tenants; on
// logs, tenant 0 holds half the rows and 50 small tenants the rest, but
// the application calls for tenant 0. Priced by pg_stats (rows), an
// index on tenant_id helps logs and not cases; priced with the app's
// tenants (custom:app), the index goes where the calls are: on cases,
// and none on logs.
func TestTenantParameterPricedWithTheAppTenants(t *testing.T) {
	db, d := tenantSetup(t)
	ctx := context.Background()
	db.Exec(t,
		`create table public.cases (id bigint primary key, tenant_id int not null, note text not null)`,
		`insert into public.cases select g, case when g % 100 < 97 then 0 else g % 100 - 96 end, md5(g::text)
		   from generate_series(1, 100000) g`,
		`create table public.logs (id bigint primary key, tenant_id int not null, note text not null)`,
		`insert into public.logs select g, case when g % 2 = 0 then 0 else 1 + (g / 2) % 50 end, md5(g::text)
		   from generate_series(1, 100000) g`,
		`analyze public.cases`, `analyze public.logs`)
	d.Config.Scorer.StorageBudgetMB = 1024 // 10 % of this small database is less than an index
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id, note FROM cases WHERE tenant_id = $1", 1000, end),
		querystat("2", "SELECT id, note FROM logs WHERE tenant_id = $1", 1000, end),
	)
	onTenant := func(r *scorer.Report) map[string]*events.IndexCandidateScored {
		out := map[string]*events.IndexCandidateScored{}
		for _, c := range r.Chosen {
			if slices.Equal(c.Index.Columns, []string{"tenant_id"}) {
				out[c.Index.Table] = c
			}
		}
		return out
	}

	byRows, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, map[string]int{whatif.MethodPgStats: 2}, byRows.Pricing)
	chosen := onTenant(byRows)
	require.Contains(t, chosen, "logs", "by rows, half of logs' lookups are for small tenants: %v", columnsOf(byRows))
	require.NotContains(t, chosen, "cases", "by rows, cases' lookups are for tenant 0, which the index does not help")

	at := end.Add(-30 * time.Second)
	deliverAppStats(t, s, recordAppStats(t, db,
		appCalls{500, at, statsclient.Stat{TenantID: "2", Table: "cases", Field: "tenant_id", QueryType: "select"}},
		appCalls{300, at, statsclient.Stat{TenantID: "1", Table: "cases", Field: "tenant_id", QueryType: "select"}},
		appCalls{150, at, statsclient.Stat{TenantID: "3", Table: "cases", Field: "tenant_id", QueryType: "select"}},
		appCalls{50, at, statsclient.Stat{TenantID: "0", Table: "cases", Field: "tenant_id", QueryType: "select"}},
		// Reported on the table without a field, schema-qualified.
		appCalls{950, at, statsclient.Stat{TenantID: "0", Table: "public.logs", QueryType: "select"}},
		appCalls{30, at, statsclient.Stat{TenantID: "7", Table: "public.logs", QueryType: "select"}},
		appCalls{20, at, statsclient.Stat{TenantID: "8", Table: "public.logs", QueryType: "select"}},
	))
	byCalls, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, map[string]int{whatif.MethodApp: 2}, byCalls.Pricing)
	chosen = onTenant(byCalls)
	require.NotContains(t, chosen, "logs", "logs' calls are for tenant 0: %v", columnsOf(byCalls))
	c := chosen["cases"]
	require.NotNil(t, c, "cases' calls are for its small tenants: %v", columnsOf(byCalls))
	require.Len(t, c.Statements, 1)
	require.Equal(t, whatif.MethodApp, c.Statements[0].PricingMethod)
	require.Equal(t, 4, c.Statements[0].ValueSets, "one value set per tenant called")
	require.Greater(t, c.Statements[0].ImprovementPct, 60.0)
	require.Equal(t, "2", c.Tenants[0].Tenant, "%+v", c.Tenants)
	require.InDelta(t, 0.5, c.Tenants[0].Share, 0.01)
	require.Equal(t, events.TenantSourceAppStats, c.Tenants[0].Source)
}
