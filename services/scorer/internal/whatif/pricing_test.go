package whatif

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// explainCost is the plan cost of a literal statement, planned by the
// test itself (the reference the custom price must match).
func explainCost(t *testing.T, db *pgtest.Database, sql string) float64 {
	t.Helper()
	var doc []byte
	require.NoError(t, db.Pool.QueryRow(context.Background(), "explain (format json) "+sql).Scan(&doc))
	c, err := totalCost(doc)
	require.NoError(t, err)
	return c
}

// newOrdersDB: 100k orders over 1992..1998 with a real index on o_date.
func newOrdersDB(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.Exec(t,
		`create table public.orders (id int primary key, o_date date not null, o_status text not null, o_total numeric not null)`,
		`insert into public.orders select g, date '1992-01-01' + (g % 2557), (array['filled','open_order','pending'])[1 + g % 3], g % 1000 from generate_series(1, 100000) g`,
		`create index orders_date on public.orders (o_date)`,
		`analyze public.orders`)
	return db
}

func TestSkewedStatementPricedWithQualstatsValues(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "create extension if not exists pg_qualstats"); err != nil {
		t.Skipf("pg_qualstats is not available: %v", err)
	}
	// a is 0 on 97 % of the rows, 1, 2 or 3 on 1 % each: n_distinct is 4,
	// so the generic plan guesses a quarter of the table for a = $1.
	db.Exec(t,
		`create table public.skew (id int primary key, a int not null, b int not null, pad text not null)`,
		`insert into public.skew select g, case when g % 100 < 97 then 0 else g % 100 - 96 end, (g * 7919) % 10000, md5(g::text)
		   from generate_series(1, 200000) g`,
		`analyze public.skew`)
	// The application asks for the rare values: pg_qualstats records them.
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "set pg_qualstats.sample_rate = 1")
	require.NoError(t, err)
	for _, a := range []string{"1", "2", "3", "2"} {
		_, err := conn.Exec(ctx, "select * from public.skew where a = "+a+" and b < 5000 order by b limit 20")
		require.NoError(t, err)
	}
	var qid string
	require.NoError(t, conn.QueryRow(ctx, "select queryid::text from pg_qualstats where lrelid = 'public.skew'::regclass limit 1").Scan(&qid))
	conn.Release()

	const q = "select * from public.skew where a = $1 and b < $2 order by b limit $3"
	idx := events.IndexSpec{Schema: "public", Table: "skew", Method: "btree", Columns: []string{"a"}}

	generic := acquire(t, newEngine(t, db.Pool, Options{}))
	gBefore, gAfter := cost(t, generic, q), cost(t, generic, q, idx)

	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	ps, err := s.Price(ctx, []Statement{{QueryID: qid, Query: q, RowsPerCall: 20}})
	require.NoError(t, err)
	require.Equal(t, MethodQualstats, ps[0].Method)
	require.NotEmpty(t, ps[0].Sets)
	for _, vs := range ps[0].Sets {
		require.Contains(t, []string{"1", "2", "3"}, *vs.Values[0], "values of $1 come from pg_qualstats")
		require.Equal(t, "20", *vs.Values[2], "LIMIT is priced with the rows per call")
	}
	before, after := cost(t, s, q), cost(t, s, q, idx)
	method, n := e.PricingMethod("", q)
	require.Equal(t, MethodQualstats, method)
	require.Equal(t, len(ps[0].Sets), n)

	genericSaving, customSaving := 1-gAfter/gBefore, 1-after/before
	t.Logf("generic %.1f -> %.1f (%.0f %%), custom %.1f -> %.1f (%.0f %%)", gBefore, gAfter, 100*genericSaving, before, after, 100*customSaving)
	require.Less(t, genericSaving, 0.3, "the generic plan should see little use in an index on a")
	require.Greater(t, customSaving, 0.6, "the real values should show the index on a saving most of the cost")
	require.Greater(t, customSaving, genericSaving+0.4)
}

