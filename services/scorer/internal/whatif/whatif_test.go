package whatif

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// items is the 20k-row table every database test plans against:
// a has 5,000 distinct values (4 rows each), b 97, c 4,999.
var itemsDDL = []string{
	`create table public.items (
		id int primary key, a int not null, b int not null, c int not null,
		note text not null, created_at timestamptz not null)`,
	`insert into public.items
	 select g, g % 5000, g % 97, g % 4999, md5(g::text), now() - g * interval '1 minute'
	   from generate_series(1, 20000) g`,
	`analyze public.items`,
}

func newItemsDB(t testing.TB) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.Exec(t, itemsDDL...)
	return db
}

func newEngine(t testing.TB, pool *pgxpool.Pool, opts Options) *Engine {
	t.Helper()
	e, err := New(pool, opts)
	require.NoError(t, err)
	return e
}

func acquire(t testing.TB, e *Engine) *Session {
	t.Helper()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func on(cols ...string) events.IndexSpec {
	return events.IndexSpec{Schema: "public", Table: "items", Method: "btree", Columns: cols}
}

func cost(t testing.TB, s *Session, q string, idx ...events.IndexSpec) float64 {
	t.Helper()
	c, err := s.Cost(context.Background(), q, idx)
	require.NoError(t, err, "cost of %q with %v", q, idx)
	require.Greater(t, c, 0.0, "cost of %q with %v", q, idx)
	return c
}

// hypoCount is the number of hypothetical indexes on the session's backend.
func hypoCount(t testing.TB, s *Session) int {
	t.Helper()
	var n int
	require.NoError(t, s.conn.QueryRow(context.Background(), "select count(*) from hypopg_list_indexes").Scan(&n))
	return n
}

func TestCostDropsWithIndexOnFilteredColumnOnly(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	require.True(t, s.Available())
	require.GreaterOrEqual(t, s.ServerVersion(), 120000)

	const q = "select * from public.items where a = $1"
	base := cost(t, s, q)
	withA := cost(t, s, q, on("a"))
	require.Equal(t, 1, hypoCount(t, s), "the index on a must exist during evaluation")
	withNote := cost(t, s, q, on("note"))
	require.Equal(t, 1, hypoCount(t, s), "the index on a must be gone, only note left")

	require.Less(t, withA, base*0.2, "index on the filtered column: base %.2f, with (a) %.2f, want a drop of far more than 20%%", base, withA)
	require.InDelta(t, base, withNote, base*0.001, "index on an unrelated column: base %.2f, with (note) %.2f, want no change", base, withNote)

	// The empty set really is empty again: the planner sees no hypothetical index.
	e.ResetCache()
	again := cost(t, s, q)
	require.Equal(t, 0, hypoCount(t, s))
	require.InDelta(t, base, again, base*0.001, "base cost after evaluating with indexes: was %.2f, now %.2f", base, again)
}

func TestCostTwoColumnIndexAndTwoIndexSet(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	s := acquire(t, newEngine(t, db.Pool, Options{}))

	// A two-column index serves both equality predicates.
	const and = "select id from public.items where b = $1 and a = $2"
	baseAnd := cost(t, s, and)
	withB := cost(t, s, and, on("b"))
	withAB := cost(t, s, and, on("a", "b"))
	require.Less(t, withAB, baseAnd*0.2, "two-column (a,b): base %.2f, with %.2f", baseAnd, withAB)
	require.Less(t, withAB, withB, "two-column (a,b) %.2f must beat (b) alone %.2f", withAB, withB)

	// An OR needs both indexes (BitmapOr): one alone does not help, the set does.
	const or = "select id from public.items where a = $1 or c = $2"
	baseOr := cost(t, s, or)
	withA := cost(t, s, or, on("a"))
	withAC := cost(t, s, or, on("a"), on("c"))
	require.Equal(t, 2, hypoCount(t, s))
	require.InDelta(t, baseOr, withA, baseOr*0.001, "OR with only (a): base %.2f, with %.2f", baseOr, withA)
	require.Less(t, withAC, baseOr*0.2, "OR with the set {(a),(c)}: base %.2f, with %.2f", baseOr, withAC)
}

func TestCostNotEvaluable(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)

	cases := []struct {
		query, sqlstate string
	}{
		{"select count(*) from public.items where a = $1::text", "42883"}, // no operator int = text
		{"select count(*) from public.items where a = $1 $2", "42601"},    // does not parse
		{"select count(*) from public.missing where x = $1", "42P01"},
	}
	for _, tc := range cases {
		_, err := s.Cost(context.Background(), tc.query, []events.IndexSpec{on("a")})
		require.ErrorIs(t, err, ErrNotEvaluable, "query %q", tc.query)
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe), "query %q: want the server error wrapped, got %v", tc.query, err)
		require.Equal(t, tc.sqlstate, pe.Code, "query %q", tc.query)
		require.NotContains(t, err.Error(), "public.items", "errors must not carry the query text")
	}

	// The session is still usable, and the answer is cached.
	cost(t, s, "select * from public.items where a = $1", on("a"))
	before := e.CacheStats()
	_, err := s.Cost(context.Background(), cases[0].query, nil)
	require.ErrorIs(t, err, ErrNotEvaluable)
	require.Equal(t, before.Hits+1, e.CacheStats().Hits, "a not-evaluable statement must be answered from the cache")
}

