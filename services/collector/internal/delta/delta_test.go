package delta

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
)

var (
	t0    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t1    = t0.Add(30 * time.Second)
	t2    = t1.Add(30 * time.Second)
	reset = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
)

const selectQ = "SELECT * FROM contacts WHERE email = $1"

func row(id string, user uint32, calls int64, ms float64) Row {
	return Row{QueryID: id, UserID: user, TopLevel: true, Query: selectQ, Counters: Counters{
		Calls: calls, TotalExecTimeMs: ms, Rows: calls, SharedBlksHit: 10 * calls, SharedBlksRead: calls / 2,
	}}
}

func sample(at time.Time, rows ...Row) Sample { return Sample{At: at, StatsReset: reset, Rows: rows} }

func TestFirstPollPublishesTheHistory(t *testing.T) {
	evs, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50), row("42", 20, 10, 5)))
	require.Equal(t, []*events.QueryStatObserved{{
		Target: "main", QueryID: "42", Query: selectQ, WindowStart: reset, WindowEnd: t0,
		Calls: 110, TotalExecTimeMs: 55, MeanExecTimeMs: 0.5, Rows: 110, SharedBlksHit: 1100, SharedBlksRead: 55,
		WindowSource: events.WindowHistoryStatsReset,
	}}, evs, "the first poll publishes what the server already holds, since its last reset")
	require.Equal(t, 1, b.Statements())

	// After it, deltas as before: nothing counted twice.
	evs, _ = Compute("main", b, sample(t1, row("42", 10, 103, 51), row("42", 20, 10, 5)))
	require.Len(t, evs, 1)
	require.Equal(t, int64(3), evs[0].Calls)
	require.Equal(t, t0, evs[0].WindowStart)
	require.Equal(t, events.WindowDelta, evs[0].WindowSource)
}

func TestHistoryWindowPerServerVersion(t *testing.T) {
	// PostgreSQL 17+: the earliest stats_since of the statement's rows.
	a, b := row("42", 10, 5, 5), row("42", 20, 5, 5)
	a.StatsSince, b.StatsSince = reset.Add(48*time.Hour), reset.Add(24*time.Hour)
	evs, _ := Compute("main", nil, sample(t0, a, b))
	require.Len(t, evs, 1)
	require.Equal(t, reset.Add(24*time.Hour), evs[0].WindowStart)
	require.Equal(t, events.WindowHistoryStatsSince, evs[0].WindowSource)

	// No stats_since and no stats_reset: the window is unknown.
	evs, _ = Compute("main", nil, Sample{At: t0, Rows: []Row{row("42", 10, 5, 5)}})
	require.Len(t, evs, 1)
	require.Equal(t, events.WindowHistoryUnknown, evs[0].WindowSource)
	require.Equal(t, t0, evs[0].WindowStart, "an unknown window starts where it ends")
	require.Equal(t, int64(5), evs[0].Calls)
}

func TestFirstSightAfterTheFirstPollCountsInFull(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	evs, b := Compute("main", b, sample(t1, row("42", 10, 100, 50), row("43", 10, 7, 1)))
	require.Equal(t, []*events.QueryStatObserved{{
		Target: "main", QueryID: "43", Query: selectQ, WindowStart: t0, WindowEnd: t1,
		Calls: 7, TotalExecTimeMs: 1, MeanExecTimeMs: 1.0 / 7, Rows: 7, SharedBlksHit: 70, SharedBlksRead: 3,
	}}, evs, "a statement absent at the previous poll made all its calls since")
	require.Equal(t, 2, b.Statements())

	evs, _ = Compute("main", b, sample(t2, row("42", 10, 100, 50), row("43", 10, 9, 2)))
	require.Len(t, evs, 1)
	require.Equal(t, int64(2), evs[0].Calls, "and from then on deltas")
	require.Equal(t, t1, evs[0].WindowStart)
}

func TestFirstSightStatsSinceBeforeThePreviousPollIsABaseline(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	confirmed, early := row("43", 10, 7, 1), row("44", 10, 9, 1)
	confirmed.StatsSince, early.StatsSince = t0.Add(time.Second), t0.Add(-time.Hour)
	evs, _ := Compute("main", b, sample(t1, row("42", 10, 100, 50), confirmed, early))
	require.Len(t, evs, 1, "44 was counting before the previous poll (unread then): a baseline")
	require.Equal(t, "43", evs[0].QueryID)
	require.Equal(t, int64(7), evs[0].Calls)
}

