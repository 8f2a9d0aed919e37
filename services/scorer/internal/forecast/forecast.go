// Package forecast finds statements whose load recurs at the same hour of
// the day or of the week (a nightly batch, a Monday report) in their
// hourly history. The model is deliberately simple, so that every number
// it gives can be checked by hand (docs/scorer.md, "Predictive indexing"):
//
//   - the history is one value per UTC hour (the statement's execution
//     time in that hour), with the hours nobody observed marked unknown;
//   - it is folded onto the candidate period (24 or 168 hours): the mean
//     of each hour bucket over the periods observed;
//   - the hot buckets are those at least half as busy as the busiest one;
//     the amplitude is the busiest bucket's mean over the mean hour;
//   - every observed period votes: its busiest hour falls on a hot bucket
//     (or next to one) or it does not; the confidence is the share of
//     periods that do.
//
// A period is accepted with enough periods observed, a high enough
// confidence and a large enough amplitude; daily wins over weekly.
package forecast

import (
	"fmt"
	"time"
)

// Periods the detector tries, shortest first.
const (
	Daily  = 24
	Weekly = 7 * 24
)

// epoch is a Monday, midnight UTC: hour buckets and periods count from it,
// so bucket 0 of the weekly period is Monday 00:00 UTC.
var epoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// Series is one statement's hourly load.
type Series struct {
	// Start is the first hour, UTC, on the hour.
	Start time.Time
	// Load is the execution time (ms) of each hour from Start.
	Load []float64
	// Observed says whether each hour was watched at all; an unobserved
	// hour is unknown, not zero.
	Observed []bool
}

// Params are the acceptance thresholds.
type Params struct {
	// MinPeriods is the number of observed periods needed to judge one.
	MinPeriods int
	// MinConfidence is the share of observed periods whose busiest hour
	// must fall on the peak.
	MinConfidence float64
	// MinAmplitude is how many times the mean hour the peak must be.
	MinAmplitude float64
}

// Peak is the recurring peak of one statement in one period.
type Peak struct {
	// PeriodHours is 24 (daily) or 168 (weekly).
	PeriodHours int
	// Phase is the hour of the period the main peak starts in: from
	// midnight UTC (daily) or Monday 00:00 UTC (weekly).
	Phase int
	// Width is the main peak's length in hours.
	Width int
	// Hot are the hour buckets of the period at least half as busy as the
	// busiest one, ascending (the main peak's among them).
	Hot []int
	// Amplitude is the busiest bucket's mean load over the mean hour.
	Amplitude float64
	// Confidence is Hits / Periods.
	Confidence float64
	// Periods is the number of observed periods; Hits those whose busiest
	// hour fell on a hot bucket or next to one.
	Periods, Hits int
	// PeakMs is the busiest bucket's mean load (ms per hour), MeanMs the
	// mean observed hour's.
	PeakMs, MeanMs float64
}

// Enough reports whether p was judged on at least min periods.
func (p Peak) Enough(min int) bool { return p.Periods >= min }

// Accepted reports whether p passes the thresholds.
func (p Peak) Accepted(pr Params) bool {
	return p.Enough(pr.MinPeriods) && p.Confidence >= pr.MinConfidence && p.Amplitude >= pr.MinAmplitude
}

// Name is "daily" or "weekly".
func (p Peak) Name() string { return PeriodName(p.PeriodHours) }

// PeriodName names a period length in hours.
func PeriodName(hours int) string {
	switch hours {
	case Daily:
		return "daily"
	case Weekly:
		return "weekly"
	}
	return fmt.Sprintf("%dh", hours)
}

// Detect returns the accepted peak of s, daily before weekly, and whether
// there is one.
func Detect(s Series, pr Params) (Peak, bool) {
	for _, period := range []int{Daily, Weekly} {
		if p, ok := Evaluate(s, period); ok && p.Accepted(pr) {
			return p, true
		}
	}
	return Peak{}, false
}

// bucket is the hour bucket of t in a period of the given hours, and
// occurrence the index of the period t falls in.
func bucket(t time.Time, period int) (b int, occurrence int64) {
	h := int64(t.Sub(epoch) / time.Hour)
	return int(h % int64(period)), h / int64(period)
}

