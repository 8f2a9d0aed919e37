package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// QueryStatObserved is the change of one statement's pg_stat_statements
// counters over a window of a target (a delta, never a running total).
//
// WindowSource says what the window is (see the Window* constants): a
// delta between two polls (""), the history pg_stat_statements already
// held at the collector's first poll of the target ("history:..."), or a
// statement sampled running in pg_stat_activity ("activity"). A stats
// reset or an evicted entry coming back is a baseline and produces no
// event; a statement first seen after the first poll counts in full.
//
// A history window is cumulative: a later history window of the same
// statement with a start at or before this one's (a collector restart)
// covers it and every delta inside it, and replaces them in the scorer.
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
	// WindowSource is "" for a delta between polls, or one of
	// WindowHistoryStatsSince, WindowHistoryStatsReset,
	// WindowHistoryUnknown (WindowStart then equals WindowEnd: the start
	// is not known) and WindowActivity.
	WindowSource string `json:"window_source,omitempty"`
	// Unfinished marks an observation from pg_stat_activity of a statement
	// still running, cancelled or timed out: TotalExecTimeMs is a lower
	// bound of its cost.
	Unfinished bool `json:"unfinished,omitempty"`
	// ParamSamples are representative parameter values, as text, one
	// inner slice per observed execution, in the $1..$n order of Query
	// (taken from a literal text seen in pg_stat_activity). They are bound
	// as parameters, never spliced into SQL text.
	ParamSamples [][]string `json:"param_samples,omitempty"`
}

// Window sources of QueryStatObserved.
const (
	// WindowDelta is a delta between two polls.
	WindowDelta = ""
	// WindowHistoryStatsSince: the history held at the first poll, since
	// the statement's stats_since (PostgreSQL 17+).
	WindowHistoryStatsSince = "history:stats_since"
	// WindowHistoryStatsReset: the history held at the first poll, since
	// pg_stat_statements_info.stats_reset (PostgreSQL 14+).
	WindowHistoryStatsReset = "history:stats_reset"
	// WindowHistoryUnknown: the history held at the first poll, since an
	// unknown time; it weighs by calls and total time alone.
	WindowHistoryUnknown = "history:unknown"
	// WindowActivity: a statement sampled running in pg_stat_activity.
	WindowActivity = "activity"
)

// IsHistory reports whether a window source is a first window built from
// pg_stat_statements' history.
func IsHistory(source string) bool { return strings.HasPrefix(source, "history:") }

// DescribeWindow names a window in words for evidence and status:
// "history since 2026-11-02, 35 days", "history, window unknown", "running
// (pg_stat_activity)", or "" for a delta between polls.
func DescribeWindow(source string, start, end time.Time) string {
	switch {
	case source == WindowHistoryUnknown:
		return "history, window unknown"
	case IsHistory(source):
		return "history since " + start.UTC().Format("2006-01-02") + ", " + span(end.Sub(start))
	case source == WindowActivity:
		return "running (pg_stat_activity)"
	}
	return ""
}