func TestNormalDelta(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	evs, _ := Compute("main", b, sample(t1, row("42", 10, 130, 62)))
	require.Equal(t, []*events.QueryStatObserved{{
		Target: "main", QueryID: "42", Query: selectQ, WindowStart: t0, WindowEnd: t1,
		Calls: 30, TotalExecTimeMs: 12, MeanExecTimeMs: 0.4, Rows: 30, SharedBlksHit: 300, SharedBlksRead: 15,
	}}, evs)
}

func TestNoCallsNoEvent(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	evs, b := Compute("main", b, sample(t1, row("42", 10, 100, 50)))
	require.Empty(t, evs)
	evs, _ = Compute("main", b, sample(t2, row("42", 10, 101, 51)))
	require.Len(t, evs, 1)
	require.Equal(t, t1, evs[0].WindowStart, "the window starts at the previous poll")
	require.Equal(t, int64(1), evs[0].Calls)
}

func TestStatsResetRebaselines(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50), row("43", 10, 5, 5)))
	after := sample(t1, row("42", 10, 150, 60), row("43", 10, 2, 1))
	after.StatsReset = reset.Add(time.Hour)
	evs, b := Compute("main", b, after)
	require.Empty(t, evs, "a reset must re-baseline every statement, even one whose calls look higher")

	evs, _ = Compute("main", b, Sample{At: t2, StatsReset: after.StatsReset, Rows: []Row{row("42", 10, 160, 70), row("43", 10, 4, 2)}})
	require.Len(t, evs, 2)
	require.Equal(t, int64(10), evs[0].Calls)
	require.Equal(t, int64(2), evs[1].Calls)
}

func TestEvictedAndBackRebaselinesThatEntry(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50), row("43", 10, 10, 10)))
	// 42 was evicted and came back with fewer calls; 43 moved normally.
	evs, b := Compute("main", b, sample(t1, row("42", 10, 3, 1), row("43", 10, 12, 11)))
	require.Len(t, evs, 1, "only 43 may produce an event: %+v", evs)
	require.Equal(t, "43", evs[0].QueryID)
	require.Equal(t, int64(2), evs[0].Calls)

	// From the new baseline on, 42 counts again, from 3.
	evs, _ = Compute("main", b, sample(t2, row("42", 10, 8, 3), row("43", 10, 12, 11)))
	require.Len(t, evs, 1)
	require.Equal(t, "42", evs[0].QueryID)
	require.Equal(t, int64(5), evs[0].Calls)
	require.Equal(t, t1, evs[0].WindowStart)
}

func TestAnyCounterDownIsAnEviction(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	back := row("42", 10, 120, 10) // more calls, but less time: a new entry
	evs, _ := Compute("main", b, sample(t1, back))
	require.Empty(t, evs, "a counter going down must never yield a negative delta: %+v", evs)
}

func TestMarkerAndUtilityExcluded(t *testing.T) {
	own := row("7", 10, 1, 1)
	own.Query = "/* indexpilot:collector */ select queryid from pg_stat_statements where dbid = $1"
	begin := row("8", 10, 1, 1)
	begin.Query = "BEGIN"
	_, b := Compute("main", nil, sample(t0, own, begin))
	require.Zero(t, b.Statements(), "excluded statements are not even baselined")

	own.Calls, begin.Calls = 50, 50
	evs, _ := Compute("main", b, sample(t1, own, begin))
	require.Empty(t, evs)
}

func TestMarkedRowOfASharedQueryIDIsDropped(t *testing.T) {
	// Comments do not change a query id: our marked copy and the
	// application's statement can share one. Only the application's counts.
	app := row("42", 10, 100, 50)
	own := row("42", 20, 100, 50)
	own.Query = "/* indexpilot:scorer */ " + selectQ
	_, b := Compute("main", nil, sample(t0, app, own))
	app.Calls, own.Calls = 110, 500
	evs, _ := Compute("main", b, sample(t1, app, own))
	require.Len(t, evs, 1)
	require.Equal(t, int64(10), evs[0].Calls)
	require.Equal(t, selectQ, evs[0].Query)
}

