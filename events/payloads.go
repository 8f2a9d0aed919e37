package events

import (
	"strconv"
	"time"
)

// QueryStatObserved is the change of one statement's pg_stat_statements
// counters between two polls of a target (a delta, never a running total).
// The first sight of a statement, a stats reset or an evicted entry coming
// back is a baseline and produces no event.
//
// Id recipe: "querystat", target, query_id, window_end.
type QueryStatObserved struct {
	Target          string    `json:"target"`
	QueryID         string    `json:"query_id"`
	Query           string    `json:"query"`
	WindowStart     time.Time `json:"window_start"`
	WindowEnd       time.Time `json:"window_end"`
	Calls           int64     `json:"calls"`
	TotalExecTimeMs float64   `json:"total_exec_time_ms"`
	MeanExecTimeMs  float64   `json:"mean_exec_time_ms"`
	Rows            int64     `json:"rows"`
	SharedBlksHit   int64     `json:"shared_blks_hit"`
	SharedBlksRead  int64     `json:"shared_blks_read"`
}

func (*QueryStatObserved) EventType() Type { return TypeQueryStatObserved }
func (p *QueryStatObserved) EventID() string {
	return DeterministicID("querystat", p.Target, p.QueryID, stamp(p.WindowEnd))
}
func (p *QueryStatObserved) EventSubject() string { return p.Target }

// TableStatObserved is one table's statistics at one poll: cumulative
// counters as PostgreSQL reports them, plus the indexes on the table.
//
// Id recipe: "tablestat", target, schema, table, observed_at.
type TableStatObserved struct {
	Target           string      `json:"target"`
	Schema           string      `json:"schema"`
	Table            string      `json:"table"`
	ObservedAt       time.Time   `json:"observed_at"`
	TableSizeBytes   int64       `json:"table_size_bytes"`
	TotalSizeBytes   int64       `json:"total_size_bytes"`
	LiveRows         int64       `json:"live_rows"`
	AvgRowWidthBytes int64       `json:"avg_row_width_bytes"`
	SeqScans         int64       `json:"seq_scans"`
	IdxScans         int64       `json:"idx_scans"`
	Inserts          int64       `json:"inserts"`
	Updates          int64       `json:"updates"`
	HotUpdates       int64       `json:"hot_updates"`
	Deletes          int64       `json:"deletes"`
	Indexes          []IndexStat `json:"indexes"`
	// StatsResetAt is when the database's statistics counters were last
	// reset (pg_stat_database.stats_reset): the counters above, and the
	// indexes' scans, count from then. Absent when never reset.
	StatsResetAt *time.Time `json:"stats_reset_at,omitempty"`
	// LastSeqScanAt and LastIdxScanAt are the times of the table's last
	// sequential and index scan (PostgreSQL 16+; absent before, or when
	// none happened since the reset).
	LastSeqScanAt *time.Time `json:"last_seq_scan_at,omitempty"`
	LastIdxScanAt *time.Time `json:"last_idx_scan_at,omitempty"`
}

// IndexStat is one existing index of a table.
type IndexStat struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
	Scans      int64  `json:"scans"`
	SizeBytes  int64  `json:"size_bytes"`
	Valid      bool   `json:"valid"`
	Primary    bool   `json:"primary"`
	Unique     bool   `json:"unique"`
	// TuplesRead is pg_stat_user_indexes.idx_tup_read: index entries
	// returned by scans of this index.
	TuplesRead int64 `json:"tuples_read,omitempty"`
	// TuplesFetched is idx_tup_fetch: live table rows fetched by simple
	// index scans of this index.
	TuplesFetched int64 `json:"tuples_fetched,omitempty"`
	// Constraint is true when the index backs a constraint (primary key,
	// unique or exclusion constraint): dropping it means dropping that.
	Constraint bool `json:"constraint,omitempty"`
	// Exclusion is true for the index of an exclusion constraint.
	Exclusion bool `json:"exclusion,omitempty"`
	// ReplicaIdentity is true when the index is the table's replica
	// identity (logical replication depends on it).
	ReplicaIdentity bool `json:"replica_identity,omitempty"`
	// LastScanAt is the time of the index's last scan (PostgreSQL 16+;
	// absent before, or when never scanned since the reset).
	LastScanAt *time.Time `json:"last_scan_at,omitempty"`
}

