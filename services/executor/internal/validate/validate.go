// Package validate decides whether an index the executor built helped: it
// compares the targeted statements' mean execution time before and after
// the build (pg_stat_statements deltas as the collector recorded them) and
// whether their plans use the index, and says when there is enough data.
package validate

import (
	"time"

	"github.com/indexpilot/indexpilot/events"
)

// Window is one statement's calls and execution time over a window.
type Window struct {
	Calls   int64
	TotalMs float64
	// Span is how long the window covered (for the call rate).
	Span time.Duration
}

// Mean is the mean execution time, 0 without calls.
func (w Window) Mean() float64 {
	if w.Calls == 0 {
		return 0
	}
	return w.TotalMs / float64(w.Calls)
}

// Statement is one targeted statement's before and after windows and
// whether its plan uses the index now (nil: unknown).
type Statement struct {
	QueryID       string
	Before, After Window
	PlanUsesIndex *bool
}

// Settings are the thresholds (see config.Validation).
type Settings struct {
	MinCalls     int64
	MinWait      time.Duration
	MaxWait      time.Duration
	ImprovedPct  float64
	RegressedPct float64
}

// Ready reports whether the after window is complete sinceBuilt after the
// build: at least MinWait has passed and every statement with a baseline
// has MinCalls calls after, or MaxWait has passed. When it is not, next is
// how long to wait before looking again, scaled to how often the
// statements ran before (the slowest one to reach MinCalls decides),
// within [poll, the remainder of MaxWait].
func Ready(stmts []Statement, s Settings, sinceBuilt, poll time.Duration) (ready bool, next time.Duration) {
	if sinceBuilt >= s.MaxWait {
		return true, 0
	}
	remaining := s.MaxWait - sinceBuilt
	need := s.MinWait - sinceBuilt
	enough := true
	for _, st := range stmts {
		if st.Before.Calls == 0 || st.After.Calls >= s.MinCalls {
			continue
		}
		enough = false
		if st.Before.Span <= 0 {
			need = max(need, remaining)
			continue
		}
		rate := float64(st.Before.Calls) / st.Before.Span.Seconds() // calls per second before
		missing := float64(s.MinCalls - st.After.Calls)
		need = max(need, time.Duration(missing/rate*float64(time.Second)))
	}
	if enough && sinceBuilt >= s.MinWait {
		return true, 0
	}
	return false, min(max(need, poll), remaining)
}

// Result is the verdict and its numbers.
type Result struct {
	Verdict string
	// ChangePct is how much faster the statements that ran both before and
	// after got, weighted by their calls after: 100 × Σ calls_after ×
	// (mean_before − mean_after) / Σ calls_after × mean_before. Negative
	// is slower.
	ChangePct float64
	// PlanUsesIndex is true when some statement's plan uses the index,
	// false when every plannable one does not, nil when none could be
	// planned.
	PlanUsesIndex *bool
	// Comparable is how many statements ran both before and after.
	Comparable int
	// Inconclusive is true when no statement has a baseline: nothing can
	// be said, and the index is never reverted for it.
	Inconclusive bool
	// Reason says in words why.
	Reason string
}

// Decide gives the verdict on stmts.
func Decide(stmts []Statement, s Settings) Result {
	var r Result
	var saved, base float64
	baseline := 0
	for _, st := range stmts {
		if st.PlanUsesIndex != nil && (r.PlanUsesIndex == nil || *st.PlanUsesIndex) {
			v := *st.PlanUsesIndex
			r.PlanUsesIndex = &v
		}
		if st.Before.Calls == 0 {
			continue
		}
		baseline++
		if st.After.Calls == 0 {
			continue
		}
		r.Comparable++
		w := float64(st.After.Calls)
		saved += w * (st.Before.Mean() - st.After.Mean())
		base += w * st.Before.Mean()
	}
	if base > 0 {
		r.ChangePct = 100 * saved / base
	}
	switch {
	case baseline == 0:
		r.Verdict, r.Inconclusive = events.VerdictNoChange, true
		r.Reason = "no targeted statement ran before the build: no baseline"
	case r.Comparable == 0:
		r.Verdict = events.VerdictNoChange
		r.Reason = "the targeted statements stopped running after the build: the index serves nothing"
	case r.ChangePct <= -s.RegressedPct:
		r.Verdict = events.VerdictRegressed
		r.Reason = "the targeted statements got slower"
	case r.ChangePct >= s.ImprovedPct && r.PlanUsesIndex != nil && !*r.PlanUsesIndex:
		r.Verdict = events.VerdictNoChange
		r.Reason = "the statements got faster but no plan uses the index"
	case r.ChangePct >= s.ImprovedPct:
		r.Verdict = events.VerdictImproved
		r.Reason = "the targeted statements got faster"
	default:
		r.Verdict = events.VerdictNoChange
		r.Reason = "the change is within the thresholds"
	}
	return r
}
