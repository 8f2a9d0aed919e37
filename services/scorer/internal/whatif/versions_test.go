package whatif

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestVersionMatrixPgStatsFallbackWithoutHypoPG runs the scorer's what-if
// session on every server of the matrix on the path it takes without
// HypoPG (packaged here for PostgreSQL 15 only; on 15 the test drops it):
// the current generic plan's cost (PREPARE with plan_cache_mode =
// force_generic_plan, on every version), the statements as that server's
// pg_stat_statements normalizes them — on 18 an IN list is squashed to
// "IN ($1 /*, ... */)" — and the pg_stats size model, which must bound the
// real index's size.
func TestVersionMatrixPgStatsFallbackWithoutHypoPG(t *testing.T) {
	pgtest.ForEachVersion(t, func(t *testing.T, v pgtest.Version) {
		ctx := context.Background()
		db := pgtest.NewDatabaseOn(t, v.AdminURL)
		db.RequireExtension(t, "pg_stat_statements")
		db.Exec(t, itemsDDL...)
		db.Exec(t, "drop extension if exists hypopg")

		// Two IN lists of different lengths, sent as literal text the way
		// an application without bind parameters does.
		for _, q := range []string{
			"select * from public.items where a in (1, 2, 3)",
			"select * from public.items where a in (4, 5, 6, 7)",
		} {
			_, err := db.Pool.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
			require.NoError(t, err)
		}
		texts := db.StatementTexts(t, "select * from public.items where a in ")
		if v.Major >= 18 {
			require.Equal(t, []string{"select * from public.items where a in ($1 /*, ... */)"}, texts,
				"PostgreSQL 18 squashes constant IN lists into one entry")
		} else {
			require.Len(t, texts, 2, "before 18 each list length is its own entry: %v", texts)
		}

		s := acquire(t, newEngine(t, db.Pool, Options{}))
		require.False(t, s.Available(), "no HypoPG: the pg_stats fallback path")
		require.Equal(t, v.Major, s.ServerVersion()/10000)
		for _, q := range append(texts, "select * from public.items where b = $1 and c > $2") {
			c := cost(t, s, q)
			require.Greater(t, c, 0.0, "generic plan cost of %q", q)
		}
		_, err := s.Cost(ctx, texts[0], []events.IndexSpec{on("a")})
		require.ErrorIs(t, err, ErrNoHypoPG, "a what-if index needs HypoPG")

		model, err := s.StatsSize(ctx, on("a", "b"))
		require.NoError(t, err)
		db.Exec(t, "create index items_ab_real on public.items (a, b)")
		var real int64
		require.NoError(t, db.Pool.QueryRow(ctx, "select pg_relation_size('public.items_ab_real')").Scan(&real))
		require.GreaterOrEqual(t, model, real, "the pg_stats model %d must bound the real size %d on PostgreSQL %d", model, real, v.Major)
		require.NoError(t, s.Close())
	})
}
