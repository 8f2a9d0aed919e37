package validate_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/executor/internal/validate"
)

var settings = validate.Settings{MinCalls: 100, MinWait: time.Minute, MaxWait: time.Hour, ImprovedPct: 10, RegressedPct: 10}

func ptr(b bool) *bool { return &b }

func win(calls int64, mean float64) validate.Window {
	return validate.Window{Calls: calls, TotalMs: float64(calls) * mean, Span: time.Hour}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name         string
		stmts        []validate.Statement
		verdict      string
		change       float64
		inconclusive bool
	}{
		{"faster and used", []validate.Statement{{QueryID: "1", Before: win(100, 10), After: win(100, 1), PlanUsesIndex: ptr(true)}},
			events.VerdictImproved, 90, false},
		{"slower", []validate.Statement{{QueryID: "1", Before: win(100, 10), After: win(100, 12), PlanUsesIndex: ptr(true)}},
			events.VerdictRegressed, -20, false},
		{"within thresholds", []validate.Statement{{QueryID: "1", Before: win(100, 10), After: win(100, 9.5)}},
			events.VerdictNoChange, 5, false},
		{"faster but the plan ignores the index", []validate.Statement{{QueryID: "1", Before: win(10, 10), After: win(10, 5), PlanUsesIndex: ptr(false)}},
			events.VerdictNoChange, 50, false},
		{"stopped running", []validate.Statement{{QueryID: "1", Before: win(100, 10), After: win(0, 0), PlanUsesIndex: ptr(true)}},
			events.VerdictNoChange, 0, false},
		{"no baseline", []validate.Statement{{QueryID: "1", After: win(100, 1)}},
			events.VerdictNoChange, 0, true},
		{"weighted by calls after", []validate.Statement{
			{QueryID: "1", Before: win(100, 10), After: win(900, 5), PlanUsesIndex: ptr(true)},
			{QueryID: "2", Before: win(100, 10), After: win(100, 20), PlanUsesIndex: ptr(false)},
		}, events.VerdictImproved, 35, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := validate.Decide(tc.stmts, settings)
			require.Equal(t, tc.verdict, r.Verdict, "%+v", r)
			require.InDelta(t, tc.change, r.ChangePct, 0.001)
			require.Equal(t, tc.inconclusive, r.Inconclusive)
			require.NotEmpty(t, r.Reason)
		})
	}
}

func TestReadyScalesToCallFrequency(t *testing.T) {
	poll := time.Second
	// 100 calls per hour before; 50 seen after: about 30 more minutes.
	st := []validate.Statement{{QueryID: "1", Before: win(100, 1), After: win(50, 1)}}
	ready, next := validate.Ready(st, settings, 10*time.Minute, poll)
	require.False(t, ready)
	require.InDelta(t, (30 * time.Minute).Seconds(), next.Seconds(), 1)

	// A frequent statement is ready as soon as the minimum wait is over.
	st = []validate.Statement{{QueryID: "1", Before: win(100000, 1), After: win(100, 1)}}
	ready, next = validate.Ready(st, settings, 10*time.Second, poll)
	require.False(t, ready)
	require.Equal(t, 50*time.Second, next)
	ready, _ = validate.Ready(st, settings, time.Minute, poll)
	require.True(t, ready)

	// Never more than the maximum wait.
	st = []validate.Statement{{QueryID: "1", Before: win(1, 1)}}
	ready, next = validate.Ready(st, settings, 50*time.Minute, poll)
	require.False(t, ready)
	require.Equal(t, 10*time.Minute, next)
	ready, _ = validate.Ready(st, settings, time.Hour, poll)
	require.True(t, ready)
}
