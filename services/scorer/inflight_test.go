package scorer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestIndexBeingBuiltCountsAsThere: a statement on customer_id and
// status, and a recommendation on orders(customer_id) already approved
// (being built; the planner cannot see it yet). The scorer prices the
// workload as if it existed: it proposes nothing more for that statement,
// where without it it chooses an alternative and both get built.
func TestIndexBeingBuiltCountsAsThere(t *testing.T) {
	db, d := setup(t)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id, note FROM orders WHERE customer_id = $1 AND status = $2", 900, end))
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Chosen, 1, "one index for the statement")
	first := r.Chosen[0].Index

	// That choice approved, another index for the same statement is not.
	for _, state := range []string{"approved", "building"} {
		_, err = db.Pool.Exec(context.Background(), `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, 'main', $2, $3, $4, $5, $6, $7, 'apply_mode', $8, $1, 'v2', 99, 100000, '{}')
on conflict (id) do update set state = excluded.state`,
			events.RecommendationID("main", first), first.Key(), first.Schema, first.Table, first, indexdef.Name(first), state,
			events.CandidateID("main", first, "v2"))
		require.NoError(t, err)
		r, err = s.Score(context.Background(), "main", scorer.Options{})
		require.NoError(t, err)
		require.Empty(t, r.Chosen, "with %s %s, another index was chosen for the same statement", state, first.Key())
	}
	// Once it is gone from the queue (failed, say), the statement is
	// served again.
	_, err = db.Pool.Exec(context.Background(), `update indexpilot.recommendations set state = 'failed'`)
	require.NoError(t, err)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Chosen, 1)
}
