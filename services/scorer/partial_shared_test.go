package scorer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestSharedSoftDeletePartialCandidate: three statements read only the
// rows that are not soft-deleted; nine rows in ten are. The scorer
// proposes the partial index on the shared predicate, the planner proves
// it, and once such an index exists it is not proposed again.
func TestSharedSoftDeletePartialCandidate(t *testing.T) {
	db, d := setup(t)
	d.Config.Scorer.StorageBudgetMB = 1024
	db.Exec(t, `create table public.accounts (id bigint primary key, email text not null, plan text not null,
			deleted_at timestamptz, seen_at timestamptz)`,
		`insert into public.accounts select g, 'user' || g || '@example.com', (array['free','pro'])[1 + g % 2],
			case when g % 10 <> 0 then timestamptz '2026-01-01' end, null from generate_series(1, 60000) g`,
		`analyze public.accounts`)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id, plan FROM accounts WHERE email = $1 AND deleted_at IS NULL", 900, end),
		querystat("2", "SELECT count(*) FROM accounts WHERE deleted_at IS NULL AND email = $1 AND plan = $2", 700, end),
		querystat("3", "UPDATE accounts SET seen_at = now() WHERE email = $1 AND deleted_at IS NULL", 500, end),
	)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Chosen, 1, "one index serves all three")
	c := r.Chosen[0]
	require.Equal(t, []string{"email"}, c.Index.Columns)
	require.Equal(t, "(deleted_at IS NULL)", c.Index.Predicate, "the partial index is a tenth of the full one")
	require.Len(t, c.Statements, 3)
	for _, ev := range c.Statements {
		require.Less(t, ev.CostAfter, ev.CostBefore/10, "statement %s", ev.QueryID)
	}
	require.Less(t, r.WorkloadCostAfter, r.WorkloadCostBefore/10)

	// A user's partial index with the same predicate (and another key
	// after email) serves it: nothing is proposed.
	db.Exec(t, `create index accounts_live_email on public.accounts (email, plan) where deleted_at is null`)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Empty(t, r.Chosen)
}

// TestExpressionChecksFeature: with the expression_checks feature off,
// expression_profile is not consulted and no expression index is proposed.
func TestExpressionChecksFeature(t *testing.T) {
	db, d := setup(t)
	d.Config.Scorer.StorageBudgetMB = 1024
	db.Exec(t, `create table public.users (id int primary key, email varchar(200) not null, region int not null)`,
		`insert into public.users select g, 'User' || g || '@Example.com', g % 3000 from generate_series(1, 30000) g`,
		`analyze public.users`,
		`insert into indexpilot.expression_profile (target, tenant_id, schema_name, table_name, field_name, is_enabled)
		 values ('main', 't1', 'public', 'users', 'region', false)`)
	feedBoth := func(s *scorer.Scorer) {
		feed(t, s,
			querystat("1", "SELECT id FROM users WHERE lower(email) = $1", 500, end),
			querystat("2", "SELECT id FROM users WHERE region = $1", 500, end))
	}
	kinds := func(r *scorer.Report) (exprs int, cols [][]string) {
		for _, c := range r.Chosen {
			exprs += len(c.Index.Expressions)
			if len(c.Index.Columns) > 0 {
				cols = append(cols, c.Index.Columns)
			}
		}
		return exprs, cols
	}

	s, err := scorer.New(d)
	require.NoError(t, err)
	feedBoth(s)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	exprs, cols := kinds(r)
	require.Equal(t, 1, exprs, "lower(email) is proposed")
	require.Empty(t, cols, "region is disabled for every tenant")

	d.Config.Features.Bypass.Features = []string{config.FeatureExpressionChecks}
	s, err = scorer.New(d)
	require.NoError(t, err)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	exprs, cols = kinds(r)
	require.Zero(t, exprs, "no expression candidate while expression_checks is off")
	require.Equal(t, [][]string{{"region"}}, cols, "the expression profile is not consulted")
}