// span is a duration in the largest whole unit: days, hours or minutes.
func span(d time.Duration) string {
	unit, n := "minute", int64(d/time.Minute)
	switch {
	case d >= 24*time.Hour:
		unit, n = "day", int64(d/(24*time.Hour))
	case d >= time.Hour:
		unit, n = "hour", int64(d/time.Hour)
	}
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
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
	// NewPageUpdates is pg_stat_user_tables.n_tup_newpage_upd (PostgreSQL
	// 16+): updates whose new row version went to another heap page, for
	// lack of room on its own. Such an update is never HOT, whatever the
	// indexes. Cumulative like Updates, and counted among them. Absent
	// before 16, where the server does not count it (absent is "unknown",
	// never 0).
	NewPageUpdates *int64 `json:"newpage_updates,omitempty"`
	// ServerXactNext is the server's next transaction id
	// (pg_snapshot_xmax(pg_current_snapshot())), read in the same
	// statement as the table counters above. It is server-wide, not per
	// table or database: only a transaction that writes is given an id, so
	// its increase between two polls counts the write transactions of
	// every database of the server (and their aborted ones). The same at
	// every table of one poll. Absent from collectors before the field
	// (unknown).
	ServerXactNext *int64 `json:"server_xact_next,omitempty"`
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
	// PricingMethod says how the statement's costs were obtained:
	// "custom:qualstats", "custom:app", "custom:pg_stats", "custom:observed" (the
	// weighted mean of custom plans over ValueSets representative value
	// sets from that source) or "generic" (the generic plan).
	PricingMethod string `json:"pricing_method,omitempty"`
	ValueSets     int    `json:"value_sets,omitempty"`
	// Window names the statement's workload window when it is not only
	// deltas between polls (DescribeWindow): "history since 2026-11-02,
	// 35 days", "history, window unknown", "running (pg_stat_activity)".
	Window string `json:"window,omitempty"`
	// Tenants is how the statement's calls split by tenant (top
	// TenantTop, then "others" and "unattributed" buckets), from the
	// app-fed statistics or the tenant column's representative values;
	// absent when neither says (docs/scorer.md, "Tenant-attributed
	// benefit").
	Tenants []TenantShare `json:"tenants,omitempty"`
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
	// The write model (formula v2): the estimated WAL bytes the index adds
	// per write transaction of the workload — the write side of the Pareto
	// view whose read side is BenefitCost — and the updates per window
	// that are HOT today and would not be with the index.
	WALBytesPerWriteTxn float64 `json:"wal_bytes_per_write_txn"`
	HotUpdatesLost      float64 `json:"hot_updates_lost,omitempty"`
	// WALImageBytesPerWriteTxn is the part of WALBytesPerWriteTxn that is
	// full-page images: the first change to a leaf after a checkpoint logs
	// the whole page (docs/scorer.md, "Full-page images").
	WALImageBytesPerWriteTxn float64 `json:"wal_image_bytes_per_write_txn,omitempty"`
	// WALBasis says what WALBytesPerWriteTxn divides by: WALPerWriteTxn
	// when the server's transaction counter gave the window's write
	// transactions, WALPerWriteStatement when it did not (the calls of the
	// write statements, several to a transaction). Absent from scorers
	// before the field (per write statement) and under formula v1.
	WALBasis string `json:"wal_basis,omitempty"`
	// HeldReason is set when the candidate pays for itself but a budget or
	// a cap held it back ("storage_budget", "max_indexes_per_table",
	// "max_new_indexes"); HeldDetail gives the numbers. The gatekeeper
	// records it in state held, where an operator can approve it anyway.
	HeldReason string `json:"held_reason,omitempty"`
	HeldDetail string `json:"held_detail,omitempty"`
	// UpdatedColumns are the columns of the index's table that the
	// workload's UPDATEs set in the window, sorted: a partial index whose
	// predicate column is among them is superseded by a full index on the
	// same keys (indexdef.Supersedes).
	UpdatedColumns []string `json:"updated_columns,omitempty"`
	// RejectedReason is set when the scorer priced the candidate and its
	// charges outweigh its read saving (ReasonWriteOverhead);
	// RejectedDetail says so in a sentence with the numbers. The
	// gatekeeper records it as a rejected recommendation, so the Pareto
	// view lists it next to the chosen ones.
	RejectedReason string `json:"rejected_reason,omitempty"`
	RejectedDetail string `json:"rejected_detail,omitempty"`
	// Forecast is set when every statement the candidate serves has a
	// recurring peak (predictive indexing): the index is wanted for the
	// next peak, and the gatekeeper holds its build until BuildFrom.
	Forecast *Forecast `json:"forecast,omitempty"`
	// Tenants is each tenant's share of the index's benefit: each
	// statement's benefit (calls × mean time × improvement) split by its
	// Tenants, summed. Absent when no statement has per-tenant data.
	Tenants []TenantShare `json:"tenants,omitempty"`
}

// Bases of IndexCandidateScored.WALBytesPerWriteTxn.
const (
	// WALPerWriteTxn: divided by the window's write transactions, the
	// increase of the server's transaction counter (capped by the write
	// statements' calls, which a busy multi-database server exceeds).
	WALPerWriteTxn = "write_txn"
	// WALPerWriteStatement: divided by the calls of the write statements,
	// for want of a transaction count (an older collector, a window without
	// two samples carrying it).
	WALPerWriteStatement = "write_statement"
)

