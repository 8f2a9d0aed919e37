package collector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector/internal/pgstat"
)

// slowSQL always exceeds the 1 s statement_timeout of timeoutLoop: each of
// the 20 rows with k = 42 sleeps 0.1 s (the server sleeps, no CPU burnt).
const slowSQL = "select id from big where k = 42 and pg_sleep(0.1) is not null"

// timeoutLoop runs slowSQL with the simple protocol (its constants inline)
// on its own connection under statement_timeout = 1s until ctx ends, and
// returns the number of runs that timed out.
func timeoutLoop(ctx context.Context, t *testing.T, url string) <-chan int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "set statement_timeout = '1s'")
	require.NoError(t, err)
	out := make(chan int, 1)
	go func() {
		defer func() { _ = conn.Close(context.Background()) }()
		n := 0
		for ctx.Err() == nil {
			_, err := conn.Exec(ctx, slowSQL, pgx.QueryExecModeSimpleProtocol)
			if postgres.SQLState(err) == "57014" && !errors.Is(ctx.Err(), context.Canceled) {
				n++
			}
		}
		out <- n
	}()
	return out
}

func TestPollSamplesStatementsThatNeverFinish(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t,
		"create table big (id bigint primary key, k int not null)",
		"insert into big select g, g % 5000 from generate_series(1, 100000) g",
	)
	p, s := newTestPoller(t, db)
	p.settings.ActivityThreshold = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timeouts := timeoutLoop(ctx, t, db.URL)

	isSlow := func(e *events.QueryStatObserved) bool { return e.WindowSource == events.WindowActivity }
	require.Eventually(t, func() bool {
		pollAndWait(t, p, s)
		return len(s.queryStats(isSlow)) >= 2
	}, 60*time.Second, 300*time.Millisecond, "no running statement sampled")
	cancel()
	require.Positive(t, <-timeouts, "the statement must time out")

	var calls int64
	for _, e := range s.queryStats(isSlow) {
		require.Equal(t, "select id from big where k = $1 and pg_sleep($2) is not null", e.Query)
		require.True(t, e.Unfinished)
		require.NotEmpty(t, e.QueryID)
		require.GreaterOrEqual(t, e.MeanExecTimeMs, 100.0, "it ran at least the threshold")
		require.Equal(t, [][]string{{"42", "0.1"}}, e.ParamSamples, "one run per poll at most, its constants in $n order")
		require.False(t, e.WindowStart.After(e.WindowEnd))
		calls += e.Calls
	}
	require.Equal(t, int64(len(s.queryStats(isSlow))), calls, "a run seen at two polls counts once")
	for _, e := range s.queryStats(nil) {
		require.NotContains(t, e.Query, postgres.MarkerPrefix, "the collector's own statement was published: %+v", e)
		require.NotContains(t, e.Query, "statement_timeout")
	}
	// pg_stat_statements never counted it: it always timed out.
	for _, e := range s.queryStats(func(e *events.QueryStatObserved) bool { return !isSlow(e) }) {
		require.NotContains(t, e.Query, "pg_sleep")
	}
}

func TestActivityEventsCountEachRunOnce(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	run := func(pid int32, startAgo time.Duration, text string) pgstat.Running {
		return pgstat.Running{QueryID: "9", Query: text, PID: pid, QueryStart: at.Add(-startAgo), RunningMs: float64(startAgo / time.Millisecond), At: at}
	}
	own := run(3, time.Second, "/* indexpilot:collector */ select 1")
	own.QueryID = "10"
	evs, seen := activityEvents("main", []pgstat.Running{
		run(1, 2*time.Second, "select * from t where a = 5"),
		run(2, 3*time.Second, "select * from t where a = 6"),
		own,
	}, nil)
	require.Len(t, evs, 1, "the collector's own statement is excluded")
	require.Equal(t, &events.QueryStatObserved{Target: "main", QueryID: "9", Query: "select * from t where a = $1",
		WindowStart: at.Add(-3 * time.Second), WindowEnd: at, Calls: 2, TotalExecTimeMs: 5000, MeanExecTimeMs: 2500,
		WindowSource: events.WindowActivity, Unfinished: true, ParamSamples: [][]string{{"5"}, {"6"}}}, evs[0])

	// At the next poll run 1 still runs: counted already; run 4 is new.
	later := at.Add(time.Second)
	r1 := run(1, 3*time.Second, "select * from t where a = 5")
	r1.QueryStart, r1.At = at.Add(-2*time.Second), later
	r4 := run(4, time.Second, "select * from t where a = $1")
	r4.At = later
	evs, _ = activityEvents("main", []pgstat.Running{r1, r4}, seen)
	require.Len(t, evs, 1)
	require.Equal(t, int64(1), evs[0].Calls)
	require.Nil(t, evs[0].ParamSamples, "an extended-protocol text has no values")
	require.Equal(t, "select * from t where a = $1", evs[0].Query)
}