// Evaluate folds s onto period and returns its numbers; false when s has
// no load at all.
func Evaluate(s Series, period int) (Peak, bool) {
	sums := make([]float64, period)
	counts := make([]int, period)
	var total float64
	var observed int
	type occ struct {
		max    float64
		argmax int
		seen   map[int]bool
	}
	occs := map[int64]*occ{}
	var order []int64
	start := s.Start.UTC().Truncate(time.Hour)
	for i, v := range s.Load {
		if i < len(s.Observed) && !s.Observed[i] {
			continue
		}
		b, k := bucket(start.Add(time.Duration(i)*time.Hour), period)
		sums[b] += v
		counts[b]++
		total += v
		observed++
		o := occs[k]
		if o == nil {
			o = &occ{argmax: -1, seen: map[int]bool{}}
			occs[k] = o
			order = append(order, k)
		}
		o.seen[b] = true
		if v > o.max {
			o.max, o.argmax = v, b
		}
	}
	if observed == 0 || total <= 0 {
		return Peak{}, false
	}
	p := Peak{PeriodHours: period, MeanMs: total / float64(observed)}
	means := make([]float64, period)
	best := -1
	for b := range period {
		if counts[b] == 0 {
			continue
		}
		means[b] = sums[b] / float64(counts[b])
		if best < 0 || means[b] > means[best] {
			best = b
		}
	}
	p.PeakMs = means[best]
	p.Amplitude = p.PeakMs / p.MeanMs
	hot := make([]bool, period)
	for b := range period {
		if counts[b] > 0 && means[b] >= p.PeakMs/2 {
			hot[b] = true
			p.Hot = append(p.Hot, b)
		}
	}
	// The main peak: the run of hot buckets around the busiest one.
	p.Phase = best
	for n := 1; n < period && hot[(p.Phase-1+period)%period]; n++ {
		p.Phase = (p.Phase - 1 + period) % period
	}
	for p.Width < period && hot[(p.Phase+p.Width)%period] {
		p.Width++
	}
	near := func(b int) bool { return hot[b] || hot[(b+1)%period] || hot[(b-1+period)%period] }
	for _, k := range order {
		o := occs[k]
		// A period is judged when one of its hot hours was observed.
		seenHot := false
		for _, b := range p.Hot {
			seenHot = seenHot || o.seen[b]
		}
		if !seenHot {
			continue
		}
		p.Periods++
		if o.max > 0 && near(o.argmax) {
			p.Hits++
		}
	}
	if p.Periods > 0 {
		p.Confidence = float64(p.Hits) / float64(p.Periods)
	}
	return p, true
}

// Next returns the start and end of the peak that is running at now or,
// when none is, of the next one: the hot buckets' run that contains now,
// or the first run to start after now.
func (p Peak) Next(now time.Time) (start, end time.Time) {
	if len(p.Hot) == 0 || p.PeriodHours <= 0 {
		return time.Time{}, time.Time{}
	}
	hot := make([]bool, p.PeriodHours)
	for _, b := range p.Hot {
		hot[b] = true
	}
	if len(p.Hot) == p.PeriodHours {
		return now, now.Add(time.Duration(p.PeriodHours) * time.Hour)
	}
	h := now.UTC().Truncate(time.Hour)
	isHot := func(t time.Time) bool { b, _ := bucket(t, p.PeriodHours); return hot[b] }
	if isHot(h) {
		start = h
		for isHot(start.Add(-time.Hour)) {
			start = start.Add(-time.Hour)
		}
	} else {
		start = h.Add(time.Hour)
		for !isHot(start) {
			start = start.Add(time.Hour)
		}
	}
	end = start.Add(time.Hour)
	for isHot(end) {
		end = end.Add(time.Hour)
	}
	return start, end
}

// PhaseString names the main peak's start: "02:00 UTC" (daily) or
// "Mon 02:00 UTC" (weekly).
func (p Peak) PhaseString() string {
	t := epoch.Add(time.Duration(p.Phase) * time.Hour)
	if p.PeriodHours == Weekly {
		return t.Format("Mon 15:04 UTC")
	}
	return t.Format("15:04 UTC")
}
