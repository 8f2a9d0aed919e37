package decisions

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Report is `indexpilot report --json` and GET /api/v1/report: what was recommended, built,
// validated (with before/after numbers), reverted and removed.
type Report struct {
	GeneratedAt     time.Time        `json:"generated_at"`
	Target          string           `json:"target,omitempty"`
	Recommendations map[string]int64 `json:"recommendations"`
	Builds          []ReportBuild    `json:"builds"`
	Validations     []ReportVerdict  `json:"validations"`
	Removals        []ReportRemoval  `json:"removals"`
	// Tenants is each recommendation's split of its benefit by tenant
	// (those whose evidence has one; rejected and superseded ones left out).
	Tenants []ReportTenants `json:"tenants,omitempty"`
}

// ReportTenants is one recommendation's benefit by tenant.
type ReportTenants struct {
	Target           string               `json:"target"`
	RecommendationID string               `json:"recommendation_id"`
	IndexName        string               `json:"index_name"`
	Table            string               `json:"table"`
	State            string               `json:"state"`
	Tenants          []events.TenantShare `json:"tenants"`
}

// ReportBuild is one build outcome from mutation_log.
type ReportBuild struct {
	At         time.Time `json:"at"`
	Target     string    `json:"target"`
	IndexName  string    `json:"index_name"`
	Table      string    `json:"table"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	DurationMs float64   `json:"duration_ms,omitempty"`
	SizeBytes  int64     `json:"size_bytes,omitempty"`
	SQLState   string    `json:"sqlstate,omitempty"`
}

// ReportVerdict is one validation with its numbers.
type ReportVerdict struct {
	Target           string                      `json:"target"`
	RecommendationID string                      `json:"recommendation_id"`
	IndexName        string                      `json:"index_name"`
	Table            string                      `json:"table"`
	State            string                      `json:"state"`
	Verdict          string                      `json:"verdict,omitempty"`
	ChangePct        float64                     `json:"change_pct"`
	PlanUsesIndex    *bool                       `json:"plan_uses_index,omitempty"`
	Reverted         bool                        `json:"reverted"`
	Reason           string                      `json:"reason,omitempty"`
	BuiltAt          time.Time                   `json:"built_at"`
	Statements       []events.ValidatedStatement `json:"statements"`
	// Tenants splits the measured saving by tenant (ValidationTenants);
	// the sources are prefixed "estimated:".
	Tenants []events.TenantShare `json:"tenants,omitempty"`
}

// ReportRemoval is one approved removal.
type ReportRemoval struct {
	ID         string     `json:"id"`
	Target     string     `json:"target"`
	IndexName  string     `json:"index_name"`
	Table      string     `json:"table,omitempty"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	Definition string     `json:"definition,omitempty"`
	DroppedAt  *time.Time `json:"dropped_at,omitempty"`
	RestoredAt *time.Time `json:"restored_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// BuildReport reads the report from the control database; target "" means
// every target, since the zero time means everything.
func BuildReport(ctx context.Context, q postgres.Querier, target string, since time.Time) (Report, error) {
	r := Report{GeneratedAt: time.Now().UTC(), Target: target, Recommendations: map[string]int64{},
		Builds: []ReportBuild{}, Validations: []ReportVerdict{}, Removals: []ReportRemoval{}}
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select state, count(*) from indexpilot.recommendations where ($1 = '' or target = $1) group by state`, target)
	if err != nil {
		return r, fmt.Errorf("read recommendations: %w", err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return r, fmt.Errorf("read recommendations: %w", err)
		}
		r.Recommendations[s] = n
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("read recommendations: %w", err)
	}

	if r.Builds, err = reportBuilds(ctx, q, target, since, ""); err != nil {
		return r, err
	}
	if r.Validations, err = reportValidations(ctx, q, target, since, ""); err != nil {
		return r, err
	}

	rows, err = q.Query(ctx, `/* indexpilot:cli */
select id::text, target, index_name, coalesce(schema_name || '.' || table_name, ''), state, reason,
       coalesce(definition, ''), dropped_at, restored_at, coalesce(last_error, '')
  from indexpilot.removals
 where ($1 = '' or target = $1) and updated_at >= $2
 order by created_at, id`, target, since)
	if err != nil {
		return r, fmt.Errorf("read removals: %w", err)
	}
	r.Removals, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportRemoval, error) {
		var x ReportRemoval
		err := row.Scan(&x.ID, &x.Target, &x.IndexName, &x.Table, &x.State, &x.Reason, &x.Definition, &x.DroppedAt,
			&x.RestoredAt, &x.LastError)
		return x, err
	})
	if err != nil {
		return r, fmt.Errorf("read removals: %w", err)
	}

	rows, err = q.Query(ctx, `/* indexpilot:cli */
select target, id::text, index_name, schema_name || '.' || table_name, state, evidence->'tenants'
  from indexpilot.recommendations
 where ($1 = '' or target = $1) and updated_at >= $2 and state not in ('rejected', 'superseded')
   and jsonb_typeof(evidence->'tenants') = 'array'
 order by max_improvement_pct desc, index_key`, target, since)
	if err != nil {
		return r, fmt.Errorf("read tenant shares: %w", err)
	}
	r.Tenants, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportTenants, error) {
		var x ReportTenants
		err := row.Scan(&x.Target, &x.RecommendationID, &x.IndexName, &x.Table, &x.State, &x.Tenants)
		return x, err
	})
	if err != nil {
		return r, fmt.Errorf("read tenant shares: %w", err)
	}
	return r, nil
}

