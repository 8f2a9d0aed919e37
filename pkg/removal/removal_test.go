package removal_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/removal"
)

// env is a control database that is also the target, with a table t.
func env(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	db.Exec(t, "create table public.t (id int primary key, a int, b text)",
		"insert into public.t select g, g % 10, 'x' || g from generate_series(1, 1000) g", "analyze public.t")
	return db
}

// proposal is what the scorer would propose for index name, with its
// current definition.
func proposal(t *testing.T, db *pgtest.Database, name string, reason events.RemovalReason) *events.IndexRemovalProposed {
	t.Helper()
	var def string
	require.NoError(t, db.Pool.QueryRow(context.Background(), "select pg_get_indexdef(('public.' || $1)::regclass)", name).Scan(&def))
	return &events.IndexRemovalProposed{Target: "main", Schema: "public", Table: "t", IndexName: name,
		Definition: def, Reason: reason}
}

func recheck(t *testing.T, db *pgtest.Database, p *events.IndexRemovalProposed) string {
	t.Helper()
	res, err := removal.Recheck(context.Background(), db.Pool, db.Pool, p)
	require.NoError(t, err)
	require.Empty(t, res.Building)
	return res.Stale
}

func TestInvalidIndexThatBecomesValidNoLongerHolds(t *testing.T) {
	db := env(t)
	ctx := context.Background()
	db.Exec(t, "insert into public.t values (1001, 1, 'x1')")
	// A failed unique build (b has a duplicate) leaves an INVALID index.
	_, err := db.Pool.Exec(ctx, "create unique index concurrently t_b_uq on public.t (b)")
	require.Error(t, err)
	p := proposal(t, db, "t_b_uq", events.RemovalInvalid)
	require.Empty(t, recheck(t, db, p), "an INVALID index nobody builds is removable")

	db.Exec(t, "delete from public.t where id = 1001", "reindex index public.t_b_uq")
	require.Equal(t, "the index is valid now", recheck(t, db, p))
}

func TestUnusedIndexThatGetsScannedNoLongerHolds(t *testing.T) {
	db := env(t)
	ctx := context.Background()
	db.Exec(t, "create index t_a on public.t (a)")
	since := time.Now().Add(-40 * 24 * time.Hour)
	p := proposal(t, db, "t_a", events.RemovalUnused)
	p.UnusedSince = &since
	require.Empty(t, recheck(t, db, p), "a never-scanned index is removable")

	// The application uses the index.
	app, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer app.Close(ctx)
	_, err = app.Exec(ctx, "set enable_seqscan = off")
	require.NoError(t, err)
	var n int
	require.NoError(t, app.QueryRow(ctx, "select count(*) from public.t where a = 3").Scan(&n))
	pgtest.FlushStats(t, app)
	_, err = app.Exec(ctx, "select 1")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return recheck(t, db, p) != "" }, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, recheck(t, db, p), "the index was scanned since")

	// The usage record alone also tells: its counter changed after the
	// recorded time.
	db.Exec(t, "create index t_b on public.t (b)")
	q := proposal(t, db, "t_b", events.RemovalUnused)
	q.UnusedSince = &since
	require.Empty(t, recheck(t, db, q))
	_, err = db.Pool.Exec(ctx, `insert into indexpilot.index_usage
  (target, schema_name, table_name, index_name, first_seen_at, observed_at, scans, scans_changed_at)
values ('main', 'public', 't', 't_b', now(), now(), 0, now())`)
	require.NoError(t, err)
	require.Contains(t, recheck(t, db, q), "the index was scanned since")
}

func TestDuplicateWhoseTwinIsDroppedNoLongerHolds(t *testing.T) {
	db := env(t)
	db.Exec(t, "create index t_a_1 on public.t (a)", "create index t_a_2 on public.t (a)")
	p := proposal(t, db, "t_a_2", events.RemovalDuplicate)
	p.RedundantWith = "t_a_1"
	require.Empty(t, recheck(t, db, p), "a duplicate of a valid index is removable")

	db.Exec(t, "drop index public.t_a_1") // by someone else
	require.Equal(t, "its twin t_a_1 no longer exists", recheck(t, db, p))

	// And a prefix whose longer twin is replaced by an unrelated index.
	db.Exec(t, "create index t_a_b on public.t (a, b)")
	q := proposal(t, db, "t_a_2", events.RemovalPrefix)
	q.RedundantWith = "t_a_b"
	require.Empty(t, recheck(t, db, q))
	db.Exec(t, "drop index public.t_a_b", "create index t_a_b on public.t (b, a)")
	require.Equal(t, "t_a_b no longer makes it prefix_redundant", recheck(t, db, q))
}

