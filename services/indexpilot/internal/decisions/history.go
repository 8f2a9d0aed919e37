package decisions

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// HistoryEntry is one mutation_log row as GET /api/v1/history returns it.
type HistoryEntry struct {
	ID               int64           `json:"id"`
	OccurredAt       time.Time       `json:"occurred_at"`
	Stage            string          `json:"stage"`
	Action           string          `json:"action"`
	Outcome          string          `json:"outcome"`
	Target           string          `json:"target,omitempty"`
	Schema           string          `json:"schema,omitempty"`
	Table            string          `json:"table,omitempty"`
	IndexName        string          `json:"index_name,omitempty"`
	DDL              string          `json:"ddl,omitempty"`
	Reason           string          `json:"reason,omitempty"`
	RecommendationID string          `json:"recommendation_id,omitempty"`
	ParentID         *int64          `json:"parent_id,omitempty"`
	Evidence         json.RawMessage `json:"evidence,omitempty"`
	// Archived is true for a row `indexpilot archive` moved to
	// mutation_log_archive.
	Archived bool `json:"archived,omitempty"`
}

// HistoryFilter selects mutation_log rows; an empty field matches all.
type HistoryFilter struct {
	Target, Stage, Action string
	// RecommendationID is a full id or a prefix of one.
	RecommendationID string
	// Limit caps the rows returned (newest first); 0 means 200.
	Limit int
}

// History reads mutation_log and its archive (mutation_log_archive, where
// `indexpilot archive` moves old rows), newest first: history outlives
// retention.
func History(ctx context.Context, q postgres.Querier, f HistoryFilter) ([]HistoryEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	// Each table is filtered and cut to the limit on its own (each has its
	// primary key on id), then the two are merged.
	rows, err := q.Query(ctx, `/* indexpilot:cli */
with live as (
  select m.*, false as archived from indexpilot.mutation_log m
   where ($1 = '' or target = $1) and ($2 = '' or stage = $2) and ($3 = '' or action = $3)
     and ($4 = '' or starts_with(coalesce(recommendation_id::text, ''), $4))
   order by id desc limit $5),
archived as (
  select a.*, true as archived from indexpilot.mutation_log_archive a
   where ($1 = '' or target = $1) and ($2 = '' or stage = $2) and ($3 = '' or action = $3)
     and ($4 = '' or starts_with(coalesce(recommendation_id::text, ''), $4))
   order by id desc limit $5)
select id, occurred_at, stage, action, outcome, coalesce(target, ''), coalesce(schema_name, ''), coalesce(table_name, ''),
       coalesce(index_name, ''), coalesce(ddl, ''), coalesce(reason, ''), coalesce(recommendation_id::text, ''), parent_id, evidence,
       archived
  from (select * from live union all select * from archived) h
 order by id desc
 limit $5`, f.Target, f.Stage, f.Action, f.RecommendationID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HistoryEntry, error) {
		var e HistoryEntry
		err := row.Scan(&e.ID, &e.OccurredAt, &e.Stage, &e.Action, &e.Outcome, &e.Target, &e.Schema, &e.Table, &e.IndexName,
			&e.DDL, &e.Reason, &e.RecommendationID, &e.ParentID, &e.Evidence, &e.Archived)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}
