// Package policy holds the gatekeeper's rules as pure functions over facts
// the stage gathers, so that each rule is table-tested on its own.
package policy

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// Verdict is a rule's answer: Pass, or the typed reason it stops with.
type Verdict struct {
	Pass   bool
	Reason events.Reason
	Detail string
	// RetryAt, for a deferral, is the earliest time the rule may pass.
	RetryAt time.Time
}

// OK is the passing verdict.
var OK = Verdict{Pass: true}

func stop(r events.Reason, f string, a ...any) Verdict {
	return Verdict{Reason: r, Detail: fmt.Sprintf(f, a...)}
}

// TableFacts describes the candidate's table from the latest statistics.
type TableFacts struct {
	Known            bool
	Indexes          int     // every index of the table now
	PendingIndexes   int     // IndexPilot's approved/building recommendations on it, not yet in the statistics
	AvgRowWidthBytes int64   //
	LiveRows         int64   //
	Writes           int64   // inserts + non-HOT updates + deletes since the statistics began
	OverheadPct      float64 // write overhead of IndexPilot's existing indexes on it
}

// StorageFacts describes a target's storage.
type StorageFacts struct {
	DatabaseBytes   int64 // sum of the table sizes (0: unknown)
	IndexPilotBytes int64 // real sizes of IndexPilot's indexes plus estimates of those not yet built
}

// MinBenefit is the minimum-benefit rule.
func MinBenefit(maxImprovementPct, minPct float64) Verdict {
	if maxImprovementPct < minPct {
		return stop(events.ReasonBelowMinBenefit, "best plan-cost cut %.1f%% is below %.1f%%", maxImprovementPct, minPct)
	}
	return OK
}

// Blocklist rejects a candidate one of whose (statement, definition) pairs
// was reverted. blocked are the blocklisted statement fingerprints for the
// candidate's index key ("*" blocks every statement).
func Blocklist(queryIDs, blocked []string) Verdict {
	set := map[string]bool{}
	for _, b := range blocked {
		set[b] = true
	}
	for _, q := range queryIDs {
		if set[q] || set["*"] {
			return stop(events.ReasonBlocklisted, "the pair (statement %s, this definition) was reverted before", q)
		}
	}
	return OK
}

// EntryOverheadPct is the write overhead one index adds to a written
// table: its entry width over the row width, in percent. An unwritten or
// unknown table costs nothing.
func EntryOverheadPct(estimatedSizeBytes int64, t TableFacts) float64 {
	if !t.Known || t.Writes == 0 || t.LiveRows <= 0 || t.AvgRowWidthBytes <= 0 {
		return 0
	}
	entry := float64(estimatedSizeBytes) / float64(t.LiveRows)
	return 100 * entry / float64(t.AvgRowWidthBytes)
}

// Storage checks the storage budget: IndexPilot's index bytes plus the
// candidate's estimate against an absolute limit and a share of the
// database.
func Storage(estimate int64, s StorageFacts, c config.Storage) Verdict {
	after := float64(s.IndexPilotBytes + estimate)
	if c.MaxMB > 0 && after > c.MaxMB*(1<<20) {
		return stop(events.ReasonStorageBudget, "IndexPilot's indexes would use %.1f MB, above the limit of %.1f MB", after/(1<<20), c.MaxMB)
	}
	if c.MaxPctOfDatabase > 0 && s.DatabaseBytes > 0 {
		pct := 100 * after / float64(s.DatabaseBytes)
		if pct > c.MaxPctOfDatabase {
			return stop(events.ReasonStorageBudget, "IndexPilot's indexes would use %.1f%% of the database, above %.1f%%", pct, c.MaxPctOfDatabase)
		}
	}
	return OK
}