func TestTypedLiteralsArePreparedAndPricedWithBoundValues(t *testing.T) {
	t.Parallel()
	db := newOrdersDB(t)
	db.RequireExtension(t, "pg_stat_statements")
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, "select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)")
	require.NoError(t, err)
	// A role of its own (not a superuser), as in production.
	pool, _ := rolePool(t, db, "public.orders")

	// pg_stat_statements' text of `o_date >= date '1995-01-01' and o_date
	// < date '1995-01-01' + interval '3' month`.
	const q = "select count(*), sum(o_total) from public.orders where o_date >= date $1 and o_date < date $2 + interval $3 month and o_status = $4"
	e := newEngine(t, pool, Options{})
	s := acquire(t, e)
	ps, err := s.Price(ctx, []Statement{{QueryID: "1", Query: q}})
	require.NoError(t, err)
	require.Equal(t, MethodPgStats, ps[0].Method)
	require.NotEmpty(t, ps[0].Sets)
	for _, vs := range ps[0].Sets {
		require.Equal(t, "1 month", *vs.Values[2], "an interval without a known value is one unit of its qualifier")
	}
	before := cost(t, s, q)
	after := cost(t, s, q, events.IndexSpec{Schema: "public", Table: "orders", Method: "btree", Columns: []string{"o_status", "o_date"}})
	require.Less(t, after, before)
	require.Equal(t, 2, s.Stats().Evaluations)
	require.Equal(t, 2*len(ps[0].Sets), e.ValuePlans())
	require.NoError(t, s.Close())

	// What reached the server: the statement with $n, never the values.
	rows, err := db.Pool.Query(ctx, `select query from pg_stat_statements
		where dbid = (select oid from pg_database where datname = current_database()) and query like '%public.orders%'`)
	require.NoError(t, err)
	var texts []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		texts = append(texts, s)
	}
	require.NoError(t, rows.Err())
	explained := false
	for _, text := range texts {
		if strings.Contains(text, "EXPLAIN (FORMAT JSON) SELECT") {
			explained = true
			require.True(t, strings.HasPrefix(text, "/* indexpilot:scorer */"), text)
			require.Contains(t, text, "$1::date")
		}
		for _, vs := range ps[0].Sets {
			for _, v := range vs.Values {
				require.NotContains(t, text, *v, "a bound value reached the statement text")
			}
		}
	}
	require.True(t, explained, "no EXPLAIN of the rewritten statement in pg_stat_statements: %q", texts)

}

func TestIntervalValueIsBoundWithItsUnit(t *testing.T) {
	t.Parallel()
	db := newOrdersDB(t)
	ctx := context.Background()
	const q = "select count(*) from public.orders where o_date >= date '1995-01-01' and o_date < date '1995-01-01' + interval $1 day"
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	ps, err := s.Price(ctx, []Statement{{Query: q, Samples: [][]string{{"90"}}}})
	require.NoError(t, err)
	require.Equal(t, MethodObserved, ps[0].Method)
	got := cost(t, s, q)
	days90 := explainCost(t, db, "select count(*) from public.orders where o_date >= date '1995-01-01' and o_date < date '1995-01-01' + interval '90' day")
	days0 := explainCost(t, db, "select count(*) from public.orders where o_date >= date '1995-01-01' and o_date < date '1995-01-01' + interval '0' day")
	t.Logf("custom %.2f, literal 90 days %.2f, 0 days %.2f", got, days90, days0)
	require.InDelta(t, days90, got, 0.01, "a bound '90' must price 90 days")
	require.Greater(t, got, days0*1.5, "90 days must not price like an empty range")
}

// TestNormalizedFormsAreEvaluable: what pg_stat_statements makes of
// common analytical constants still prepares and prices.
func TestNormalizedFormsAreEvaluable(t *testing.T) {
	t.Parallel()
	db := newOrdersDB(t)
	ctx := context.Background()
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	qs := []string{
		// sum(case when o_status = 'open_order' then 1 else 0 end)
		"select sum(case when o_status = $1 then $2 else $3 end) from public.orders where o_date >= date $4 and o_date < date $5 + interval $6 year",
		// o_total between 0.06 - 0.01 and 0.06 + 0.01
		"select sum(o_total * ($1 - o_total)) from public.orders where o_total between $2 - $3 and $4 + $5",
		// extract(year from o_date)
		"select extract($1 from o_date) as y, count(*) from public.orders where o_date between date $2 and date $3 group by y",
		// PostgreSQL 18's squashed list
		"select count(*) from public.orders where o_status in ($1 /*, ... */) and o_date > date $2",
	}
	in := make([]Statement, len(qs))
	for i, q := range qs {
		in[i] = Statement{Query: q}
	}
	ps, err := s.Price(ctx, in)
	require.NoError(t, err)
	for i, q := range qs {
		require.Equal(t, MethodPgStats, ps[i].Method, q)
		cost(t, s, q)
		cost(t, s, q, events.IndexSpec{Schema: "public", Table: "orders", Method: "btree", Columns: []string{"o_status"}})
		method, _ := e.PricingMethod("", q)
		require.Equal(t, MethodPgStats, method, "no value set of %q could be planned", q)
	}
}

