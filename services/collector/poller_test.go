package collector

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

const workloadSQL = "select note from orders where id = $1"

// pollAndWait runs one poll cycle and waits until the sink has received
// everything it published.
func pollAndWait(t *testing.T, p *poller, s *sink) polled {
	t.Helper()
	res, err := p.poll(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		q := s.queryStats(func(e *events.QueryStatObserved) bool { return e.WindowEnd.Equal(res.At) })
		ts := s.tableStats(func(e *events.TableStatObserved) bool { return e.ObservedAt.Equal(res.At) })
		return len(q) == res.QueryStats && len(ts) == res.TableStats
	}, 10*time.Second, 5*time.Millisecond, "poll at %s published %d querystat and %d tablestat events", res.At, res.QueryStats, res.TableStats)
	return res
}

func runWorkload(t *testing.T, db *pgtest.Database, n int) {
	t.Helper()
	for i := range n {
		_, err := db.Pool.Exec(context.Background(), workloadSQL, i+1)
		require.NoError(t, err)
	}
}

func isWorkload(e *events.QueryStatObserved) bool { return e.Query == workloadSQL }

// isWorkloadDelta keeps the workload's deltas, not its history window.
func isWorkloadDelta(e *events.QueryStatObserved) bool {
	return isWorkload(e) && !events.IsHistory(e.WindowSource)
}

func newTestPoller(t *testing.T, db *pgtest.Database) (*poller, *sink) {
	t.Helper()
	d := deps(t, []config.Target{{Name: "main", DSN: db.URL}}, time.Hour, nil)
	s := subscribe(t, d.Bus)
	p := newPoller(d, "main", d.Config.Collector)
	t.Cleanup(p.conn.close)
	return p, s
}

func TestPollPublishesDeltas(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t,
		"create table orders (id bigint primary key, note text)",
		// Ask the backend to flush its table counters right away instead
		// of within the next ten idle seconds.
		"insert into orders select g, 'n' || g from generate_series(1, 100) g; select pg_stat_force_next_flush()",
	)
	p, s := newTestPoller(t, db)

	// Table statistics: the live-row count reaches the shared statistics
	// when the inserting backend flushes them, so poll until it shows.
	var orders *events.TableStatObserved
	require.Eventually(t, func() bool {
		res := pollAndWait(t, p, s)
		for _, ts := range s.tableStats(func(e *events.TableStatObserved) bool { return e.ObservedAt.Equal(res.At) }) {
			if ts.Schema == "public" && ts.Table == "orders" && ts.LiveRows == 100 {
				orders = ts
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "no tablestat for public.orders with 100 live rows")
	require.Equal(t, "main", orders.Target)
	require.Len(t, orders.Indexes, 1)
	require.Equal(t, "orders_pkey", orders.Indexes[0].Name)
	require.True(t, orders.Indexes[0].Primary)
	require.True(t, orders.Indexes[0].Valid)

	const n, m = 5, 3
	before := s.polls("main")
	runWorkload(t, db, n)
	first := pollAndWait(t, p, s)
	got := s.queryStats(isWorkload)
	require.Len(t, got, 1, "a statement first seen after the first poll counts in full: %+v", got)
	require.Equal(t, int64(n), got[0].Calls)
	require.Equal(t, before[len(before)-1], got[0].WindowStart, "its calls accrued since the previous poll")
	require.Equal(t, events.WindowDelta, got[0].WindowSource)

	runWorkload(t, db, m)
	second := pollAndWait(t, p, s)
	got = s.queryStats(isWorkload)
	require.Len(t, got, 2, "one event for the statement after %d more calls: %+v", m, got)
	ev := got[1]
	require.Equal(t, int64(m), ev.Calls)
	require.Equal(t, int64(m), ev.Rows)
	require.Equal(t, "main", ev.Target)
	require.NotEmpty(t, ev.QueryID)
	require.Equal(t, first.At, ev.WindowStart)
	require.Equal(t, second.At, ev.WindowEnd)
	require.Positive(t, ev.TotalExecTimeMs)
	require.InDelta(t, ev.TotalExecTimeMs/float64(m), ev.MeanExecTimeMs, 1e-9)
	require.Equal(t, 1, second.QueryStats, "nothing but the workload ran between the polls")

	// The same poll again with no new workload publishes no query statistics.
	third := pollAndWait(t, p, s)
	require.Zero(t, third.QueryStats)
	require.Len(t, s.queryStats(isWorkload), 2)

	for _, e := range s.queryStats(nil) {
		require.NotContains(t, e.Query, postgres.MarkerPrefix, "the collector's own statement was published: %+v", e)
	}
}

func TestPollEvictedEntryIsRebaselined(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t, "create table orders (id bigint primary key, note text)")
	p, s := newTestPoller(t, db)
	ctx := context.Background()

	runWorkload(t, db, 5)
	pollAndWait(t, p, s)
	require.Empty(t, s.queryStats(isWorkloadDelta), "the first poll publishes the history only")

	// Drop just this entry, as an eviction would, and let it come back with
	// fewer calls than before.
	_, err := db.Pool.Exec(ctx, `select pg_stat_statements_reset(userid, dbid, queryid)
  from pg_stat_statements
 where dbid = (select oid from pg_database where datname = current_database()) and query = $1`, workloadSQL)
	require.NoError(t, err)
	runWorkload(t, db, 2)
	res := pollAndWait(t, p, s)
	require.Empty(t, s.queryStats(isWorkloadDelta), "an entry whose calls went down must be re-baselined, not reported")
	require.Positive(t, res.TableStats)

	runWorkload(t, db, 4)
	pollAndWait(t, p, s)
	got := s.queryStats(isWorkloadDelta)
	require.Len(t, got, 1)
	require.Equal(t, int64(4), got[0].Calls)
}

func TestPollWithoutPgStatStatements(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		"drop extension if exists pg_stat_statements",
		"create table orders (id bigint primary key, note text)",
	)
	logs := &logtest.Buffer{}
	d := deps(t, []config.Target{{Name: "main", DSN: db.URL}}, time.Hour, logs)
	s := subscribe(t, d.Bus)
	p := newPoller(d, "main", d.Config.Collector)
	t.Cleanup(p.conn.close)

	for range 3 {
		runWorkload(t, db, 2)
		res := pollAndWait(t, p, s)
		require.Zero(t, res.QueryStats)
		require.Equal(t, 1, res.TableStats)
	}
	require.Equal(t, 1, logs.Count("pg_stat_statements unavailable"), "warn once, not per poll; logs:\n%s", logs)
	require.Contains(t, logs.String(), `"level":"WARN"`)
	require.Contains(t, logs.String(), `"target":"main"`)
	require.Empty(t, s.queryStats(nil))

	// Installing it later publishes the history the server kept (its
	// library was loaded all along), then deltas.
	db.Exec(t, "create extension pg_stat_statements")
	runWorkload(t, db, 2)
	pollAndWait(t, p, s)
	hist := s.queryStats(isWorkload)
	require.Len(t, hist, 1)
	require.Equal(t, events.WindowHistoryStatsReset, hist[0].WindowSource)
	require.Equal(t, int64(3*2+2), hist[0].Calls, "every call the server counted is in the history")
	runWorkload(t, db, 3)
	pollAndWait(t, p, s)
	got := s.queryStats(isWorkloadDelta)
	require.Len(t, got, 1)
	require.Equal(t, int64(3), got[0].Calls)
	require.False(t, strings.Contains(logs.String(), db.URL), "logs must not carry the DSN")
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	s := 30 * time.Second
	require.Equal(t, s, backoff(s, 1))
	require.Equal(t, 2*s, backoff(s, 2))
	require.Equal(t, 4*s, backoff(s, 3))
	require.Equal(t, maxBackoff, backoff(s, 10))
	require.Equal(t, maxBackoff, backoff(s, 1000))
	require.Equal(t, time.Hour, backoff(time.Hour, 5), "an interval above the cap is kept")
}