// Write checks the write-performance limits of the candidate's table.
func Write(estimate int64, t TableFacts, c config.WriteLimits) Verdict {
	if c.MaxIndexesPerTable > 0 && t.Indexes+t.PendingIndexes+1 > c.MaxIndexesPerTable {
		return stop(events.ReasonMaxIndexesPerTable, "the table would have %d indexes, above %d", t.Indexes+t.PendingIndexes+1, c.MaxIndexesPerTable)
	}
	if c.MaxOverheadPct > 0 {
		add := EntryOverheadPct(estimate, t)
		if total := t.OverheadPct + add; add > 0 && total > c.MaxOverheadPct {
			return stop(events.ReasonWriteOverhead, "added write overhead on the table would be %.1f%%, above %.1f%%", total, c.MaxOverheadPct)
		}
	}
	return OK
}

// Approval says whether a candidate needs an operator's approval in apply
// mode; approved is whether it already has it.
func Approval(maxImprovementPct float64, estimate int64, approved bool, c config.Approval) Verdict {
	if approved {
		return OK
	}
	if c.AutoApproveMinImprovementPct > 0 && maxImprovementPct < c.AutoApproveMinImprovementPct {
		return stop(events.ReasonAwaitingApproval, "best plan-cost cut %.1f%% is below the auto-approval threshold %.1f%%: run `indexpilot approve`",
			maxImprovementPct, c.AutoApproveMinImprovementPct)
	}
	if c.AutoApproveMaxSizeMB > 0 && float64(estimate) > c.AutoApproveMaxSizeMB*(1<<20) {
		return stop(events.ReasonAwaitingApproval, "estimated size %.1f MB is above the auto-approval limit %.1f MB: run `indexpilot approve`",
			float64(estimate)/(1<<20), c.AutoApproveMaxSizeMB)
	}
	return OK
}

// window is a parsed maintenance window.
type window struct {
	loc        *time.Location
	start, end int // minutes after midnight
	days       map[time.Weekday]bool
}

func parseWindow(w config.Window) (window, error) {
	loc, err := time.LoadLocation(w.TimeZone)
	if err != nil {
		return window{}, err
	}
	start, _ := config.ParseClock(w.Start)
	end, _ := config.ParseClock(w.End)
	days := map[time.Weekday]bool{}
	for _, d := range w.Days {
		for i, n := range config.WeekDays {
			if strings.EqualFold(d, n) {
				days[time.Weekday(i)] = true
			}
		}
	}
	return window{loc: loc, start: start, end: end, days: days}, nil
}

// midnight is the start of t's day in the window's time zone.
func (w window) midnight(t time.Time) time.Time {
	l := t.In(w.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, w.loc)
}

// opening returns the window that starts on day (a midnight) and whether
// one does.
func (w window) opening(day time.Time) (s, e time.Time, ok bool) {
	if len(w.days) > 0 && !w.days[day.Weekday()] {
		return time.Time{}, time.Time{}, false
	}
	at := func(day time.Time, min int) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), min/60, min%60, 0, 0, w.loc)
	}
	s, e = at(day, w.start), at(day, w.end)
	if w.end <= w.start {
		e = at(day.AddDate(0, 0, 1), w.end)
	}
	return s, e, true
}

// Window reports whether now is inside the maintenance window and, when
// not, when it next opens. A window whose end is before its start crosses
// midnight; Days are the days a window starts.
func Window(w config.Window, now time.Time) Verdict {
	if w.Start == "" {
		return OK
	}
	pw, err := parseWindow(w)
	if err != nil {
		return stop(events.ReasonOutsideWindow, "time zone %q: %v", w.TimeZone, err)
	}
	midnight := pw.midnight(now)
	// Windows that started today or yesterday may cover now.
	for _, back := range []int{0, 1} {
		if s, e, ok := pw.opening(midnight.AddDate(0, 0, -back)); ok && !now.Before(s) && now.Before(e) {
			return OK
		}
	}
	for i := 0; i <= 7; i++ {
		if s, _, ok := pw.opening(midnight.AddDate(0, 0, i)); ok && s.After(now) {
			v := stop(events.ReasonOutsideWindow, "outside the maintenance window %s-%s %s; it opens at %s",
				w.Start, w.End, w.TimeZone, s.Format(time.RFC3339))
			v.RetryAt = s
			return v
		}
	}
	return stop(events.ReasonOutsideWindow, "the maintenance window never opens")
}

