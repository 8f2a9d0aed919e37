package forecast_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/services/scorer/internal/forecast"
)

var params = forecast.Params{MinPeriods: 3, MinConfidence: 0.75, MinAmplitude: 3}

// start is a Wednesday, 13:00 UTC: the history does not begin on a
// period's boundary.
var start = time.Date(2026, 10, 7, 13, 0, 0, 0, time.UTC)

// series builds hours of history from start with load(t) for each hour.
func series(hours int, load func(t time.Time) float64) forecast.Series {
	s := forecast.Series{Start: start, Load: make([]float64, hours), Observed: make([]bool, hours)}
	for i := range hours {
		s.Load[i] = load(start.Add(time.Duration(i) * time.Hour))
		s.Observed[i] = true
	}
	return s
}

func TestDailyPeak(t *testing.T) {
	// A nightly batch 02:00-04:00 UTC, a little background load the rest
	// of the day, one night missed.
	s := series(10*24, func(t time.Time) float64 {
		if t.Hour() >= 2 && t.Hour() < 4 && t.Day() != 12 {
			return 5000
		}
		return 10
	})
	p, ok := forecast.Detect(s, params)
	require.True(t, ok)
	require.Equal(t, forecast.Daily, p.PeriodHours)
	require.Equal(t, 2, p.Phase)
	require.Equal(t, 2, p.Width)
	require.Equal(t, "02:00 UTC", p.PhaseString())
	require.Equal(t, 10, p.Periods, "a partly observed first or last day counts when its peak hours were seen")
	require.Equal(t, 9, p.Hits)
	require.InDelta(t, 0.9, p.Confidence, 1e-9)
	require.Greater(t, p.Amplitude, 3.0)

	now := time.Date(2026, 10, 17, 12, 30, 0, 0, time.UTC)
	from, to := p.Next(now)
	require.Equal(t, time.Date(2026, 10, 18, 2, 0, 0, 0, time.UTC), from)
	require.Equal(t, time.Date(2026, 10, 18, 4, 0, 0, 0, time.UTC), to)
	// During the peak, the peak is now.
	from, _ = p.Next(time.Date(2026, 10, 18, 3, 10, 0, 0, time.UTC))
	require.Equal(t, time.Date(2026, 10, 18, 2, 0, 0, 0, time.UTC), from)
}

func TestWeeklyPeak(t *testing.T) {
	// A Monday report at 02:00 UTC, five weeks of history; nothing else.
	s := series(5*7*24, func(t time.Time) float64 {
		if t.Weekday() == time.Monday && t.Hour() == 2 {
			return 90000
		}
		return 0
	})
	daily, ok := forecast.Evaluate(s, forecast.Daily)
	require.True(t, ok)
	require.False(t, daily.Accepted(params), "only one day in seven has the peak: %+v", daily)
	p, ok := forecast.Detect(s, params)
	require.True(t, ok)
	require.Equal(t, forecast.Weekly, p.PeriodHours)
	require.Equal(t, "Mon 02:00 UTC", p.PhaseString())
	require.Equal(t, 1.0, p.Confidence)
	require.InDelta(t, 168.0, p.Amplitude, 1e-9)
	from, to := p.Next(time.Date(2026, 11, 11, 13, 0, 0, 0, time.UTC)) // a Wednesday
	require.Equal(t, time.Date(2026, 11, 16, 2, 0, 0, 0, time.UTC), from)
	require.Equal(t, time.Date(2026, 11, 16, 3, 0, 0, 0, time.UTC), to)
}

func TestWeekdayBusinessHoursIsNotHeldToMonday(t *testing.T) {
	// Monday to Friday 09:00-17:00: weekly, with a peak on each weekday;
	// the next one is tomorrow's, and during one it is now.
	s := series(4*7*24, func(t time.Time) float64 {
		if t.Weekday() >= time.Monday && t.Weekday() <= time.Friday && t.Hour() >= 9 && t.Hour() < 17 {
			return 100
		}
		return 0
	})
	p, ok := forecast.Detect(s, params)
	require.True(t, ok)
	require.Equal(t, forecast.Weekly, p.PeriodHours)
	require.Len(t, p.Hot, 40)
	from, _ := p.Next(time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)) // Wednesday evening
	require.Equal(t, time.Date(2026, 11, 12, 9, 0, 0, 0, time.UTC), from)
	from, _ = p.Next(time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)) // Wednesday noon
	require.Equal(t, time.Date(2026, 11, 11, 9, 0, 0, 0, time.UTC), from)
}