// A DROP INDEX CONCURRENTLY that times out waiting for the table's
// transactions has already marked the index INVALID. The retry of that
// removal must still hold, whatever its reason, or the half-dropped index
// would be left behind (found by the chaos suite: long_tx/write during the
// removal of a duplicate).
func TestIndexLeftInvalidByAnInterruptedDropStillHolds(t *testing.T) {
	db := env(t)
	ctx := context.Background()
	db.Exec(t, "create index t_a_1 on public.t (a)", "create index t_a_2 on public.t (a)", "create index t_a_b on public.t (a, b)")
	dup := proposal(t, db, "t_a_2", events.RemovalDuplicate)
	dup.RedundantWith = "t_a_1"
	prefix := proposal(t, db, "t_a_1", events.RemovalPrefix)
	prefix.RedundantWith = "t_a_b"
	require.Empty(t, recheck(t, db, dup))

	// An application transaction that has read the table holds the drop
	// in its wait, past lock_timeout.
	app, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer app.Close(ctx)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "select count(*) from public.t")
	require.NoError(t, err)
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "set lock_timeout = '200ms'")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "drop index concurrently public.t_a_2")
	require.Error(t, err, "the drop times out waiting for the application's transaction")
	require.Equal(t, "55P03", postgres.SQLState(err))
	_, err = conn.Exec(ctx, "reset lock_timeout")
	require.NoError(t, err)
	conn.Release()
	require.NoError(t, tx.Rollback(ctx))
	var valid bool
	require.NoError(t, db.Pool.QueryRow(ctx, "select indisvalid from pg_index where indexrelid = 'public.t_a_2'::regclass").Scan(&valid))
	require.False(t, valid, "the interrupted drop left the index INVALID")

	require.Empty(t, recheck(t, db, dup), "the duplicate's removal still holds: the retry finishes the drop")
	// Its twin, by contrast, is not made redundant by an INVALID index:
	// a removal of t_a_1 as a duplicate of t_a_2 would be stale.
	twin := proposal(t, db, "t_a_1", events.RemovalDuplicate)
	twin.RedundantWith = "t_a_2"
	require.Equal(t, "its twin t_a_2 is not valid", recheck(t, db, twin))
	require.Empty(t, recheck(t, db, prefix), "an unrelated valid removal is unaffected")
}

func TestGoneOrRedefinedIndexNoLongerHolds(t *testing.T) {
	db := env(t)
	db.Exec(t, "create index t_a on public.t (a)")
	p := proposal(t, db, "t_a", events.RemovalUnused)
	db.Exec(t, "drop index public.t_a", "create index t_a on public.t (b)")
	require.Contains(t, recheck(t, db, p), "the index was redefined")
	db.Exec(t, "drop index public.t_a")
	require.Equal(t, "index public.t_a no longer exists", recheck(t, db, p))
}

// While IndexPilot has a build of the index pending, running or stopped,
// the removal waits (Building), whatever its reason; once the build is
// over the reason is judged again.
func TestIndexBeingBuiltByIndexPilotWaits(t *testing.T) {
	db := env(t)
	ctx := context.Background()
	db.Exec(t, "insert into public.t values (1001, 1, 'x1')")
	_, err := db.Pool.Exec(ctx, "create unique index concurrently ip_t_b_0badc0de on public.t (b)")
	require.Error(t, err) // an INVALID leftover of our name, as a stopped build leaves
	p := proposal(t, db, "ip_t_b_0badc0de", events.RemovalInvalid)
	spec := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"b"}}
	recID, cand := events.RecommendationID("main", spec), events.CandidateID("main", spec, "v1")
	_, err = db.Pool.Exec(ctx, `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, 'main', $2, 'public', 't', $3, 'ip_t_b_0badc0de', 'approved', 'apply_mode', $4, $4, 'v1', 90, 1000, '{}')`,
		recID, spec.Key(), spec, cand)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, state)