func (*TableStatObserved) EventType() Type { return TypeTableStatObserved }
func (p *TableStatObserved) EventID() string {
	return DeterministicID("tablestat", p.Target, p.Schema, p.Table, stamp(p.ObservedAt))
}
func (p *TableStatObserved) EventSubject() string { return p.Target }

// StatementEvidence is what one statement of the workload says about a
// candidate: its weight and its plan cost without and with the index.
type StatementEvidence struct {
	QueryID        string  `json:"query_id"`
	Query          string  `json:"query"`
	Calls          int64   `json:"calls"`
	MeanExecTimeMs float64 `json:"mean_exec_time_ms"`
	CostBefore     float64 `json:"cost_before"`
	CostAfter      float64 `json:"cost_after"`
	ImprovementPct float64 `json:"improvement_pct"`
}

// IndexCandidateScored is an index the scorer proposes, with the evidence
// the planner gave for it.
//
// CandidateID recipe: "candidate", target, index key, formula_version.
// Id recipe: "candidate_scored", candidate_id, window_end.
type IndexCandidateScored struct {
	Target             string              `json:"target"`
	CandidateID        string              `json:"candidate_id"`
	Index              IndexSpec           `json:"index"`
	FormulaVersion     string              `json:"formula_version"`
	WhatIfMethod       string              `json:"what_if_method"`
	WindowEnd          time.Time           `json:"window_end"`
	MaxImprovementPct  float64             `json:"max_improvement_pct"`
	EstimatedSizeBytes int64               `json:"estimated_size_bytes"`
	Statements         []StatementEvidence `json:"statements"`
	// The fields below are optional (formula v2 on): the calls-weighted
	// plan-cost saving over the window, what is charged against it (write
	// overhead and the amortized build cost, same units), the net, the
	// estimated execution time saved per hour, and free-form notes such as
	// the what-if fallback in use.
	BenefitCost        float64  `json:"benefit_cost,omitempty"`
	WriteOverheadCost  float64  `json:"write_overhead_cost,omitempty"`
	BuildCost          float64  `json:"build_cost,omitempty"`
	NetBenefit         float64  `json:"net_benefit,omitempty"`
	TimeSavedMsPerHour float64  `json:"time_saved_ms_per_hour,omitempty"`
	Notes              []string `json:"notes,omitempty"`
}

// CandidateID is the deterministic id of a candidate index definition.
func CandidateID(target string, spec IndexSpec, formulaVersion string) string {
	return DeterministicID("candidate", target, spec.Key(), formulaVersion)
}

func (*IndexCandidateScored) EventType() Type { return TypeIndexCandidateScored }
func (p *IndexCandidateScored) EventID() string {
	return DeterministicID("candidate_scored", p.CandidateID, stamp(p.WindowEnd))
}
func (p *IndexCandidateScored) EventSubject() string { return p.Target }

// Verdict is the gatekeeper's answer to a candidate.
type Verdict string

// Verdicts.
const (
	// VerdictAdvised records the recommendation and builds nothing.
	VerdictAdvised Verdict = "advised"
	// VerdictApproved sends the index to the executor.
	VerdictApproved Verdict = "approved"
	// VerdictRejected drops the candidate for a typed reason.
	VerdictRejected Verdict = "rejected"
	// VerdictDeferred records the recommendation as waiting for a
	// run-time gate (CPU, window, rate limit, bypass); the gatekeeper
	// re-evaluates it later and never drops it.
	VerdictDeferred Verdict = "deferred"
)

// Reason says why a verdict was given. It is a closed set: a consumer may
// switch on it.
type Reason string

// Reasons.
const (
	ReasonAdvisoryMode     Reason = "advisory_mode"
	ReasonApplyMode        Reason = "apply_mode"
	ReasonBelowMinBenefit  Reason = "below_min_benefit"
	ReasonAlreadyApplied   Reason = "already_applied"
	ReasonAlreadyRejected  Reason = "already_rejected"
	ReasonInvalidCandidate Reason = "invalid_candidate"
	ReasonUnknownTarget    Reason = "unknown_target"

	// Gatekeeper rules (issue 5); docs/gatekeeper.md lists them in order.
	ReasonBypassSystem       Reason = "bypass_system"
	ReasonBypassStage        Reason = "bypass_stage"
	ReasonBypassFeature      Reason = "bypass_feature"
	ReasonEmergencyStop      Reason = "emergency_stop"
	ReasonBlocklisted        Reason = "blocklisted"
	ReasonStorageBudget      Reason = "storage_budget_exceeded"
	ReasonMaxIndexesPerTable Reason = "max_indexes_per_table"
	ReasonWriteOverhead      Reason = "write_overhead_exceeded"
	ReasonAwaitingApproval   Reason = "awaiting_approval"
	ReasonOperatorApproved   Reason = "operator_approved"
	ReasonOperatorRejected   Reason = "operator_rejected"
	ReasonOutsideWindow      Reason = "outside_maintenance_window"
	ReasonCPUThrottled       Reason = "cpu_throttled"
	ReasonCPUCooldown        Reason = "cpu_cooldown"
	ReasonCPUUnavailable     Reason = "cpu_unavailable"
	ReasonMinBuildDelay      Reason = "min_build_delay"
	ReasonRateLimitedTarget  Reason = "rate_limited_target"
	ReasonRateLimitedTable   Reason = "rate_limited_table"
	ReasonSuperseded         Reason = "superseded"
)