func TestCostRefusesMultipleStatements(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	s := acquire(t, newEngine(t, db.Pool, Options{}))

	for _, q := range []string{
		"select 1; delete from public.items",
		"select * from public.items where a = $1;\n/* c */ drop table public.items",
		"insert into public.items values ($1)",
		"explain analyze delete from public.items",
		"",
	} {
		_, err := s.Cost(context.Background(), q, nil)
		require.ErrorIs(t, err, ErrRefused, "query %q", q)
	}

	// Past the cheap check, the extended protocol still refuses two commands.
	_, err := s.evaluate(context.Background(), "select 1; delete from public.items", indexSet{}, &Pricing{Method: MethodGeneric})
	require.ErrorIs(t, err, ErrNotEvaluable)
	require.Equal(t, "42601", sqlState(err))

	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), "select count(*) from public.items").Scan(&n))
	require.Equal(t, 20000, n)
}

func TestCostPlansWritesWithoutRunningThem(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	s := acquire(t, newEngine(t, db.Pool, Options{}))
	checksum := func() string {
		var sum string
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			"select md5(string_agg(id || ':' || a || ':' || note, ',' order by id)) || count(*) from public.items").Scan(&sum))
		return sum
	}
	before := checksum()

	const upd = "update public.items set note = 'changed' where a = 7"
	base := cost(t, s, upd)
	withA := cost(t, s, upd, on("a"))
	require.Less(t, withA, base*0.2, "UPDATE with (a): base %.2f, with %.2f", base, withA)
	cost(t, s, "update public.items set note = $1 where a = $2", on("a"))
	cost(t, s, "delete from public.items where a = 7", on("a"))
	cost(t, s, "with d as (delete from public.items where b = $1 returning id) select count(*) from d", on("b"))

	require.Equal(t, before, checksum(), "planning must not change any row")

	// The session itself cannot write: every transaction is read-only.
	_, err := s.conn.Exec(context.Background(), "update public.items set note = 'x' where id = 1")
	require.Equal(t, "25006", sqlState(err), "a write on the what-if session must fail, got %v", err)
}

func TestCostCacheHitsOnRepeat(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	const q = "select id from public.items where a = $1 and b = $2"

	first := cost(t, s, q, on("a"), on("b"))
	st := e.CacheStats()
	require.Equal(t, uint64(0), st.Hits)
	require.Equal(t, uint64(1), st.Misses)

	// Same set in another order, with a duplicate: the same question.
	require.Equal(t, first, cost(t, s, q, on("b"), on("a"), on("b")))
	require.Equal(t, first, cost(t, s, q, on("a"), on("b")))
	st = e.CacheStats()
	require.Equal(t, uint64(2), st.Hits)
	require.Equal(t, uint64(1), st.Misses)
	require.Equal(t, 1, s.Stats().Evaluations, "cache hits must not reach the planner")

	// Keyed by fingerprint, two spellings share the answer.
	ctx := context.Background()
	c1, err := s.CostFingerprint(ctx, "fp-1", q, []events.IndexSpec{on("a")})
	require.NoError(t, err)
	c2, err := s.CostFingerprint(ctx, "fp-1", "SELECT id FROM public.items WHERE a = $1 AND b = $2", []events.IndexSpec{on("a")})
	require.NoError(t, err)
	require.Equal(t, c1, c2)
	require.Equal(t, uint64(3), e.CacheStats().Hits)

	// Another session of the same engine shares the cache.
	s2 := acquire(t, e)
	require.Equal(t, first, cost(t, s2, q, on("a"), on("b")))
	require.Equal(t, 0, s2.Stats().Evaluations)
}