values ($1, 'main', $2, 'ip_t_b_0badc0de', $3, $3, 'stopped')`, recID, spec, cand)
	require.NoError(t, err)
	res, err := removal.Recheck(ctx, db.Pool, db.Pool, p)
	require.NoError(t, err)
	require.Equal(t, removal.Result{Building: "IndexPilot has a build of this index in progress"}, res)

	db.Exec(t, "update indexpilot.builds set state = 'done'")
	require.Empty(t, recheck(t, db, p), "the build is over and the index still INVALID: removable")
}

// A CREATE INDEX CONCURRENTLY that IndexPilot did not start, held in
// either of its wait phases by another session: a removal of the index it
// creates (INVALID meanwhile) waits, and so does one of an INVALID
// leftover on its table (the build may be about to replace it); a valid
// duplicate on the same table is not held up, unless the role that
// re-checks cannot see which relation the build works on (no
// pg_read_all_stats): then everything waits. Once the build is over, the
// reasons are judged again.
func TestIndexBeingBuiltBySomeoneElseWaits(t *testing.T) {
	for _, c := range []struct {
		hold   pgtest.Hold
		hidden bool
	}{{pgtest.HoldWriters, false}, {pgtest.HoldSnapshots, false}, {pgtest.HoldSnapshots, true}} {
		name := c.hold.Phase()
		if c.hidden {
			name += ", hidden from the re-check"
		}
		t.Run(name, func(t *testing.T) {
			db := env(t)
			ctx := context.Background()
			db.Exec(t, "insert into public.t values (1001, 1, 'x1')")
			_, err := db.Pool.Exec(ctx, "create unique index concurrently t_b_uq on public.t (b)")
			require.Error(t, err) // an INVALID leftover
			db.Exec(t, "delete from public.t where id = 1001",
				"create index t_a_1 on public.t (a)", "create index t_a_2 on public.t (a)")
			target := db.Pool
			if c.hidden {
				// A role without pg_monitor sees the superuser's build in
				// pg_stat_progress_create_index without its relation.
				role := pgtest.RoleName(t, db, "ipt_recheck_")
				db.Exec(t, "create role "+postgres.Ident(role)+" login")
				var err error
				target, err = pgxpool.New(ctx, db.URLAs(t, role))
				require.NoError(t, err)
				t.Cleanup(target.Close)
			}

			release := pgtest.HeldBuild(t, db, c.hold, "public", "t", "create index concurrently t_a_b on public.t (a, b)")
			var valid bool
			require.NoError(t, db.Pool.QueryRow(ctx, "select indisvalid from pg_index where indexrelid = 'public.t_a_b'::regclass").Scan(&valid))
			require.False(t, valid, "the index being built should be INVALID")

			building := removal.Result{Building: "a CREATE INDEX or REINDEX is working on it (pg_stat_progress_create_index)"}
			inBuild := proposal(t, db, "t_a_b", events.RemovalInvalid)
			leftover := proposal(t, db, "t_b_uq", events.RemovalInvalid)
			dup := proposal(t, db, "t_a_2", events.RemovalDuplicate)
			dup.RedundantWith = "t_a_1"
			dupWants := removal.Result{}
			if c.hidden {
				dupWants = building
			}
			for _, w := range []struct {
				p    *events.IndexRemovalProposed
				want removal.Result
			}{{inBuild, building}, {leftover, building}, {dup, dupWants}} {
				res, err := removal.Recheck(ctx, target, db.Pool, w.p)
				require.NoError(t, err)
				require.Equal(t, w.want, res, "recheck of %s (%s) during the build", w.p.IndexName, w.p.Reason)
			}

			require.NoError(t, release())
			for _, w := range []struct {
				p     *events.IndexRemovalProposed
				stale string
			}{{inBuild, "the index is valid now"}, {leftover, ""}, {dup, ""}} {
				res, err := removal.Recheck(ctx, target, db.Pool, w.p)
				require.NoError(t, err)
				require.Equal(t, removal.Result{Stale: w.stale}, res, "recheck of %s (%s) after the build", w.p.IndexName, w.p.Reason)
			}
		})
	}
}
