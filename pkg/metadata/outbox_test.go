package metadata_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestOutboxRoundTripAndPrune: an enqueued event comes back from
// Unpublished decoded to the same event (same id) once past the grace
// period, not after MarkPublished, and PruneOutbox deletes only rows
// published long enough ago, and only the stage's own.
func TestOutboxRoundTripAndPrune(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	at := time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)
	p := &events.IndexBuildFailed{Target: "main", RecommendationID: "3b1f0a52-9c1e-4d2b-8f3a-1e2d3c4b5a69",
		CandidateID: "c1", DecisionEventID: "d1", Index: events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a"}},
		IndexName: "ip_t_a_00000000", Error: "lock timeout", SQLState: "55P03", Attempt: 2, FailedAt: at}
	id, err := metadata.Enqueue(ctx, db.Pool, "executor", "corr-1", p)
	require.NoError(t, err)
	other, err := metadata.Enqueue(ctx, db.Pool, "other", "", p)
	require.NoError(t, err)

	got, err := metadata.Unpublished(ctx, db.Pool, "executor", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, got, "a row inside the grace period is not returned")
	db.Exec(t, "update indexpilot.outbox set created_at = now() - interval '1 hour'")
	got, err = metadata.Unpublished(ctx, db.Pool, "executor", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, id, got[0].ID)
	require.Equal(t, "corr-1", got[0].CorrelationID)
	require.Equal(t, p.EventID(), got[0].Payload.EventID(), "the event decoded from the outbox has another id")
	require.Equal(t, p, got[0].Payload)

	require.NoError(t, metadata.MarkPublished(ctx, db.Pool, "executor", id))
	got, err = metadata.Unpublished(ctx, db.Pool, "executor", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, got)

	n, err := metadata.PruneOutbox(ctx, db.Pool, "executor", 24*time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "a row published just now is kept")
	db.Exec(t, "update indexpilot.outbox set published_at = now() - interval '2 days' where published_at is not null")
	require.NoError(t, metadata.MarkPublished(ctx, db.Pool, "other", other))
	db.Exec(t, "update indexpilot.outbox set published_at = now() - interval '2 days'")
	n, err = metadata.PruneOutbox(ctx, db.Pool, "executor", 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	var left int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.outbox where stage = 'other'").Scan(&left))
	require.Equal(t, 1, left, "another stage's row was pruned")
}