func TestCloseLeavesPooledConnectionClean(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	cfg.MaxConns = 1
	// Non-default values, so that restoring is not the same as resetting.
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "12345"
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	e := newEngine(t, pool, Options{})
	// hypopg.enabled only exists once the library is loaded (by the first
	// session); loading it is harmless, so only its value is compared.
	const settingsSQL = `select current_setting('plan_cache_mode') || ' ' || current_setting('statement_timeout') || ' ' ||
		current_setting('lock_timeout') || ' ' || current_setting('default_transaction_read_only') || ' ' ||
		coalesce(current_setting('hypopg.enabled', true), 'on')`
	var settingsBefore string
	require.NoError(t, pool.QueryRow(ctx, settingsSQL).Scan(&settingsBefore))
	require.Equal(t, "force_custom_plan 12345ms 0 off on", settingsBefore)

	for _, tc := range []struct {
		name string
		use  func(t *testing.T, s *Session)
	}{
		{"after costs", func(t *testing.T, s *Session) {
			cost(t, s, "select * from public.items where a = $1", on("a"), on("b"))
			_, err := s.Size(ctx, on("c"))
			require.NoError(t, err)
			require.Equal(t, 3, hypoCount(t, s))
		}},
		{"after a not-evaluable statement", func(t *testing.T, s *Session) {
			cost(t, s, "select * from public.items where a = $1", on("a"))
			_, err := s.Cost(ctx, "select * from public.items where a = $1::text", []events.IndexSpec{on("b")})
			require.ErrorIs(t, err, ErrNotEvaluable)
		}},
		{"after an invalid index", func(t *testing.T, s *Session) {
			_, err := s.Cost(ctx, "select * from public.items where a = $1",
				[]events.IndexSpec{on("a"), on("no_such_column")})
			require.ErrorIs(t, err, ErrInvalidIndex)
		}},
		{"after a cancelled context", func(t *testing.T, s *Session) {
			cost(t, s, "select * from public.items where a = $1", on("a"))
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := s.Cost(cctx, "select * from public.items where b = $1", []events.IndexSpec{on("b")})
			require.Error(t, err)
		}},
		{"after the backend was terminated", func(t *testing.T, s *Session) {
			cost(t, s, "select * from public.items where a = $1", on("a"))
			_, err := db.Pool.Exec(ctx, "select pg_terminate_backend($1)", s.pg().PID())
			require.NoError(t, err)
			_, err = s.Cost(ctx, "select * from public.items where b = $1", []events.IndexSpec{on("b")})
			require.Error(t, err)
			require.NotErrorIs(t, err, ErrNotEvaluable, "a lost connection is not the statement's fault")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			s, err := e.Acquire(actx)
			require.NoError(t, err)
			defer s.Close() // a failed step must not starve the one-connection pool
			pid := s.pg().PID()
			tc.use(t, s)
			require.NoError(t, s.Close())
			require.NoError(t, s.Close(), "Close is idempotent")

			c, err := pool.Acquire(actx)
			require.NoError(t, err)
			defer c.Release()
			var (
				backend        uint32
				hypo, prepared int
				settings       string
			)
			require.NoError(t, c.QueryRow(ctx, `select pg_backend_pid(),
				(select count(*) from hypopg_list_indexes),
				(select count(*) from pg_prepared_statements
				  where name like 'indexpilot' || '_whatif%' or statement like '%indexpilot' || '_whatif%'),
				`+settingsSQL[len("select "):]).
				Scan(&backend, &hypo, &prepared, &settings))
			if backend == pid {
				require.Equal(t, 0, hypo, "hypothetical indexes leaked to the next user of backend %d", pid)
				require.Equal(t, settingsBefore, settings, "session settings not restored")
			}
			require.Equal(t, 0, prepared, "prepared statements leaked")
			require.Equal(t, byte('I'), c.Conn().PgConn().TxStatus())
		})
	}
	// The first cases must have reused the same backend: otherwise the
	// leak check above proves nothing.
	s, err := e.Acquire(ctx)
	require.NoError(t, err)
	pid := s.pg().PID()
	require.NoError(t, s.Close())
	c, err := pool.Acquire(ctx)
	require.NoError(t, err)
	require.Equal(t, pid, c.Conn().PgConn().PID(), "MaxConns 1 must hand back the same backend")
	c.Release()
}