// ValidationTenants splits a validated index's measured saving by tenant:
// each statement's saving (calls after × (mean before − mean after), the
// statements that got faster) is split by that statement's tenant shares
// in the recommendation's evidence — the split was not measured, so the
// sources are marked estimated. Without per-statement numbers, the
// recommendation's own split, estimated. nil when nothing was saved or
// the evidence has no split.
func ValidationTenants(stmts []events.ValidatedStatement, rec events.IndexCandidateScored) []events.TenantShare {
	if len(rec.Tenants) == 0 {
		return nil
	}
	if len(stmts) == 0 {
		return events.EstimatedShares(rec.Tenants)
	}
	byID := make(map[string][]events.TenantShare, len(rec.Statements))
	for _, s := range rec.Statements {
		byID[s.QueryID] = s.Tenants
	}
	parts := make([]events.TenantPart, 0, len(stmts))
	for _, s := range stmts {
		parts = append(parts, events.TenantPart{Weight: float64(s.AfterCalls) * (s.BeforeMeanMs - s.AfterMeanMs), Shares: byID[s.QueryID]})
	}
	shares := events.CombineTenantShares(parts, events.TenantTop)
	if shares == nil {
		return nil
	}
	return events.EstimatedShares(shares)
}

// reportBuilds reads the build outcomes of mutation_log (archive included),
// oldest first: of target ("" every one) since then, of recommendation recID
// only when it is set.
func reportBuilds(ctx context.Context, q postgres.Querier, target string, since time.Time, recID string) ([]ReportBuild, error) {
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select occurred_at, coalesce(target, ''), coalesce(index_name, ''), coalesce(schema_name || '.' || table_name, ''), outcome,
       coalesce(reason, ''), coalesce((evidence->>'duration_ms')::float8, 0), coalesce((evidence->>'size_bytes')::bigint, 0),
       coalesce(evidence->>'sqlstate', '')
  from indexpilot.mutation_log_all
 where stage = 'executor' and action = 'build' and ($1 = '' or target = $1) and occurred_at >= $2
   and ($3 = '' or recommendation_id::text = $3)
 order by id`, target, since, recID)
	if err != nil {
		return nil, fmt.Errorf("read builds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportBuild, error) {
		var b ReportBuild
		err := row.Scan(&b.At, &b.Target, &b.IndexName, &b.Table, &b.Outcome, &b.Reason, &b.DurationMs, &b.SizeBytes, &b.SQLState)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("read builds: %w", err)
	}
	return out, nil
}

// reportValidations reads the validations of target ("" every one) updated
// since then, of recommendation recID only when it is set.
func reportValidations(ctx context.Context, q postgres.Querier, target string, since time.Time, recID string) ([]ReportVerdict, error) {
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select v.target, v.recommendation_id::text, v.index_name, v.schema_name || '.' || v.table_name, v.state, coalesce(v.verdict, ''),
       v.reverted, v.built_at, v.evidence, r.evidence
  from indexpilot.validations v
  left join indexpilot.recommendations r on r.id = v.recommendation_id
 where ($1 = '' or v.target = $1) and v.updated_at >= $2 and ($3 = '' or v.recommendation_id::text = $3)
 order by v.built_at, v.index_name`, target, since, recID)
	if err != nil {
		return nil, fmt.Errorf("read validations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportVerdict, error) {
		var v ReportVerdict
		var ev struct {
			ChangePct     float64                     `json:"change_pct"`
			PlanUsesIndex *bool                       `json:"plan_uses_index"`
			Reason        string                      `json:"reason"`
			Statements    []events.ValidatedStatement `json:"statements"`
		}
		var rec *events.IndexCandidateScored
		if err := row.Scan(&v.Target, &v.RecommendationID, &v.IndexName, &v.Table, &v.State, &v.Verdict, &v.Reverted,
			&v.BuiltAt, &ev, &rec); err != nil {
			return v, err
		}
		v.ChangePct, v.PlanUsesIndex, v.Reason, v.Statements = ev.ChangePct, ev.PlanUsesIndex, ev.Reason, ev.Statements
		if v.Statements == nil {
			v.Statements = []events.ValidatedStatement{}
		}
		if v.State == "done" && rec != nil {
			v.Tenants = ValidationTenants(v.Statements, *rec)
		}
		return v, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read validations: %w", err)
	}
	return out, nil
}
