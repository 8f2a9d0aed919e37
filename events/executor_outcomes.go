package events

import "time"

// Validation verdicts.
const (
	// VerdictImproved: the targeted statements got faster by at least the
	// configured percentage and the plan uses the index.
	VerdictImproved = "improved"
	// VerdictNoChange: neither improved nor regressed (this includes
	// targeted statements that stopped running).
	VerdictNoChange = "no_change"
	// VerdictRegressed: the targeted statements got slower by at least the
	// configured percentage.
	VerdictRegressed = "regressed"
)

// ValidatedStatement is one targeted statement's mean execution time
// before and after a build, from pg_stat_statements deltas.
type ValidatedStatement struct {
	QueryID      string  `json:"query_id"`
	BeforeCalls  int64   `json:"before_calls"`
	BeforeMeanMs float64 `json:"before_mean_ms"`
	AfterCalls   int64   `json:"after_calls"`
	AfterMeanMs  float64 `json:"after_mean_ms"`
	// PlanUsesIndex is whether the statement's generic plan uses the index
	// now; absent when it could not be planned.
	PlanUsesIndex *bool `json:"plan_uses_index,omitempty"`
}

// IndexValidationCompleted is the executor's before/after verdict on an
// index it built, and whether it reverted it (dropped it concurrently,
// set the recommendation to reverted and blocklisted the pairs).
//
// Id recipe: "validation_completed", recommendation_id, index_name, built_at.
type IndexValidationCompleted struct {
	Target           string               `json:"target"`
	RecommendationID string               `json:"recommendation_id"`
	Index            IndexSpec            `json:"index"`
	IndexName        string               `json:"index_name"`
	BuiltAt          time.Time            `json:"built_at"`
	Verdict          string               `json:"verdict"`
	ChangePct        float64              `json:"change_pct"`
	PlanUsesIndex    *bool                `json:"plan_uses_index,omitempty"`
	Reverted         bool                 `json:"reverted"`
	Statements       []ValidatedStatement `json:"statements"`
	ValidatedAt      time.Time            `json:"validated_at"`
}

func (*IndexValidationCompleted) EventType() Type { return TypeIndexValidationCompleted }
func (p *IndexValidationCompleted) EventID() string {
	return DeterministicID("validation_completed", p.RecommendationID, p.IndexName, stamp(p.BuiltAt))
}
func (p *IndexValidationCompleted) EventSubject() string { return p.Target }

// IndexRemovalCompleted says that the executor dropped an approved removal
// with DROP INDEX CONCURRENTLY. Definition is the full pg_get_indexdef it
// had, which `indexpilot restore <removal_id>` recreates.
//
// Id recipe: "removal_completed", removal_id.
type IndexRemovalCompleted struct {
	Target     string    `json:"target"`
	RemovalID  string    `json:"removal_id"`
	Schema     string    `json:"schema"`
	Table      string    `json:"table"`
	IndexName  string    `json:"index_name"`
	Definition string    `json:"definition"`
	DDL        string    `json:"ddl"`
	DroppedAt  time.Time `json:"dropped_at"`
}

func (*IndexRemovalCompleted) EventType() Type { return TypeIndexRemovalCompleted }
func (p *IndexRemovalCompleted) EventID() string {
	return DeterministicID("removal_completed", p.RemovalID)
}
func (p *IndexRemovalCompleted) EventSubject() string { return p.Target }