func TestNoiseHasNoPeak(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	noise := series(5*7*24, func(time.Time) float64 { return r.Float64() * 100 })
	_, ok := forecast.Detect(noise, params)
	require.False(t, ok, "uniform noise")

	// Noise plus one huge spike: the amplitude is there, the recurrence
	// is not.
	spike := series(5*7*24, func(t time.Time) float64 {
		if t.Equal(time.Date(2026, 10, 20, 2, 0, 0, 0, time.UTC)) {
			return 1e7
		}
		return r.Float64() * 100
	})
	for _, period := range []int{forecast.Daily, forecast.Weekly} {
		p, ok := forecast.Evaluate(spike, period)
		require.True(t, ok)
		require.Greater(t, p.Amplitude, 3.0)
		require.Less(t, p.Confidence, 0.75, "%+v", p)
	}
	_, ok = forecast.Detect(spike, params)
	require.False(t, ok)

	// A steady load that merely doubles at night is no peak either.
	steady := series(10*24, func(t time.Time) float64 {
		if t.Hour() == 3 {
			return 200
		}
		return 100
	})
	p, ok := forecast.Evaluate(steady, forecast.Daily)
	require.True(t, ok)
	require.Equal(t, 1.0, p.Confidence)
	require.Less(t, p.Amplitude, 3.0)
	_, ok = forecast.Detect(steady, params)
	require.False(t, ok)
}

func TestTooLittleHistory(t *testing.T) {
	weekly := func(t time.Time) float64 {
		if t.Weekday() == time.Monday && t.Hour() == 2 {
			return 1000
		}
		return 0
	}
	// Two weeks: two Mondays, not enough to call it weekly.
	p, ok := forecast.Evaluate(series(2*7*24, weekly), forecast.Weekly)
	require.True(t, ok)
	require.Equal(t, 2, p.Periods)
	require.False(t, p.Accepted(params))
	_, ok = forecast.Detect(series(2*7*24, weekly), params)
	require.False(t, ok)

	// Two days of a nightly batch.
	daily := func(t time.Time) float64 {
		if t.Hour() == 2 {
			return 1000
		}
		return 0
	}
	_, ok = forecast.Detect(series(2*24, daily), params)
	require.False(t, ok)
	_, ok = forecast.Detect(series(4*24, daily), params)
	require.True(t, ok, "four days are enough")

	// No load at all, or nothing observed.
	_, ok = forecast.Evaluate(series(30*24, func(time.Time) float64 { return 0 }), forecast.Daily)
	require.False(t, ok)
	blind := series(30*24, daily)
	for i := range blind.Observed {
		blind.Observed[i] = false
	}
	_, ok = forecast.Evaluate(blind, forecast.Daily)
	require.False(t, ok)
}

func TestUnobservedHoursAreUnknownNotZero(t *testing.T) {
	// A weekly Monday peak with the collector down for the whole third
	// week: that week is not a miss, it is not judged.
	s := series(5*7*24, func(t time.Time) float64 {
		if t.Weekday() == time.Monday && t.Hour() == 2 {
			return 1000
		}
		return 1
	})
	down0, down1 := time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)
	for i := range s.Load {
		if h := start.Add(time.Duration(i) * time.Hour); !h.Before(down0) && h.Before(down1) {
			s.Observed[i] = false
		}
	}
	p, ok := forecast.Detect(s, params)
	require.True(t, ok)
	require.Equal(t, forecast.Weekly, p.PeriodHours)
	require.Equal(t, 1.0, p.Confidence)
	require.Equal(t, 4, p.Periods)
}