func TestTwoUsersOfOneQueryIDAreSummed(t *testing.T) {
	a0, b0 := row("42", 10, 100, 50), row("42", 20, 40, 20)
	nested := row("42", 10, 5, 5)
	nested.TopLevel = false
	_, base := Compute("main", nil, sample(t0, a0, b0, nested))

	a1, b1 := row("42", 10, 110, 55), row("42", 20, 60, 30)
	nested.Calls, nested.TotalExecTimeMs, nested.Rows = 6, 6, 6
	evs, _ := Compute("main", base, sample(t1, b1, nested, a1))
	require.Len(t, evs, 1, "one event per query id: %+v", evs)
	ev := evs[0]
	require.Equal(t, int64(10+20+1), ev.Calls)
	require.InDelta(t, 5+10+1, ev.TotalExecTimeMs, 1e-9)
	require.InDelta(t, 16.0/31.0, ev.MeanExecTimeMs, 1e-9)
	require.Equal(t, int64(31), ev.Rows)
}

func TestNewUserOfAKnownStatementCountsInFull(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	evs, _ := Compute("main", b, sample(t1, row("42", 10, 104, 52), row("42", 20, 1000, 900)))
	require.Len(t, evs, 1)
	require.Equal(t, int64(1004), evs[0].Calls, "the new user's row was not there at the previous poll: all its calls are new")
}

func TestRestoreKeepsUnpublishedCalls(t *testing.T) {
	_, b0 := Compute("main", nil, sample(t0, row("42", 10, 100, 50), row("43", 10, 1, 1)))
	evs, b1 := Compute("main", b0, sample(t1, row("42", 10, 110, 55), row("43", 10, 2, 2)))
	require.Len(t, evs, 2)
	b1.Restore(b0, evs[0]) // publishing 42 failed

	evs, _ = Compute("main", b1, sample(t2, row("42", 10, 115, 56), row("43", 10, 3, 3)))
	require.Len(t, evs, 2)
	require.Equal(t, int64(15), evs[0].Calls, "42 reports the unpublished window too")
	require.Equal(t, t0, evs[0].WindowStart)
	require.Equal(t, int64(1), evs[1].Calls, "43 was published: no double count")
	require.Equal(t, t1, evs[1].WindowStart)
}

func TestNoQueryIDIgnored(t *testing.T) {
	hidden := row("", 30, 5, 5)
	hidden.Query = "<insufficient privilege>"
	_, b := Compute("main", nil, sample(t0, hidden))
	require.Zero(t, b.Statements())
}

func TestStatsSinceChangeRebaselinesEvenWithHigherCounters(t *testing.T) {
	since0 := t0.Add(-time.Hour)
	r := row("42", 10, 100, 50)
	r.StatsSince = since0
	_, b := Compute("main", nil, sample(t0, r))

	// Evicted and back with more calls than before: on PostgreSQL 17 the
	// new stats_since gives it away, so this is a baseline, not +20 calls.
	back := row("42", 10, 120, 60)
	back.StatsSince = t0.Add(10 * time.Second)
	evs, b := Compute("main", b, sample(t1, back))
	require.Empty(t, evs, "a changed stats_since must rebaseline the row, got %+v", evs)

	more := row("42", 10, 125, 61)
	more.StatsSince = back.StatsSince
	evs, _ = Compute("main", b, sample(t2, more))
	require.Len(t, evs, 1)
	require.Equal(t, int64(5), evs[0].Calls)
}

func TestRestoreKeepsAnUnpublishedHistoryAndFirstSight(t *testing.T) {
	evs, b0 := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	require.Len(t, evs, 1)
	b0.Restore(nil, evs[0]) // publishing the history failed

	evs, b1 := Compute("main", b0, sample(t1, row("42", 10, 101, 51), row("43", 10, 4, 4)))
	require.Len(t, evs, 2)
	require.Equal(t, int64(101), evs[0].Calls, "the history is published again, with the calls since")
	require.Equal(t, reset, evs[0].WindowStart)
	require.Equal(t, events.WindowHistoryStatsReset, evs[0].WindowSource)
	require.Equal(t, int64(4), evs[1].Calls)
	b1.Restore(b0, evs[1]) // publishing the first sight of 43 failed

	evs, _ = Compute("main", b1, sample(t2, row("42", 10, 101, 51), row("43", 10, 6, 5)))
	require.Len(t, evs, 1)
	require.Equal(t, "43", evs[0].QueryID)
	require.Equal(t, int64(6), evs[0].Calls, "the unpublished first sight counts again in full")
	require.Equal(t, t0, evs[0].WindowStart)
}
