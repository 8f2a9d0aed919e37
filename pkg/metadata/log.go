package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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

// StageBypass is the Stage of the rows that record bypass changes. They are
// written whatever the mutation_logging feature says, so that who turned
// logging off (and back on) is always on record.
const StageBypass = "bypass"

type loggingKey struct{}

// WithLogging returns ctx carrying the configured state of the
// mutation_logging feature (features.bypass.features): with on false,
// AppendLog under ctx writes only bypass rows. The stage runners set it
// from the configuration; a ctx without it means on.
func WithLogging(ctx context.Context, on bool) context.Context {
	return context.WithValue(ctx, loggingKey{}, on)
}

func loggingConfigured(ctx context.Context) bool {
	on, ok := ctx.Value(loggingKey{}).(bool)
	return !ok || on
}

// AppendLog writes e to mutation_log through q (pass the transaction that
// carries the effect it records) and returns the new row's id.
//
// It honours the mutation_logging feature: while it is disabled, in the
// configuration (see WithLogging) or at run time (a disabled, unexpired
// indexpilot.bypass_state row, checked in the same statement), rows other
// than bypass changes are not written and AppendLog returns e.ParentID (0
// when nil) without error, so that the caller's effect still happens and
// lineage continues from the last row written.
func AppendLog(ctx context.Context, q postgres.Querier, e Entry) (int64, error) {
	skipped := int64(0)
	if e.ParentID != nil {
		skipped = *e.ParentID
	}
	always := e.Stage == StageBypass
	if !always && !loggingConfigured(ctx) {
		return skipped, nil
	}
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
select $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text[], $9::text, $10::text, $11::text,
       $12::jsonb, $13::uuid, $14::uuid, $15::uuid, $16::bigint
 where $17::boolean or not exists (
       select from indexpilot.bypass_state
        where level = 'feature' and name = 'mutation_logging' and disabled
          and (expires_at is null or expires_at > now()))
returning id`,
		e.Stage, e.Action, e.Outcome, nullIfEmpty(e.Target), e.TenantID, nullIfEmpty(e.Schema), nullIfEmpty(e.Table),
		e.Fields, nullIfEmpty(e.IndexName), nullIfEmpty(e.DDL), nullIfEmpty(e.Reason), ev,
		nullIfEmpty(e.EventID), nullIfEmpty(e.CandidateID), nullIfEmpty(e.RecommendationID), e.ParentID, always,
	).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return skipped, nil
	}
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
