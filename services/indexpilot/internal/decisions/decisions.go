// Package decisions is what an operator reads about IndexPilot's decisions:
// the recommendations with their evidence, the bypass switches and each
// target's status. The CLI's --json output and the dashboard's JSON API
// are these structs, filled by these queries: one schema for both.
package decisions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/bytesize"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Recommendation is one row of `indexpilot recommendations --json` and of
// GET /api/v1/recommendations.
type Recommendation struct {
	ID                 string                      `json:"id"`
	Target             string                      `json:"target"`
	State              string                      `json:"state"`
	Reason             string                      `json:"reason"`
	Detail             string                      `json:"detail,omitempty"`
	IndexName          string                      `json:"index_name"`
	Index              events.IndexSpec            `json:"index"`
	DDL                string                      `json:"ddl"`
	MaxImprovementPct  float64                     `json:"max_improvement_pct"`
	EstimatedSizeBytes int64                       `json:"estimated_size_bytes"`
	FormulaVersion     string                      `json:"formula_version"`
	Evidence           events.IndexCandidateScored `json:"evidence"`
	CreatedAt          time.Time                   `json:"created_at"`
	UpdatedAt          time.Time                   `json:"updated_at"`
	// TraceID is the OpenTelemetry trace of its last candidate, decision,
	// build and validation (docs/monitoring.md); absent for one recorded
	// before tracing kept it.
	TraceID string `json:"trace_id,omitempty"`
	// NextStep is what an operator can do about a recommendation the
	// scorer held back or rejected (NextStep); absent otherwise.
	NextStep string `json:"next_step,omitempty"`
}

// Filter selects recommendations; an empty field matches everything.
type Filter struct {
	State, Target string
	// ID is a full id or a unique prefix of one.
	ID string
}

// ListRecommendations reads recommendations, best first, optionally
// filtered by state and target.
func ListRecommendations(ctx context.Context, q postgres.Querier, state, target string) ([]Recommendation, error) {
	return Recommendations(ctx, q, Filter{State: state, Target: target})
}