func TestResetKeepsTheRequestedSet(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	e := newEngine(t, db.Pool, Options{ResetEvery: 3})
	s := acquire(t, e)
	const q = "select id from public.items where a = $1 or c = $2 or b = $3"
	sets := [][]events.IndexSpec{
		{on("a"), on("c"), on("b")},
		{on("a"), on("note")},
		{on("a"), on("c"), on("b")},
		{on("id", "a"), on("c")},
		{},
		{on("a"), on("c"), on("b")},
	}
	want := make([]float64, len(sets))
	for i, set := range sets {
		e.ResetCache() // every answer from the planner, not the cache
		want[i] = cost(t, s, q, set...)
		require.Equal(t, len(set), hypoCount(t, s), "set %d", i)
	}
	require.Equal(t, want[0], want[2])
	require.Equal(t, want[0], want[5])
	require.Greater(t, s.Stats().HypoResets, 0, "with ResetEvery 3 the session must have reset")

	// Same answers from a fresh evaluation, with both strategies.
	for _, recreate := range []bool{false, true} {
		s.recreate = recreate
		for i, set := range sets {
			e.ResetCache()
			require.Equal(t, want[i], cost(t, s, q, set...), "set %d, recreate %v", i, recreate)
			require.Equal(t, len(set), hypoCount(t, s), "set %d, recreate %v", i, recreate)
		}
	}
	require.LessOrEqual(t, s.sinceReset, 3)
}

func TestSizeHypoPGBoundsModelWithinAQuarter(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	ctx := context.Background()

	hypo, err := s.Size(ctx, on("b"))
	require.NoError(t, err)
	again, err := s.Size(ctx, on("b"))
	require.NoError(t, err)
	require.Equal(t, hypo, again)
	require.Equal(t, uint64(1), e.CacheStats().Hits)
	model, err := s.StatsSize(ctx, on("b"))
	require.NoError(t, err)

	db.Exec(t, "create index items_b_real on public.items (b)")
	var real int64
	require.NoError(t, db.Pool.QueryRow(ctx, "select pg_relation_size('public.items_b_real')").Scan(&real))
	require.GreaterOrEqual(t, hypo, real, "hypopg_relation_size %d must bound the real size %d", hypo, real)
	require.InDelta(t, 1, float64(model)/float64(real), 0.25, "the pg_stats model %d within 25 %% of the real size %d", model, real)

	_, err = s.Size(ctx, on("no_such_column"))
	require.ErrorIs(t, err, ErrInvalidIndex)
	_, err = s.StatsSize(ctx, on("no_such_column"))
	require.ErrorIs(t, err, ErrInvalidIndex)
}

func TestWithoutHypoPG(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	db.Exec(t, "drop extension hypopg")
	s := acquire(t, newEngine(t, db.Pool, Options{}))
	ctx := context.Background()

	require.False(t, s.Available())
	const q = "select * from public.items where a = $1"
	cost(t, s, q) // the current plan needs no HypoPG
	_, err := s.Cost(ctx, q, []events.IndexSpec{on("a")})
	require.ErrorIs(t, err, ErrNoHypoPG)
	_, err = s.Size(ctx, on("a"))
	require.ErrorIs(t, err, ErrNoHypoPG)
	size, err := s.StatsSize(ctx, on("a"))
	require.NoError(t, err)
	require.Greater(t, size, int64(8192))
	require.NoError(t, s.Close())
}

func TestInvalidIndexSpecs(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	s := acquire(t, newEngine(t, db.Pool, Options{}))
	const q = "select * from public.items where a = $1"
	for _, spec := range []events.IndexSpec{
		{Schema: "public", Table: "items", Method: "btree) ; drop table public.items; --", Columns: []string{"a"}},
		{Schema: "public", Table: "items"},
		{Schema: "public", Table: "items", Columns: []string{"a"}, Predicate: "a > 0"},
		{Schema: "public", Table: "no_such_table", Columns: []string{"a"}},
		on("no_such_column"),
	} {
		_, err := s.Cost(context.Background(), q, []events.IndexSpec{on("b"), spec})
		require.ErrorIs(t, err, ErrInvalidIndex, "spec %+v", spec)
	}
	// Still usable, and the failed creates left nothing behind.
	cost(t, s, q, on("a"))
	require.Equal(t, 1, hypoCount(t, s))
}

