package scorer_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestVersionMatrixScorerOnPgStatsWithoutHypoPG scores, on every server of
// the matrix, a statement as that server's pg_stat_statements normalizes it,
// on the statistics path the scorer takes without HypoPG (packaged here for
// 15 only; on 15 the test drops it). The statement is an IN list: on 18 it
// is squashed to "IN ($1 /*, ... */)", one parameter for the whole list, and
// must still be priced and give the same index as on 14 to 17.
func TestVersionMatrixScorerOnPgStatsWithoutHypoPG(t *testing.T) {
	pgtest.ForEachVersion(t, func(t *testing.T, v pgtest.Version) {
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.RequireExtension(t, "pg_stat_statements")
		db.Exec(t, "drop extension if exists hypopg")
		d := setupOn(t, db)

		_, err := db.Pool.Exec(ctx, "select id, status from public.orders where customer_id in (7, 8, 9)", pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err)
		texts := db.StatementTexts(t, "select id, status from public.orders where customer_id in ")
		require.Len(t, texts, 1)
		text := texts[0]
		if v.Major >= 18 {
			require.Equal(t, "select id, status from public.orders where customer_id in ($1 /*, ... */)", text)
		} else {
			require.Equal(t, "select id, status from public.orders where customer_id in ($1, $2, $3)", text)
		}

		s, err := scorer.New(d)
		require.NoError(t, err)
		feed(t, s, querystat("1", text, 500, end))
		r, err := s.Score(ctx, "main", scorer.Options{})
		require.NoError(t, err)
		require.Equal(t, scorer.WhatIfStats, r.WhatIfMethod, "no HypoPG: the pg_stats path")
		require.Zero(t, r.NotEvaluable, "the statement %q must be priced on PostgreSQL %d", text, v.Major)
		require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r))
		c := r.Chosen[0]
		require.NotEmpty(t, c.Notes, "the evidence says the costs after are a model")
		require.Contains(t, c.Notes[0], "pg_stats")
		ev := c.Statements[0]
		require.Less(t, ev.CostAfter, ev.CostBefore/10, "a few of 5000 customers")
	})
}

// TestVersionMatrixRemovalDetection runs the scorer's removal detection
// (catalog reads: pg_index, its validity and keys, the build progress
// view, replica identity) on every server version: an INVALID leftover of
// a failed concurrent build, a duplicate, a left prefix, and the indexes
// it must never propose (the primary key, a unique index, the replica
// identity). Without HypoPG, as the other versions have it.
func TestVersionMatrixRemovalDetection(t *testing.T) {
	pgtest.ForEachVersion(t, func(t *testing.T, v pgtest.Version) {
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.Exec(t, "drop extension if exists hypopg")
		d := setupOn(t, db)
		db.Exec(t,
			`create index orders_status_idx on public.orders (status)`,
			`create index orders_status_created_dup on public.orders (status, created_at)`,
			`create unique index orders_id_uq on public.orders (id)`,
			`create table public.ident (a int not null, b int not null)`,
			`create unique index ident_a on public.ident (a)`,
			`alter table public.ident replica identity using index ident_a`,
			`create index ident_a_b on public.ident (a, b)`,
			`create table public.broken (x int)`,
			`insert into public.broken values (0)`,
		)
		_, err := db.Pool.Exec(ctx, `create index concurrently broken_inv on public.broken ((1 / x))`)
		require.Error(t, err, "the build divides by zero and leaves an INVALID index")

		s, err := scorer.New(d)
		require.NoError(t, err)
		r, err := s.Score(ctx, "main", scorer.Options{})
		require.NoError(t, err)
		got := map[string]events.RemovalReason{}
		for _, p := range r.Removals {
			got[p.IndexName] = p.Reason
		}
		require.Equal(t, map[string]events.RemovalReason{
			"orders_status_idx":         events.RemovalPrefix,
			"orders_status_created_dup": events.RemovalDuplicate,
			"broken_inv":                events.RemovalInvalid,
		}, got, "PostgreSQL %d", v.Major)
	})
}
