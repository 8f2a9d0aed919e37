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

func TestFirstSightIsABaseline(t *testing.T) {
	evs, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	require.Empty(t, evs, "the first poll must only baseline")
	require.Equal(t, 1, b.Statements())

	// A statement first seen at a later poll is a baseline too.
	evs, b = Compute("main", b, sample(t1, row("42", 10, 100, 50), row("43", 10, 7, 1)))
	require.Empty(t, evs, "nothing changed for 42 and 43 is new: got %+v", evs)
	require.Equal(t, 2, b.Statements())
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

func TestNewUserOfAKnownStatementIsBaselinedAlone(t *testing.T) {
	_, b := Compute("main", nil, sample(t0, row("42", 10, 100, 50)))
	evs, _ := Compute("main", b, sample(t1, row("42", 10, 104, 52), row("42", 20, 1000, 900)))
	require.Len(t, evs, 1)
	require.Equal(t, int64(4), evs[0].Calls, "the new user's row is a baseline, the old one still counts")
}

func TestRestoreKeepsUnpublishedCalls(t *testing.T) {
	_, b0 := Compute("main", nil, sample(t0, row("42", 10, 100, 50), row("43", 10, 1, 1)))
	evs, b1 := Compute("main", b0, sample(t1, row("42", 10, 110, 55), row("43", 10, 2, 2)))
	require.Len(t, evs, 2)
	b1.Restore(b0, "42") // publishing 42 failed

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