func TestTimeoutIsReported(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	// A lock held by another transaction makes planning wait; the lock
	// timeout turns that into ErrTimeout instead of a hang.
	ctx := context.Background()
	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Rollback(ctx) })
	_, err = holder.Exec(ctx, "lock table public.items in access exclusive mode")
	require.NoError(t, err)

	s := acquire(t, newEngine(t, db.Pool, Options{LockTimeout: 50 * time.Millisecond}))
	_, err = s.Cost(ctx, "select * from public.items where a = $1", nil)
	require.ErrorIs(t, err, ErrTimeout)
	require.NoError(t, holder.Rollback(ctx))
	cost(t, s, "select * from public.items where a = $1")
}

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	_, err := New(nil, Options{})
	require.Error(t, err)
	for _, o := range []Options{{ResetEvery: 5000}, {ResetEvery: -1}, {StatementTimeout: time.Microsecond}, {CacheEntries: -1}} {
		_, err := New(&pgxpool.Pool{}, o)
		require.Error(t, err, "options %+v", o)
	}
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestWhatIfWorkIsNotWorkload(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	db.RequireExtension(t, "pg_stat_statements")
	ctx := context.Background()
	// Forget the setup (this database only; the view is cluster-wide).
	_, err := db.Pool.Exec(ctx, "select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)")
	require.NoError(t, err)
	s := acquire(t, newEngine(t, db.Pool, Options{}))
	const q = "select * from public.items where a = $1 and b = $2"
	for _, set := range [][]events.IndexSpec{nil, {on("a")}, {on("b")}, {on("a", "b")}, {on("a"), on("b")}} {
		cost(t, s, q, set...)
	}
	// Custom pricing (an EXPLAIN of the statement's own text per value
	// set) leaves no call of the statement behind either.
	const q2 = "select * from public.items where c = $1 and b < $2"
	ps, err := s.Price(ctx, []Statement{{Query: q2}})
	require.NoError(t, err)
	require.Equal(t, MethodPgStats, ps[0].Method)
	for _, set := range [][]events.IndexSpec{nil, {on("c")}, {on("c", "b")}} {
		cost(t, s, q2, set...)
	}
	_, err = s.Size(ctx, on("c"))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	rows, err := db.Pool.Query(ctx, `select query, calls from pg_stat_statements
		where dbid = (select oid from pg_database where datname = current_database())
		  and (query like '%hypopg%' or query like '%indexpilot%' or query like '%items where a = $1 and b = $2%'
		       or query like '%items where c = $1 and b < $2%')`)
	require.NoError(t, err)
	type entry struct {
		query string
		calls int64
	}
	var got []entry
	for rows.Next() {
		var e entry
		require.NoError(t, rows.Scan(&e.query, &e.calls))
		got = append(got, e)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, got, "pg_stat_statements recorded nothing")
	explains := 0
	for _, e := range got {
		require.True(t, strings.HasPrefix(e.query, "/* indexpilot:"),
			"statement without the marker in pg_stat_statements (the collector would count it as workload): %q, %d calls", e.query, e.calls)
		if strings.Contains(e.query, "EXECUTE indexpilot_whatif") {
			explains++
		}
	}
	require.LessOrEqual(t, explains, 1, "one entry per parameter count, not one per evaluation: %v", got)
}

// rolePool is a pool on db as a new login role (not a superuser) that may
// read table; the role is dropped at the end of the test.
func rolePool(t *testing.T, db *pgtest.Database, table string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	role := "ipt_whatif_" + hex.EncodeToString(rnd[:])
	db.Exec(t, "create role "+role+" login", "grant select on "+table+" to "+role)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), db.URL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "drop owned by "+role)
		_, _ = c.Exec(context.Background(), "revoke set on parameter pg_stat_statements.track from "+role)
		_, _ = c.Exec(context.Background(), "drop role "+role)
	})
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool, role
}

func TestNonSuperuserSession(t *testing.T) {
	t.Parallel()
	db := newItemsDB(t)
	ctx := context.Background()
	var track string
	require.NoError(t, db.Pool.QueryRow(ctx, "select current_setting('pg_stat_statements.track', true)").Scan(&track))

	pool, role := rolePool(t, db, "public.items")
	e := newEngine(t, pool, Options{})
	const q = "select * from public.items where a = $1"

	s, err := e.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, s.Available())
	require.Equal(t, track == "all", s.InflatesCalls(), "track is %q and the role may not change it", track)
	base := cost(t, s, q)
	require.Less(t, cost(t, s, q, on("a")), base*0.2)
	require.NoError(t, s.Close())

	// Allowed to set the parameter, the session turns nested tracking off.
	db.Exec(t, "grant set on parameter pg_stat_statements.track to "+role)
	s, err = e.Acquire(ctx)
	require.NoError(t, err)
	require.False(t, s.InflatesCalls())
	require.NoError(t, s.Close())
	var after string
	require.NoError(t, pool.QueryRow(ctx, "select current_setting('pg_stat_statements.track', true)").Scan(&after))
	require.Equal(t, track, after, "pg_stat_statements.track must be restored")
}
