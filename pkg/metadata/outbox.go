package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Outboxed is an event waiting in indexpilot.outbox.
type Outboxed struct {
	ID            int64
	CorrelationID string
	Payload       events.Payload
}

// Enqueue writes p to the outbox of stage through q (pass the transaction
// that commits the effect p reports) and returns the row's id, which
// MarkPublished takes once the bus has the event.
func Enqueue(ctx context.Context, q postgres.Querier, stage, correlationID string, p events.Payload) (int64, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("outbox %s: %w", p.EventType(), err)
	}
	var id int64
	err = q.QueryRow(ctx, postgres.Marker(stage)+`insert into indexpilot.outbox (stage, event_type, event_id, correlation_id, data)
values ($1, $2, $3, $4, $5) returning id`, stage, string(p.EventType()), p.EventID(), correlationID, data).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("outbox %s: %w", p.EventType(), err)
	}
	return id, nil
}

// MarkPublished records that the outbox row id is on the bus.
func MarkPublished(ctx context.Context, q postgres.Querier, stage string, id int64) error {
	_, err := q.Exec(ctx, postgres.Marker(stage)+`update indexpilot.outbox set published_at = now()
 where id = $1 and published_at is null`, id)
	if err != nil {
		return fmt.Errorf("mark outbox row %d published: %w", id, err)
	}
	return nil
}

// Unpublished returns, oldest first, up to limit events of stage written
// at least olderThan ago and not yet marked published: what a crash
// between commit and publish left behind (younger rows are still being
// published by whoever wrote them).
func Unpublished(ctx context.Context, q postgres.Querier, stage string, olderThan time.Duration, limit int) ([]Outboxed, error) {
	rows, err := q.Query(ctx, postgres.Marker(stage)+`select id, event_type, correlation_id, data from indexpilot.outbox
 where stage = $1 and published_at is null and created_at <= now() - make_interval(secs => $2)
 order by id limit $3`, stage, olderThan.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []Outboxed
	for rows.Next() {
		var (
			o    Outboxed
			typ  string
			data []byte
		)
		if err := rows.Scan(&o.ID, &typ, &o.CorrelationID, &data); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		p, err := events.Decode(events.Envelope{Type: events.Type(typ), Data: data})
		if err != nil {
			return nil, fmt.Errorf("outbox row %d: %w", o.ID, err)
		}
		o.Payload = p
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// PruneOutbox deletes stage's rows published more than olderThan ago: once
// on the bus, an event's record is its topic and mutation_log.
func PruneOutbox(ctx context.Context, q postgres.Querier, stage string, olderThan time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, postgres.Marker(stage)+`delete from indexpilot.outbox
 where stage = $1 and published_at < now() - make_interval(secs => $2)`, stage, olderThan.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