// DescribeWALBasis names a WAL basis in words for evidence lines: "per
// write transaction (server xid counter)", "per write statement (no
// transaction count)"; "" for an unknown or absent basis.
func DescribeWALBasis(basis string) string {
	switch basis {
	case WALPerWriteTxn:
		return "per write transaction (server xid counter)"
	case WALPerWriteStatement:
		return "per write statement (no transaction count)"
	}
	return ""
}

// WALUnit is what a candidate's WAL bytes are counted per, in words for
// evidence lines and sentences: DescribeWALBasis, or "per write
// transaction" for a candidate without a basis (the figure's name).
func WALUnit(basis string) string {
	if d := DescribeWALBasis(basis); d != "" {
		return d
	}
	return "per write transaction"
}

// Forecast is the recurring peak behind a candidate and when to build for
// it. Times are UTC.
type Forecast struct {
	// QueryID is the statement whose peak comes first.
	QueryID string `json:"query_id"`
	// Period is "daily" or "weekly"; Phase the main peak's start in it
	// ("02:00 UTC", "Mon 02:00 UTC").
	Period string `json:"period"`
	Phase  string `json:"phase"`
	// Amplitude is the peak hour's load over the mean hour's; Confidence
	// the share of the observed periods (Periods) that showed the peak.
	Amplitude  float64 `json:"amplitude"`
	Confidence float64 `json:"confidence"`
	Periods    int     `json:"periods"`
	// PeakAt and PeakEnd bound the next peak (or the one running).
	PeakAt  time.Time `json:"peak_at"`
	PeakEnd time.Time `json:"peak_end"`
	// BuildSeconds is the estimated build time; BuildBy = PeakAt minus
	// it and the margin: the latest start that finishes before the peak.
	// BuildFrom is the earliest the gatekeeper approves the build.
	BuildSeconds float64   `json:"build_seconds"`
	BuildBy      time.Time `json:"build_by"`
	BuildFrom    time.Time `json:"build_from"`
	// DropAfter, with scorer.forecast.drop_after_peak, proposes dropping
	// the index once the peak is over (DropDetail: the numbers); it is a
	// proposal in the evidence, nothing executes it.
	DropAfter  *time.Time `json:"drop_after,omitempty"`
	DropDetail string     `json:"drop_detail,omitempty"`
}

// Summary says it in one line: "weekly peak expected Mon 02:00 UTC, build
// by 01:20 (confidence 1.00 over 5 weeks)".
func (f *Forecast) Summary() string {
	unit := map[string]string{"daily": "days", "weekly": "weeks"}[f.Period]
	by := f.BuildBy.UTC().Format("15:04")
	if f.BuildBy.UTC().YearDay() != f.PeakAt.UTC().YearDay() {
		by = f.BuildBy.UTC().Format("Mon 15:04")
	}
	return fmt.Sprintf("%s peak expected %s, build by %s (confidence %.2f over %d %s)",
		f.Period, f.PeakAt.UTC().Format("Mon 15:04 UTC"), by, f.Confidence, f.Periods, unit)
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
	// VerdictHeld records a candidate the scorer held back (a storage
	// budget or a cap, IndexCandidateScored.HeldReason): listed, not
	// built unless an operator approves it.
	VerdictHeld Verdict = "held"
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
	// ReasonBuildInProgress defers a removal while a build is creating the
	// index (IndexPilot's own, or a CREATE INDEX/REINDEX on the server).
	ReasonBuildInProgress Reason = "build_in_progress"
	// ReasonForecastHold defers a candidate built for a forecast peak
	// until its Forecast.BuildFrom.
	ReasonForecastHold Reason = "forecast_hold"

	// The scorer's holds (IndexCandidateScored.HeldReason), together with
	// ReasonMaxIndexesPerTable (its scorer.max_indexes_per_table).
	ReasonHeldStorageBudget Reason = "storage_budget"
	ReasonMaxNewIndexes     Reason = "max_new_indexes"
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