// lastOpening is the start of the last maintenance window that opens
// before t (within eight days), and whether there is one.
func lastOpening(w config.Window, t time.Time) (time.Time, bool) {
	pw, err := parseWindow(w)
	if err != nil {
		return time.Time{}, false
	}
	midnight := pw.midnight(t)
	for back := 0; back <= 8; back++ {
		if s, _, ok := pw.opening(midnight.AddDate(0, 0, -back)); ok && s.Before(t) {
			return s, true
		}
	}
	return time.Time{}, false
}

// Forecast holds a build wanted for a forecast peak until from, the
// earliest the scorer wants it approved; by is the latest start that
// finishes before the peak. When the maintenance window stays shut from
// from to by, the hold ends when its last opening before from begins
// instead, so that the hold never pushes the build past by while a window
// allows it before. A build past from passes (the window, CPU throttle and
// rate-limit rules still apply after it).
func Forecast(from, by time.Time, summary string, w config.Window, now time.Time) Verdict {
	if !now.Before(from) {
		return OK
	}
	if w.Start != "" {
		if v := Window(w, from); !v.Pass && (v.RetryAt.IsZero() || !v.RetryAt.Before(by)) {
			if s, ok := lastOpening(w, from); ok {
				if !now.Before(s) {
					return OK
				}
				from = s
			}
		}
	}
	v := stop(events.ReasonForecastHold, "%s: held until %s", summary, from.UTC().Format(time.RFC3339))
	v.RetryAt = from
	return v
}

// CPU is the throttle's decision for one target: pct is the current CPU use
// (err when it could not be measured), lastOverload the last time it was
// at or above the threshold, lastApproved the last approval on the target.
func CPU(pct float64, measureErr error, lastOverload, lastApproved *time.Time, now time.Time, c config.CPUThrottle) Verdict {
	if c.Source == config.CPUSourceNone {
		return minDelay(lastApproved, now, c)
	}
	if measureErr != nil {
		v := stop(events.ReasonCPUUnavailable, "CPU could not be measured (%v): builds wait", measureErr)
		return v
	}
	if pct >= c.ThresholdPct {
		v := stop(events.ReasonCPUThrottled, "database CPU at %.0f%%, threshold %.0f%%", pct, c.ThresholdPct)
		v.RetryAt = now.Add(c.Cooldown)
		return v
	}
	if lastOverload != nil && now.Sub(*lastOverload) < c.Cooldown {
		v := stop(events.ReasonCPUCooldown, "database CPU at %.0f%% but it was overloaded %s ago; cooldown %s",
			pct, now.Sub(*lastOverload).Round(time.Second), c.Cooldown)
		v.RetryAt = lastOverload.Add(c.Cooldown)
		return v
	}
	return minDelay(lastApproved, now, c)
}

func minDelay(lastApproved *time.Time, now time.Time, c config.CPUThrottle) Verdict {
	if lastApproved != nil && now.Sub(*lastApproved) < c.MinDelayBetweenBuilds {
		v := stop(events.ReasonMinBuildDelay, "last build approved %s ago; minimum delay %s",
			now.Sub(*lastApproved).Round(time.Second), c.MinDelayBetweenBuilds)
		v.RetryAt = lastApproved.Add(c.MinDelayBetweenBuilds)
		return v
	}
	return OK
}

// Refill returns a bucket's tokens at now, given its tokens at last.
func Refill(tokens float64, last, now time.Time, b config.Bucket) float64 {
	if el := now.Sub(last).Hours(); el > 0 {
		tokens += el * b.PerHour
	}
	return math.Min(tokens, b.Burst)
}

// Take decides whether a bucket with tokens can pay for one build; it
// returns the tokens left and, when it cannot, when it next can.
func Take(tokens float64, now time.Time, b config.Bucket) (left float64, ok bool, retryAt time.Time) {
	if b.PerHour == 0 {
		return tokens, true, time.Time{}
	}
	if tokens >= 1 {
		return tokens - 1, true, time.Time{}
	}
	wait := time.Duration((1 - tokens) / b.PerHour * float64(time.Hour))
	return tokens, false, now.Add(wait)
}
