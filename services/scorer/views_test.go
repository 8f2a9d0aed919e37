package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestReplacedViewIsSeenAtTheNextRun: the scorer reads view definitions
// with the rest of the catalog at every run, so a view changed by DDL
// between two runs is expanded as it is now. The view's column `who`
// first comes from customer_id, then from a new column owner_id; the same
// statement on the view leads to an index on whichever base column is
// behind `who` at the time.
func TestReplacedViewIsSeenAtTheNextRun(t *testing.T) {
	db, d := setup(t)
	ctx := context.Background()
	db.Exec(t,
		`alter table public.orders add column owner_id int`,
		`update public.orders set owner_id = (id * 7919) % 5000`,
		`analyze public.orders`,
		`create view public.order_view as select id, status, customer_id as who from public.orders`)
	s, err := scorer.New(d)
	require.NoError(t, err)
	const q = "SELECT id, status FROM order_view WHERE who = $1"
	feed(t, s, querystat("201", q, 500, end))
	r, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r), "the view's who is customer_id")

	db.Exec(t, `create or replace view public.order_view as select id, status, owner_id as who from public.orders`)
	feed(t, s, querystat("201", q, 500, end.Add(time.Minute)))
	r, err = s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"owner_id"}}, columnsOf(r), "after the DDL the view's who is owner_id")
}