// Recommendations reads the recommendations f selects, best first.
func Recommendations(ctx context.Context, q postgres.Querier, f Filter) ([]Recommendation, error) {
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select r.id::text, r.target, r.state, r.reason, coalesce(r.detail, ''), r.index_name, r.index_spec, r.max_improvement_pct,
       r.estimated_size_bytes, r.formula_version, r.evidence, r.created_at, r.updated_at, coalesce(r.trace_parent, '')
  from indexpilot.recommendations r
 where ($1 = '' or r.state = $1) and ($2 = '' or r.target = $2) and ($3 = '' or starts_with(r.id::text, $3))
 order by r.max_improvement_pct desc, r.index_key`, f.State, f.Target, f.ID)
	if err != nil {
		return nil, fmt.Errorf("list recommendations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recommendation, error) {
		var r Recommendation
		var tp string
		err := row.Scan(&r.ID, &r.Target, &r.State, &r.Reason, &r.Detail, &r.IndexName, &r.Index, &r.MaxImprovementPct,
			&r.EstimatedSizeBytes, &r.FormulaVersion, &r.Evidence, &r.CreatedAt, &r.UpdatedAt, &tp)
		if sc := telemetry.ParseTraceParent(tp); sc.IsValid() {
			r.TraceID = sc.TraceID().String()
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list recommendations: %w", err)
	}
	for i := range out {
		out[i].DDL = DDL(out[i])
		out[i].NextStep = NextStep(out[i])
	}
	return out, nil
}

// heldLimits names, per reason the scorer holds a candidate for, the
// setting an operator raises to let a later scoring run choose it.
var heldLimits = map[string]string{
	string(events.ReasonHeldStorageBudget): "raise the storage budget (scorer.storage_budget_mb, or scorer.storage_budget_pct " +
		"of the database with its floor scorer.storage_budget_min_mb)",
	string(events.ReasonMaxIndexesPerTable): "raise scorer.max_indexes_per_table",
	string(events.ReasonMaxNewIndexes):      "raise scorer.max_new_indexes",
}

// NextStep says, in one sentence that the CLI and the dashboard both
// show, what an operator can do about r: for one the scorer held back
// (state held), approve it anyway or raise the limit that held it; for
// one the scorer rejected because its charges outweigh its read saving,
// that nothing is needed (a later run that chooses it reopens it). ""
// for any other state or reason: an operator's own rejection, or a
// gatekeeper rule's, says its own detail.
func NextStep(r Recommendation) string {
	switch {
	case r.State == "held":
		limit, ok := heldLimits[r.Reason]
		if !ok {
			limit = "raise the limit the detail names"
		}
		return fmt.Sprintf("approve it anyway (indexpilot approve %s, or Approve on its dashboard page), or %s for a later scoring run to choose it",
			r.ID[:min(8, len(r.ID))], limit)
	case r.State == "rejected" && r.Reason == r.Evidence.RejectedReason && r.Reason != "":
		return "nothing to do: while its statements stay in the workload the scorer prices it again every run, " +
			"and a run in which its read saving outweighs its charges reopens it"
	}
	return ""
}

// ErrNotFound is returned by Recommendation when no recommendation has the id.
var ErrNotFound = errors.New("no such recommendation")

// ErrAmbiguous is returned by Recommendation when a prefix names several.
var ErrAmbiguous = errors.New("the id prefix names several recommendations")

// GetRecommendation reads the one recommendation whose id is id or starts
// with it.
func GetRecommendation(ctx context.Context, q postgres.Querier, id string) (Recommendation, error) {
	recs, err := Recommendations(ctx, q, Filter{ID: id})
	switch {
	case err != nil:
		return Recommendation{}, err
	case len(recs) == 0:
		return Recommendation{}, ErrNotFound
	case len(recs) > 1:
		return Recommendation{}, ErrAmbiguous
	}
	return recs[0], nil
}

// DDL is the CREATE INDEX statement of r.
func DDL(r Recommendation) string {
	return indexdef.CreateSQL(r.Index, r.IndexName, true)
}

// BypassStatus is one row of `indexpilot bypass show --json` and of
// GET /api/v1/bypass.
type BypassStatus struct {
	Level     string     `json:"level"`
	Name      string     `json:"name,omitempty"`
	Enabled   bool       `json:"enabled"`
	Source    string     `json:"source,omitempty"`
	Actor     string     `json:"actor,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// BypassStatuses is the effective status of every switch at now: for each,
// the switch that disables it (config first), or enabled.
func BypassStatuses(cfg config.Config, runtime []bypass.Switch, now time.Time) []BypassStatus {
	st := bypass.NewState(cfg.Features.Bypass, func() time.Time { return now })
	st.Apply(runtime...)
	snap := st.Snapshot()
	eff := snap.Effective(now)
	var out []BypassStatus
	row := func(l bypass.Level, name string) {
		s := BypassStatus{Level: string(l), Name: name, Enabled: true}
		for _, sw := range eff {
			if sw.Level == l && sw.Name == name {
				since := sw.ChangedAt
				s = BypassStatus{Level: string(l), Name: name, Source: sw.Source, Actor: sw.Actor, Since: &since,
					ExpiresAt: sw.ExpiresAt, Reason: sw.Reason}
				break
			}
		}
		out = append(out, s)
	}
	row(bypass.LevelSystem, "")
	row(bypass.LevelEmergency, "")
	row(bypass.LevelStartup, "")
	for _, s := range config.BypassStages {
		row(bypass.LevelStage, s)
	}
	for _, f := range config.BypassFeatures {
		row(bypass.LevelFeature, f)
	}
	return out
}

// LoadBypass reads the run-time switches and returns every switch's
// effective status now.
func LoadBypass(ctx context.Context, q postgres.Querier, cfg config.Config, now time.Time) ([]BypassStatus, error) {
	rt, err := bypass.LoadRuntime(ctx, q)
	if err != nil {
		return nil, err
	}
	return BypassStatuses(cfg, rt, now), nil
}

// CheckSchema fails with a one-line hint when the control database has no
// indexpilot schema yet.
func CheckSchema(ctx context.Context, q postgres.Querier) error {
	if _, err := q.Exec(ctx, `/* indexpilot:cli */ select from indexpilot.recommendations limit 0`); err != nil {
		if postgres.SQLState(err) == "42P01" || postgres.SQLState(err) == "3F000" {
			return errors.New("control database: no indexpilot schema: run indexpilot init first")
		}
		return fmt.Errorf("control database: %w", err)
	}
	return nil
}

// EstimatedSize renders a recommendation's estimated size as
// bytesize.Human does, or "-" when the scorer did not estimate one: it
// sizes only the candidates it chooses or holds, not those it rejects for
// their charges.
func EstimatedSize(n int64) string {
	if n <= 0 {
		return "-"
	}
	return bytesize.Human(n)
}
