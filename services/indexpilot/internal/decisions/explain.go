package decisions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Explanation is `indexpilot explain <id> --json`: why an index exists,
// from the control database, in the order it happened. It is the same
// chain as the recommendation's trace (TraceID): the statements and their
// workload windows, the candidate and its pricing (Recommendation.Evidence),
// the gatekeeper's decisions with the rules each passed, the builds and
// the validation.
type Explanation struct {
	Recommendation Recommendation       `json:"recommendation"`
	Statements     []ExplainedStatement `json:"statements"`
	Decisions      []ExplainedDecision  `json:"decisions"`
	Builds         []ReportBuild        `json:"builds"`
	Validation     *ReportVerdict       `json:"validation,omitempty"`
}

// ExplainedStatement is one statement of the candidate's evidence with the
// retained workload windows that were there when it was scored (those
// ending at or before the candidate's window end).
type ExplainedStatement struct {
	QueryID string `json:"query_id"`
	Query   string `json:"query"`
	// Calls is what the scorer weighed the statement by.
	Calls int64 `json:"calls"`
	// WindowCount and WindowCalls are over every such window; Windows
	// lists the newest of them (at most MaxExplainedWindows).
	WindowCount int64             `json:"window_count"`
	WindowCalls int64             `json:"window_calls"`
	Windows     []StatementWindow `json:"windows"`
}

// MaxExplainedWindows is how many windows a statement of an explanation lists.
const MaxExplainedWindows = 10

// StatementWindow is one retained workload window of a statement.
type StatementWindow struct {
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	Source          string    `json:"source,omitempty"`
	Calls           int64     `json:"calls"`
	TotalExecTimeMs float64   `json:"total_exec_time_ms"`
	Unfinished      bool      `json:"unfinished,omitempty"`
}

// ExplainedDecision is one verdict of the gatekeeper on the recommendation
// (a mutation_log row of it): the state it moved from and to, the typed
// reason, the detail and the rules the candidate passed before the one
// that decided.
type ExplainedDecision struct {
	At          time.Time `json:"at"`
	Action      string    `json:"action"`
	Outcome     string    `json:"outcome"`
	Reason      string    `json:"reason"`
	Detail      string    `json:"detail,omitempty"`
	RulesPassed []string  `json:"rules_passed,omitempty"`
}

// Explain reads the explanation of the recommendation whose id is id or
// starts with it (ErrNotFound, ErrAmbiguous).
func Explain(ctx context.Context, q postgres.Querier, id string) (Explanation, error) {
	rec, err := GetRecommendation(ctx, q, id)
	if err != nil {
		return Explanation{}, err
	}
	x := Explanation{Recommendation: rec, Statements: []ExplainedStatement{}, Decisions: []ExplainedDecision{}}
	for _, s := range rec.Evidence.Statements {
		st, err := explainStatement(ctx, q, rec.Target, s.QueryID, rec.Evidence.WindowEnd)
		if err != nil {
			return x, err
		}
		st.Query, st.Calls = s.Query, s.Calls
		x.Statements = append(x.Statements, st)
	}
	hist, err := History(ctx, q, HistoryFilter{RecommendationID: rec.ID, Stage: "gatekeeper"})
	if err != nil {
		return x, err
	}
	for _, h := range slices.Backward(hist) {
		d := ExplainedDecision{At: h.OccurredAt, Action: h.Action, Outcome: h.Outcome, Reason: h.Reason}
		var ev struct {
			Detail      string   `json:"detail"`
			RulesPassed []string `json:"rules_passed"`
		}
		if len(h.Evidence) > 0 {
			if err := json.Unmarshal(h.Evidence, &ev); err != nil {
				return x, fmt.Errorf("read decision %d: %w", h.ID, err)
			}
		}
		d.Detail, d.RulesPassed = ev.Detail, ev.RulesPassed
		x.Decisions = append(x.Decisions, d)
	}
	if x.Builds, err = reportBuilds(ctx, q, rec.Target, time.Time{}, rec.ID); err != nil {
		return x, err
	}
	vs, err := reportValidations(ctx, q, rec.Target, time.Time{}, rec.ID)
	if err != nil {
		return x, err
	}
	if len(vs) > 0 {
		x.Validation = &vs[0]
	}
	return x, nil
}

// explainStatement reads a statement's windows up to the candidate's end.
func explainStatement(ctx context.Context, q postgres.Querier, target, queryID string, until time.Time) (ExplainedStatement, error) {
	st := ExplainedStatement{QueryID: queryID, Windows: []StatementWindow{}}
	if err := q.QueryRow(ctx, `/* indexpilot:cli */
select count(*), coalesce(sum(calls), 0)::bigint from indexpilot.workload_stats
 where target = $1 and query_id = $2 and window_end <= $3`, target, queryID, until).Scan(&st.WindowCount, &st.WindowCalls); err != nil {
		return st, fmt.Errorf("read windows of statement %s: %w", queryID, err)
	}
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select window_start, window_end, coalesce(window_source, ''), calls, total_exec_time_ms, unfinished
  from indexpilot.workload_stats
 where target = $1 and query_id = $2 and window_end <= $3
 order by window_end desc
 limit $4`, target, queryID, until, MaxExplainedWindows)
	if err != nil {
		return st, fmt.Errorf("read windows of statement %s: %w", queryID, err)
	}
	st.Windows, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatementWindow, error) {
		var w StatementWindow
		err := row.Scan(&w.Start, &w.End, &w.Source, &w.Calls, &w.TotalExecTimeMs, &w.Unfinished)
		return w, err
	})
	if err != nil {
		return st, fmt.Errorf("read windows of statement %s: %w", queryID, err)
	}
	return st, nil
}
