package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestHistoryWindowReplacesWhatItCovers stores a first window built from
// pg_stat_statements' history, deltas after it, and the history published
// again by a restarted collector: every call is counted once, in whatever
// order the events arrive, and the evidence names the history window.
func TestHistoryWindowReplacesWhatItCovers(t *testing.T) {
	db, d := setup(t)
	s, err := scorer.New(d)
	require.NoError(t, err)
	ctx := context.Background()

	const q = "SELECT id, status FROM orders WHERE customer_id = $1"
	since := end.Add(-35*24*time.Hour - time.Hour)
	t1, t2, t3 := end.Add(-3*time.Minute), end.Add(-2*time.Minute), end.Add(-time.Minute)
	win := func(start, stop time.Time, calls int64, source string) *events.QueryStatObserved {
		return &events.QueryStatObserved{Target: "main", QueryID: "101", Query: q, WindowStart: start, WindowEnd: stop,
			Calls: calls, TotalExecTimeMs: float64(calls) * 3, MeanExecTimeMs: 3, Rows: calls, WindowSource: source}
	}
	before := win(since.Add(-2*time.Hour), since.Add(-time.Hour), 7, "") // before the last reset: kept
	history := win(since, t1, 60, events.WindowHistoryStatsReset)        // first poll
	delta := win(t1, t2, 10, "")                                         // second poll
	again := win(since, t3, 75, events.WindowHistoryStatsReset)          // collector restarted: 60 + 10 + 5
	after := win(t3, end, 4, "")                                         // next poll
	running := win(t1, t1.Add(30*time.Second), 1, events.WindowActivity) // never covered
	running.Unfinished, running.ParamSamples = true, [][]string{{"42"}}
	running.Query = "SELECT id, status FROM orders WHERE customer_id = 42"

	feed(t, s, before, history, delta, running, again, after)
	// Redeliveries of what the restart's history covers change nothing.
	feed(t, s, delta, history)

	sum := func() (n int64) {
		require.NoError(t, db.Pool.QueryRow(ctx, "select coalesce(sum(calls), 0)::bigint from indexpilot.workload_stats where query_id = '101'").Scan(&n))
		return n
	}
	require.Equal(t, int64(7+75+4+1), sum(), "the restart's history replaces the history and the delta it covers")

	// The other order: the later history first, then what it covers.
	_, err = db.Pool.Exec(ctx, "delete from indexpilot.workload_stats")
	require.NoError(t, err)
	feed(t, s, again, history, delta, before, after, running)
	require.Equal(t, int64(7+75+4+1), sum(), "a covered window arriving late is dropped")

	d.Config.Scorer.StorageBudgetMB = 1024
	r, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r))
	ev := r.Chosen[0].Statements[0]
	require.Equal(t, int64(75+4), ev.Calls, "the scoring window holds the history and the delta after it; "+
		"a running sample of a statement pg_stat_statements has counts no call (a run that finished is in both)")
	require.Equal(t, "history since 2026-10-21, 35 days", ev.Window)
	require.Equal(t, q, ev.Query, "the text of pg_stat_statements comes before a running sample's")
	require.Equal(t, since, r.WindowStart, "the window reaches back to the history's start")

	// A replay of the same events from the bus counts the same.
	rr, err := s.Score(ctx, "main", scorer.Options{Retained: &scorer.Retained{
		QueryStats: []*events.QueryStatObserved{before, history, delta, running, again, after, delta},
	}})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(rr))
	require.Equal(t, int64(7+75+4), rr.Chosen[0].Statements[0].Calls, "the replay has no 24 h window: all but what is covered")
	require.Equal(t, ev.Window, rr.Chosen[0].Statements[0].Window)
}

// TestStatementThatNeverFinishesIsWorkload: a statement only ever seen
// running in pg_stat_activity (it times out, so pg_stat_statements never
// has it) is scored on its sampled runs, and carries their parameters.
func TestStatementThatNeverFinishesIsWorkload(t *testing.T) {
	db, d := setup(t)
	s, err := scorer.New(d)
	require.NoError(t, err)
	d.Config.Scorer.StorageBudgetMB = 1024
	run := func(at time.Time, value string) *events.QueryStatObserved {
		return &events.QueryStatObserved{Target: "main", QueryID: "301", Query: "SELECT note FROM orders WHERE customer_id = $1",
			WindowStart: at.Add(-2 * time.Second), WindowEnd: at, Calls: 1, TotalExecTimeMs: 2000, MeanExecTimeMs: 2000,
			WindowSource: events.WindowActivity, Unfinished: true, ParamSamples: [][]string{{value}}}
	}
	feed(t, s, run(end.Add(-time.Minute), "7"), run(end, "11"))
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r))
	ev := r.Chosen[0].Statements[0]
	require.Equal(t, int64(2), ev.Calls)
	require.Equal(t, "running (pg_stat_activity)", ev.Window)
	var samples string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"select string_agg(param_samples::text, ' ' order by window_end) from indexpilot.workload_stats where query_id = '301'").Scan(&samples))
	require.Equal(t, `[["7"]] [["11"]]`, samples)
}

// TestUnknownHistoryWindowCoversEverythingBefore: without stats_since or
// stats_reset the history's start is unknown (it equals its end); a later
// one still replaces every earlier window of the statement.
func TestUnknownHistoryWindowCoversEverythingBefore(t *testing.T) {
	db, d := setup(t)
	s, err := scorer.New(d)
	require.NoError(t, err)
	t1, t2, t3 := end.Add(-3*time.Minute), end.Add(-2*time.Minute), end.Add(-time.Minute)
	win := func(start, stop time.Time, calls int64, source string) *events.QueryStatObserved {
		return &events.QueryStatObserved{Target: "main", QueryID: "7", Query: "SELECT 1", WindowStart: start, WindowEnd: stop,
			Calls: calls, TotalExecTimeMs: 1, WindowSource: source}
	}
	first := win(t1, t1, 50, events.WindowHistoryUnknown)
	delta := win(t1, t2, 5, "")
	again := win(t3, t3, 58, events.WindowHistoryUnknown)
	feed(t, s, first, delta, again, delta, first)
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), "select sum(calls)::bigint from indexpilot.workload_stats where query_id = '7'").Scan(&n))
	require.Equal(t, int64(58), n)
}
