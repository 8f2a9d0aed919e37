package scorer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// HandleAppStat stores one row an application reported (tenant, table,
// field, query type), keyed like its event: a redelivery is a no-op. The
// rows split statements' calls by tenant at the next scoring run; they do
// not make a target due for scoring on their own.
func (s *Scorer) HandleAppStat(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	a, ok := p.(*events.AppStatObserved)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("scorer: unexpected payload %T", p))
	}
	if a.RowID == "" || a.Table == "" {
		return nil, bus.Permanent(fmt.Errorf("appstat %s: no row id or no table", env.ID))
	}
	_, err := s.deps.Control.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.app_stats (target, row_id, recorded_at, tenant_id, table_name, field_name, query_type, duration_ms)
values ($1, $2, $3, $4, $5, $6, $7, $8)
on conflict (target, row_id, recorded_at) do nothing`,
		a.Target, a.RowID, a.RecordedAt, a.TenantID, a.Table, a.Field, a.QueryType, a.DurationMs)
	if err != nil {
		return nil, classify(fmt.Errorf("store appstat %s: %w", env.ID, err))
	}
	return nil, nil
}

// appCalls is the app-fed calls of one (table, field, query type) in the
// scoring window, per tenant ("" for calls not scoped to a tenant).
type appCalls struct {
	table, field, kind string
	tenants            map[string]float64
}

// tenantData is what one scoring run knows about tenants: the app-fed
// calls of the window and, per statement, the tenant column's values
// among its representative values.
type tenantData struct {
	app    []*appCalls
	values map[string]*whatif.TenantValues // by query id
	cache  map[[2]string][]events.TenantShare
}

// loadAppCalls reads the target's app-fed calls in (start, end], and
// deletes the rows older than the window (or the forecast history, when
// longer) before end. Without a control database (advise) there are none.
func (s *Scorer) loadAppCalls(ctx context.Context, target string, start, end time.Time) ([]*appCalls, error) {
	if s.deps.Control == nil || end.IsZero() {
		return nil, nil
	}
	keep := s.deps.Config.Scorer.Window
	if h := s.deps.Config.Scorer.Forecast.History; h > keep {
		keep = h
	}
	if _, err := s.deps.Control.Exec(ctx, `/* indexpilot:scorer */
delete from indexpilot.app_stats where target = $1 and recorded_at < $2`, target, end.Add(-keep)); err != nil {
		return nil, fmt.Errorf("prune app stats of %s: %w", target, err)
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select table_name, coalesce(field_name, ''), lower(query_type), coalesce(tenant_id, ''), count(*)::float8
  from indexpilot.app_stats
 where target = $1 and recorded_at > $2 and recorded_at <= $3
 group by 1, 2, 3, 4
 order by 1, 2, 3, 4`, target, start, end)
	if err != nil {
		return nil, fmt.Errorf("read app stats of %s: %w", target, err)
	}
	defer rows.Close()
	var out []*appCalls
	for rows.Next() {
		var table, field, kind, tenant string
		var n float64
		if err := rows.Scan(&table, &field, &kind, &tenant, &n); err != nil {
			return nil, fmt.Errorf("read app stats of %s: %w", target, err)
		}
		last := len(out) - 1
		if last < 0 || out[last].table != table || out[last].field != field || out[last].kind != kind {
			out = append(out, &appCalls{table: table, field: field, kind: kind, tenants: map[string]float64{}})
			last++
		}
		out[last].tenants[tenant] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read app stats of %s: %w", target, err)
	}
	return out, nil
}

// statementShares is how st's calls split by tenant, for an index on
// table ("schema.table"). App-fed calls first: those reported on that
// table (named bare or schema-qualified), of the statement's kind, on a
// field the statement uses — or, when the application reported none on
// such a field, those reported on the table without a field. Otherwise
// the tenant column's values among the statement's representative
// values. nil when neither says anything.
func (d *tenantData) statementShares(st *statement, table string) []events.TenantShare {
	if d == nil || st == nil || st.parsed == nil {
		return nil
	}
	key := [2]string{st.QueryID, table}
	if got, ok := d.cache[key]; ok {
		return got
	}
	var out []events.TenantShare
	if calls := d.appCallsOf(st, table); len(calls) > 0 {
		out = sharesOf(calls, events.TenantSourceAppStats, 0)
	} else if tv := d.values[st.QueryID]; tv != nil {
		m := map[string]float64{}
		for _, v := range tv.Values {
			m[v.Value] += v.Weight
		}
		out = sharesOf(m, valueSource(tv.Method), tv.Rest)
	}
	if d.cache == nil {
		d.cache = map[[2]string][]events.TenantShare{}
	}
	d.cache[key] = out
	return out
}

