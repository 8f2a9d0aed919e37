package scorer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/services/scorer"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// TestRealValuesProposeTheIndexTheGenericPlanMisses is issue 11's case:
// `a = $1 AND b < $2 ORDER BY b LIMIT $3` on a table where a is 0 on 97 %
// of the rows. The generic plan guesses a quarter of the table for
// a = $1; the application only asks for the rare values, which
// pg_qualstats records, and priced with them the index on a removes most
// of the statement's cost.
func TestRealValuesProposeTheIndexTheGenericPlanMisses(t *testing.T) {
	db, d := setup(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "create extension if not exists pg_qualstats"); err != nil {
		t.Skipf("pg_qualstats is not available: %v", err)
	}
	db.Exec(t,
		`create table public.skew (id int primary key, a int not null, b int not null, pad text not null)`,
		`insert into public.skew select g, case when g % 100 < 97 then 0 else g % 100 - 96 end, (g * 7919) % 10000, md5(g::text)
		   from generate_series(1, 200000) g`,
		`analyze public.skew`)
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "set pg_qualstats.sample_rate = 1")
	require.NoError(t, err)
	for _, a := range []string{"1", "2", "3"} {
		_, err := conn.Exec(ctx, "select * from public.skew where a = "+a+" and b < 5000 order by b limit 20")
		require.NoError(t, err)
	}
	var qid string
	require.NoError(t, conn.QueryRow(ctx, "select queryid::text from pg_qualstats where lrelid = 'public.skew'::regclass limit 1").Scan(&qid))
	conn.Release()

	d.Config.Scorer.StorageBudgetMB = 1024 // 10 % of this small database is less than the index
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat(qid, "select * from public.skew where a = $1 and b < $2 order by b limit $3", 2000, end))
	r, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Empty(t, r.PricingSkipped)
	if r.Pricing[whatif.MethodQualstats] != 1 {
		// Say what pg_qualstats held at this moment: the entries, or none.
		rows, err := db.Pool.Query(ctx, "select coalesce(constvalue, '<null>'), occurences, userid::regrole::text from pg_qualstats where queryid = $1::bigint", qid)
		require.NoError(t, err)
		for rows.Next() {
			var cv, role string
			var n int64
			require.NoError(t, rows.Scan(&cv, &n, &role))
			t.Logf("pg_qualstats now: queryid %s const %s occurences %d role %s", qid, cv, n, role)
		}
		require.NoError(t, rows.Err())
	}
	require.Equal(t, map[string]int{whatif.MethodQualstats: 1}, r.Pricing)
	require.Greater(t, r.ValuePlans, 0)
	require.NotEmpty(t, r.Chosen, "the index on a must be proposed")
	c := r.Chosen[0]
	require.Equal(t, "skew", c.Index.Table)
	require.Equal(t, "a", c.Index.Columns[0])
	require.Len(t, c.Statements, 1)
	ev := c.Statements[0]
	require.Equal(t, whatif.MethodQualstats, ev.PricingMethod)
	require.Greater(t, ev.ValueSets, 0)
	require.Greater(t, ev.ImprovementPct, 60.0)
}