// TestPriceSkipsStatisticsItCannotRead: the most common values of an
// array column do not read as text[] (ragged arrays); pricing goes on.
func TestPriceSkipsStatisticsItCannotRead(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.Exec(t,
		`create table public.tagged (id int primary key, tags text[] not null, n int not null)`,
		`insert into public.tagged select g, case when g % 2 = 0 then array['a'] else array['b', 'c'] end, g % 10 from generate_series(1, 1000) g`,
		`analyze public.tagged`)
	s := acquire(t, newEngine(t, db.Pool, Options{}))
	const q = "select id from public.tagged where tags = $1 and n = $2"
	ps, err := s.Price(context.Background(), []Statement{{Query: q}})
	require.NoError(t, err)
	require.Equal(t, MethodPgStats, ps[0].Method, "n still has statistics")
	require.Nil(t, ps[0].Sets[0].Values[0], "no value for the array column")
	// Binding NULL to tags would fold the condition to false (cost 0):
	// the statement falls back to its generic plan.
	cost(t, s, q)
	method, _ := s.e.PricingMethod("", q)
	require.Equal(t, MethodGeneric, method)
}

// TestRefusedValueSourceIsNamed: a role that may not read pg_qualstats
// gets its statements priced from pg_stats, and the session says which
// source it went without and why, rather than falling back silently.
func TestRefusedValueSourceIsNamed(t *testing.T) {
	t.Parallel()
	db := newOrdersDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "create extension if not exists pg_qualstats"); err != nil {
		t.Skipf("pg_qualstats is not available: %v", err)
	}
	db.Exec(t, "revoke select on public.pg_qualstats from public")
	pool, _ := rolePool(t, db, "public.orders")
	s := acquire(t, newEngine(t, pool, Options{}))
	ps, err := s.Price(ctx, []Statement{{QueryID: "42", Query: "select * from public.orders where o_status = $1"}})
	require.NoError(t, err)
	require.Equal(t, MethodPgStats, ps[0].Method)
	require.Len(t, s.SkippedSources(), 1)
	require.Contains(t, s.SkippedSources()[0], "read pg_qualstats")
	require.Contains(t, s.SkippedSources()[0], "permission denied")

	// The owner may: the next Price forgets the refusal.
	s = acquire(t, newEngine(t, db.Pool, Options{}))
	_, err = s.Price(ctx, []Statement{{QueryID: "42", Query: "select * from public.orders where o_status = $1"}})
	require.NoError(t, err)
	require.Empty(t, s.SkippedSources())
}

// TestCacheKeyIncludesTheValueSets: the same statement priced again with
// other values (a later run, new samples) is a new question for the
// what-if cache, not the answer for the old values; the same values again
// are a hit.
func TestCacheKeyIncludesTheValueSets(t *testing.T) {
	t.Parallel()
	db := newOrdersDB(t)
	ctx := context.Background()
	const q = "select count(*) from public.orders where o_date >= date '1995-01-01' and o_date < date '1995-01-01' + interval $1 day"
	e := newEngine(t, db.Pool, Options{})
	s := acquire(t, e)
	price := func(days string) float64 {
		t.Helper()
		ps, err := s.Price(ctx, []Statement{{Query: q, Samples: [][]string{{days}}}})
		require.NoError(t, err)
		require.Equal(t, MethodObserved, ps[0].Method)
		return cost(t, s, q)
	}
	wide := price("900")
	require.Equal(t, uint64(1), e.CacheStats().Misses)
	narrow := price("1")
	require.Equal(t, uint64(2), e.CacheStats().Misses, "other values must not be answered from the cache")
	require.Less(t, narrow, wide, "one day must price below 900 days")
	require.InDelta(t, explainCost(t, db, "select count(*) from public.orders where o_date >= date '1995-01-01' and o_date < date '1995-01-01' + interval '1' day"), narrow, 0.01)
	require.Equal(t, wide, price("900"), "the first values again")
	require.Equal(t, uint64(1), e.CacheStats().Hits, "the same values again are a hit")
}