// appCallsOf sums the app-fed calls that match st on table, per tenant.
func (d *tenantData) appCallsOf(st *statement, table string) map[string]float64 {
	bare := table
	if i := strings.IndexByte(table, '.'); i >= 0 {
		bare = table[i+1:]
	}
	kind := strings.ToLower(string(st.parsed.Kind))
	byField, byTable := map[string]float64{}, map[string]float64{}
	for _, a := range d.app {
		if (a.table != table && a.table != bare) || a.kind != kind {
			continue
		}
		switch {
		case a.field == "":
			for t, n := range a.tenants {
				byTable[t] += n
			}
		case st.refs == nil || st.refs[table][a.field]:
			for t, n := range a.tenants {
				byField[t] += n
			}
		}
	}
	if len(byField) > 0 {
		return byField
	}
	return byTable
}

// appTenants is, per table st reads, the app-fed calls that match st
// there (appCallsOf: the same calls that split its benefit), for pricing
// its tenant parameter (whatif.MethodApp).
func (d *tenantData) appTenants(st *statement) []whatif.AppTenants {
	if len(d.app) == 0 {
		return nil
	}
	var out []whatif.AppTenants
	seen := map[string]bool{}
	for _, u := range st.parsed.Tables {
		table := u.Table.Schema + "." + u.Table.Name
		if u.Table.Schema == "" || seen[table] {
			continue
		}
		seen[table] = true
		if calls := d.appCallsOf(st, table); len(calls) > 0 {
			out = append(out, whatif.AppTenants{Schema: u.Table.Schema, Table: u.Table.Name, Calls: calls})
		}
	}
	return out
}

// sharesOf turns weights per tenant ("" = not scoped to a tenant), and
// rest, the weight of tenants not listed, into shares: top tenants,
// others, unattributed.
func sharesOf(weights map[string]float64, source string, rest float64) []events.TenantShare {
	var shares []events.TenantShare
	if rest > 0 {
		shares = append(shares, events.TenantShare{Bucket: events.TenantOthers, Share: rest, Source: source})
	}
	for t, w := range weights {
		if t == "" {
			shares = append(shares, events.TenantShare{Bucket: events.TenantUnattributed, Share: w, Source: events.TenantSourceNone})
			continue
		}
		shares = append(shares, events.TenantShare{Tenant: t, Share: w, Source: source})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].Tenant < shares[j].Tenant })
	return events.CombineTenantShares([]events.TenantPart{{Weight: 1, Shares: shares}}, events.TenantTop)
}

// valueSource names a pricing method as a tenant source.
func valueSource(method string) string {
	switch method {
	case whatif.MethodQualstats:
		return events.TenantSourceQualstats
	case whatif.MethodObserved:
		return events.TenantSourceObserved
	}
	return events.TenantSourcePgStats
}

// statementBenefits are the weights of a candidate's statements in its
// benefit: the execution time each saves over the window (calls × mean
// time × improvement), or, when some statement has no mean time,
// calls × plan cost saved for all of them (one unit for the whole list).
func statementBenefits(evs []events.StatementEvidence) []float64 {
	out := make([]float64, len(evs))
	timed := true
	for _, ev := range evs {
		if ev.MeanExecTimeMs <= 0 {
			timed = false
		}
	}
	for i, ev := range evs {
		if timed {
			out[i] = float64(ev.Calls) * ev.MeanExecTimeMs * ev.ImprovementPct / 100
		} else {
			out[i] = float64(ev.Calls) * (ev.CostBefore - ev.CostAfter)
		}
	}
	return out
}

// attributeTenants sets each statement's and the candidate's tenant
// shares.
func (d *tenantData) attributeTenants(c *events.IndexCandidateScored, byID map[string]*statement) {
	table := c.Index.QualifiedTable()
	weights := statementBenefits(c.Statements)
	parts := make([]events.TenantPart, 0, len(c.Statements))
	for i := range c.Statements {
		ev := &c.Statements[i]
		ev.Tenants = d.statementShares(byID[ev.QueryID], table)
		parts = append(parts, events.TenantPart{Weight: weights[i], Shares: ev.Tenants})
	}
	c.Tenants = events.CombineTenantShares(parts, events.TenantTop)
}
