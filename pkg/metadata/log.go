package metadata

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Entry is one mutation_log row. Action says what was considered or done
// ("recommend", "decide", "build", "drop", ...), Outcome how it ended
// ("proposed", "approved", "built", "failed", "skipped", ...).
type Entry struct {
	Stage            string
	Action           string
	Outcome          string
	Target           string
	TenantID         *string
	Schema           string
	Table            string
	Fields           []string
	IndexName        string
	DDL              string
	Reason           string
	Evidence         any
	EventID          string
	CandidateID      string
	RecommendationID string
	ParentID         *int64
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// AppendLog writes e to mutation_log through q (pass the transaction that
// carries the effect it records) and returns the new row's id.
func AppendLog(ctx context.Context, q postgres.Querier, e Entry) (int64, error) {
	ev := []byte("{}")
	if e.Evidence != nil {
		b, err := json.Marshal(e.Evidence)
		if err != nil {
			return 0, fmt.Errorf("encode evidence: %w", err)
		}
		ev = b
	}
	var id int64
	err := q.QueryRow(ctx, `/* indexpilot:metadata */
insert into indexpilot.mutation_log
  (stage, action, outcome, target, tenant_id, schema_name, table_name, fields, index_name, ddl, reason,
   evidence, event_id, candidate_id, recommendation_id, parent_id)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
returning id`,
		e.Stage, e.Action, e.Outcome, nullIfEmpty(e.Target), e.TenantID, nullIfEmpty(e.Schema), nullIfEmpty(e.Table),
		e.Fields, nullIfEmpty(e.IndexName), nullIfEmpty(e.DDL), nullIfEmpty(e.Reason), ev,
		nullIfEmpty(e.EventID), nullIfEmpty(e.CandidateID), nullIfEmpty(e.RecommendationID), e.ParentID,
	).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append mutation_log %s/%s: %w", e.Action, e.Outcome, err)
	}
	return id, nil
}

// MarkProcessed records that consumer has processed eventID, in the
// caller's transaction. It returns false when the event was already
// processed: the caller must then roll back or skip its effect.
func MarkProcessed(ctx context.Context, q postgres.Querier, consumer, eventID string) (bool, error) {
	tag, err := q.Exec(ctx, `/* indexpilot:metadata */
insert into indexpilot.processed_events (consumer, event_id) values ($1, $2) on conflict do nothing`, consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("mark event %s processed: %w", eventID, err)
	}
	return tag.RowsAffected() == 1, nil
}