// A poll whose query had to dial and was refused with
// too_many_connections (53300) gets pgx's bare server error, not the
// budget's ErrNoHeadroom (pkg/postgres shows a pool's query getting it).
// The server's budget has logged its back-off: the poll is deferred to
// the next interval at debug level, with no "poll failed" warning of its
// own. Here the refusal is the server's own answer to a role over its
// CONNECTION LIMIT.
func TestPollRefusedWithTooManyConnectionsIsDeferredQuietly(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	role := pgtest.RoleName(t, db, "ipt_poll_")
	db.Exec(t, "create role "+postgres.Ident(role)+" login connection limit 1")
	roleURL := db.URLAs(t, role)
	ctx := context.Background()
	held, err := pgx.Connect(ctx, roleURL)
	require.NoError(t, err)
	defer held.Close(ctx)
	_, refused := pgx.Connect(ctx, roleURL)
	require.Equal(t, postgres.TooManyConnections, postgres.SQLState(refused), "the server's refusal: %v", refused)

	logs := &logtest.Buffer{}
	d := deps(t, []config.Target{{Name: "main", DSN: roleURL}}, time.Minute, nil)
	p := newPoller(d, "main", d.Config.Collector)
	p.log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// As poll returns it: the parts' errors joined.
	wait := p.failed(errors.Join(refused, nil, nil), time.Minute)
	require.Equal(t, time.Minute, wait, "a deferred poll waits for the next interval, not a failure back-off")
	require.Equal(t, 1, p.failures)
	require.Zero(t, logs.Count("poll failed"), "a refusal for lack of slots was logged as a failed poll:\n%s", logs)
	require.Equal(t, 1, logs.Count("poll deferred"), "%s", logs)

	// Any other error is still a failed poll, with its back-off.
	wait = p.failed(errors.New("read tables: boom"), time.Minute)
	require.Equal(t, backoff(time.Minute, 2), wait)
	require.Equal(t, 1, logs.Count("poll failed"), "%s", logs)
}

func TestPollDatabaseResetIsRebaselined(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t, "create table orders (id bigint primary key, note text)")
	p, s := newTestPoller(t, db)
	ctx := context.Background()

	runWorkload(t, db, 6)
	pollAndWait(t, p, s)
	runWorkload(t, db, 3)
	pollAndWait(t, p, s)
	require.Len(t, s.queryStats(isWorkloadDelta), 1)

	// Reset every entry of this database only (never the whole server:
	// other tests share it): everything restarts from zero.
	_, err := db.Pool.Exec(ctx, "select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)")
	require.NoError(t, err)
	runWorkload(t, db, 2)
	res := pollAndWait(t, p, s)
	require.Len(t, s.queryStats(isWorkloadDelta), 1, "after a reset the statement is a baseline: no negative or partial delta")
	require.Positive(t, res.TableStats)

	runWorkload(t, db, 5)
	pollAndWait(t, p, s)
	got := s.queryStats(isWorkloadDelta)
	require.Len(t, got, 2)
	require.Equal(t, int64(5), got[1].Calls, "the first delta after the reset counts only the new calls")
	for _, e := range got {
		require.Positive(t, e.Calls)
		require.GreaterOrEqual(t, e.TotalExecTimeMs, 0.0)
	}
}