// RecommendationID is the deterministic id of the recommendation for one
// index definition on one target.
func RecommendationID(target string, spec IndexSpec) string {
	return DeterministicID("recommendation", target, spec.Key())
}

// IndexDecisionMade is the gatekeeper's verdict on one candidate event.
//
// Id recipe: "decision", candidate_event_id, verdict.
type IndexDecisionMade struct {
	Target           string    `json:"target"`
	RecommendationID string    `json:"recommendation_id"`
	CandidateID      string    `json:"candidate_id"`
	CandidateEventID string    `json:"candidate_event_id"`
	Index            IndexSpec `json:"index"`
	Verdict          Verdict   `json:"verdict"`
	Reason           Reason    `json:"reason"`
	Detail           string    `json:"detail,omitempty"`
	QueryIDs         []string  `json:"query_ids"`
	DecidedAt        time.Time `json:"decided_at"`
}

func (*IndexDecisionMade) EventType() Type { return TypeIndexDecisionMade }
func (p *IndexDecisionMade) EventID() string {
	return DeterministicID("decision", p.CandidateEventID, string(p.Verdict))
}
func (p *IndexDecisionMade) EventSubject() string { return p.Target }

// IndexBuildCompleted says that the index exists and is valid on the target,
// either because the executor built it or because it was already there.
//
// Id recipe: "build_completed", recommendation_id, index_name.
type IndexBuildCompleted struct {
	Target           string    `json:"target"`
	RecommendationID string    `json:"recommendation_id"`
	CandidateID      string    `json:"candidate_id"`
	DecisionEventID  string    `json:"decision_event_id"`
	Index            IndexSpec `json:"index"`
	IndexName        string    `json:"index_name"`
	DDL              string    `json:"ddl"`
	AlreadyExisted   bool      `json:"already_existed"`
	DurationMs       float64   `json:"duration_ms"`
	SizeBytes        int64     `json:"size_bytes"`
	CompletedAt      time.Time `json:"completed_at"`
}

func (*IndexBuildCompleted) EventType() Type { return TypeIndexBuildCompleted }
func (p *IndexBuildCompleted) EventID() string {
	return DeterministicID("build_completed", p.RecommendationID, p.IndexName)
}
func (p *IndexBuildCompleted) EventSubject() string { return p.Target }

// IndexBuildFailed says that a build finally did not produce a valid
// index (a permanent error, or the last attempt). The executor drops the
// INVALID leftover before publishing when it can; when even that drop
// could not finish (it waits for the same locks), the leftover is dropped
// by the next build of the same index, never left to be mistaken for a
// built one.
//
// Id recipe: "build_failed", recommendation_id, index_name, attempt.
type IndexBuildFailed struct {
	Target           string    `json:"target"`
	RecommendationID string    `json:"recommendation_id"`
	CandidateID      string    `json:"candidate_id"`
	DecisionEventID  string    `json:"decision_event_id"`
	Index            IndexSpec `json:"index"`
	IndexName        string    `json:"index_name"`
	Error            string    `json:"error"`
	SQLState         string    `json:"sqlstate,omitempty"`
	Permanent        bool      `json:"permanent"`
	Attempt          int       `json:"attempt"`
	FailedAt         time.Time `json:"failed_at"`
}

func (*IndexBuildFailed) EventType() Type { return TypeIndexBuildFailed }
func (p *IndexBuildFailed) EventID() string {
	return DeterministicID("build_failed", p.RecommendationID, p.IndexName, strconv.Itoa(p.Attempt))
}
func (p *IndexBuildFailed) EventSubject() string { return p.Target }
