package scorer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
)

// TestWindowWriteTxns: the server's count is used when it is known and
// does not exceed the write statements' calls; a busier server (other
// databases) or a missing count falls back to the calls, and says so.
func TestWindowWriteTxns(t *testing.T) {
	for _, tc := range []struct {
		name         string
		calls, xacts float64
		known        bool
		want         float64
		basis        string
	}{
		{"transactions of four statements", 400, 100, true, 100, events.WALPerWriteTxn},
		{"one statement a transaction", 400, 400, true, 400, events.WALPerWriteTxn},
		{"a busier server", 400, 5000, true, 400, events.WALPerWriteStatement},
		{"no count", 400, 0, false, 400, events.WALPerWriteStatement},
		{"no transaction in the window", 400, 0, true, 400, events.WALPerWriteStatement},
		{"no write statement", 0, 50, true, 0, events.WALPerWriteStatement},
	} {
		got, basis := windowWriteTxns(tc.calls, tc.xacts, tc.known)
		require.Equal(t, tc.want, got, tc.name)
		require.Equal(t, tc.basis, basis, tc.name)
	}
}

// TestXactIncrease: the counter's increase from the first poll to the
// last; unknown with fewer than two polls, a poll without it, or a
// counter that went back.
func TestXactIncrease(t *testing.T) {
	p := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name  string
		polls []*int64
		want  float64
		known bool
	}{
		{"two polls", []*int64{p(1000), p(1250)}, 250, true},
		{"three polls", []*int64{p(1000), p(1100), p(1250)}, 250, true},
		{"one poll", []*int64{p(1000)}, 0, false},
		{"a poll without it", []*int64{nil, p(1100), p(1250)}, 0, false},
		{"went back", []*int64{p(1000), p(900)}, 0, false},
	} {
		got, known := xactIncrease(tc.polls)
		require.Equal(t, tc.known, known, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
}

// TestRetainedXactNext: replayed table statistics give one counter per
// poll of the target in the window, in time order.
func TestRetainedXactNext(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p := func(v int64) *int64 { return &v }
	ts := func(target, table string, i int, next *int64) *events.TableStatObserved {
		return &events.TableStatObserved{Target: target, Schema: "public", Table: table,
			ObservedAt: at.Add(time.Duration(i) * time.Minute), ServerXactNext: next}
	}
	r := &Retained{TableStats: []*events.TableStatObserved{
		ts("main", "b", 2, p(300)), ts("main", "a", 1, p(200)), ts("main", "b", 1, nil),
		ts("other", "a", 1, p(9999)), ts("main", "a", 0, p(100)), ts("main", "a", 5, p(900)),
	}}
	got := retainedXactNext(r, "main", at, at.Add(3*time.Minute))
	require.Len(t, got, 2, "polls after from and up to to: minutes 1 and 2")
	require.Equal(t, int64(200), *got[0])
	require.Equal(t, int64(300), *got[1])
}
