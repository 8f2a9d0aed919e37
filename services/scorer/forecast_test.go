package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/scorer"
)

const (
	weeklyQuery = "SELECT id, note FROM orders WHERE customer_id = $1"
	steadyQuery = "SELECT id FROM orders WHERE note = $1"
)

// weeklyHistory replays five and a half weeks of workload through the
// scorer's handler, in time order with the stage clock following: a
// report that runs on Mondays between 02:00 and 03:00 UTC only (query id
// "901"), and a lookup called every hour of every day ("902"). It returns
// the end of the last window, a Wednesday afternoon.
func weeklyHistory(t *testing.T, s *scorer.Scorer, now *time.Time) time.Time {
	t.Helper()
	first := time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC) // a Monday
	last := time.Date(2026, 11, 11, 13, 0, 0, 0, time.UTC)
	var stats []*events.QueryStatObserved
	for h := first; h.Before(last); h = h.Add(time.Hour) {
		if h.Weekday() == time.Monday && h.Hour() == 2 {
			for _, m := range []int{10, 25, 40, 55} {
				e := h.Add(time.Duration(m) * time.Minute)
				stats = append(stats, &events.QueryStatObserved{Target: "main", QueryID: "901", Query: weeklyQuery,
					WindowStart: e.Add(-15 * time.Minute), WindowEnd: e, Calls: 50, TotalExecTimeMs: 50 * 40, MeanExecTimeMs: 40, Rows: 500})
			}
		}
		e := h.Add(59 * time.Minute)
		calls := int64(30 + h.Hour()%3) // a little variation, no peak
		stats = append(stats, &events.QueryStatObserved{Target: "main", QueryID: "902", Query: steadyQuery,
			WindowStart: h, WindowEnd: e, Calls: calls, TotalExecTimeMs: float64(calls) * 5, MeanExecTimeMs: 5, Rows: calls})
	}
	for _, q := range stats {
		*now = q.WindowEnd
		feed(t, s, q)
	}
	return stats[len(stats)-1].WindowEnd
}

// TestWeeklyStatementGetsAForecastAndABuildBeforeItsPeak: from the retained
// history the scorer finds the Monday report's weekly peak and none for
// the steady lookup; on a Wednesday, with the report outside the 24 h
// window, it still proposes the report's index, with the next peak and a
// build-by time before it.
func TestWeeklyStatementGetsAForecastAndABuildBeforeItsPeak(t *testing.T) {
	db, d := setup(t)
	var now time.Time
	d.Now = func() time.Time { return now }
	d.Config.Scorer.StorageBudgetMB = 1024
	s, err := scorer.New(d)
	require.NoError(t, err)
	ctx := context.Background()
	last := weeklyHistory(t, s, &now)
	require.Equal(t, time.Wednesday, last.Weekday())

	r, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Forecasts, 1, "%+v", r.Forecasts)
	f := r.Forecasts[0]
	require.Equal(t, "901", f.QueryID)
	require.Equal(t, "weekly", f.Period)
	require.Equal(t, "Mon 02:00 UTC", f.Phase)
	require.Equal(t, 1, f.PeakHours)
	require.Equal(t, 1.0, f.Confidence)
	require.Equal(t, 5, f.Periods, "scorer.forecast.history: the last 35 days hold five Mondays")
	peak := time.Date(2026, 11, 16, 2, 0, 0, 0, time.UTC)
	require.Equal(t, peak, f.NextPeakAt)

	var period, phase int
	require.NoError(t, db.Pool.QueryRow(ctx, `select period_hours, phase_hour from indexpilot.workload_forecasts
 where target = 'main' and query_id = '901'`).Scan(&period, &phase))
	require.Equal(t, []int{168, 2}, []int{period, phase})
	var stored, steady int
	require.NoError(t, db.Pool.QueryRow(ctx, `select count(*), count(*) filter (where query_id = '902')
  from indexpilot.workload_forecasts`).Scan(&stored, &steady))
	require.Equal(t, 1, stored)
	require.Zero(t, steady, "a statement with no period gets no forecast")

	byCols := map[string]*events.IndexCandidateScored{}
	for _, c := range r.Chosen {
		byCols[c.Index.Columns[0]] = c
	}
	require.Contains(t, byCols, "customer_id", "the report's index is proposed although the report is not in the window")
	require.Contains(t, byCols, "note")
	require.Nil(t, byCols["note"].Forecast, "the steady lookup's index is wanted now")
	c := byCols["customer_id"]
	require.NotNil(t, c.Forecast)
	fc := c.Forecast
	require.Equal(t, "901", fc.QueryID)
	require.Equal(t, peak, fc.PeakAt)
	require.Equal(t, peak.Add(time.Hour), fc.PeakEnd)
	require.Positive(t, fc.BuildSeconds)
	require.Equal(t, peak.Add(-time.Duration(fc.BuildSeconds)*time.Second-30*time.Minute).Truncate(time.Minute), fc.BuildBy)
	require.True(t, fc.BuildBy.Before(peak), "build by %s, peak %s", fc.BuildBy, peak)
	require.True(t, fc.BuildBy.After(last), "build by %s is after the scoring", fc.BuildBy)
	require.Equal(t, fc.BuildBy.Add(-6*time.Hour), fc.BuildFrom)
	require.Nil(t, fc.DropAfter, "drop_after_peak is off by default")
	require.Contains(t, fc.Summary(), "weekly peak expected Mon 02:00 UTC, build by 01:")
	ev := c.Statements[0]
	require.Equal(t, "901", ev.QueryID)
	require.Contains(t, ev.Window, "weekly peak, not in the window")
	// Five peaks of 200 calls over the 35 days of history, averaged to one day.
	require.InDelta(t, 5*200*24/(35*24.0), float64(ev.Calls), 1)

	// A second run within scorer.forecast.refresh reuses the detection.
	_, err = db.Pool.Exec(ctx, "update indexpilot.workload_forecasts set confidence = 0.9")
	require.NoError(t, err)
	r2, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, 0.9, r2.Forecasts[0].Confidence)
	// A replay detects afresh and stores nothing.
	r3, err := s.Score(ctx, "main", scorer.Options{Until: last})
	require.NoError(t, err)
	require.Equal(t, 1.0, r3.Forecasts[0].Confidence)
	var conf float64
	require.NoError(t, db.Pool.QueryRow(ctx, "select confidence from indexpilot.workload_forecasts").Scan(&conf))
	require.Equal(t, 0.9, conf)

	// With scorer.forecast.drop_after_peak, a peak index on a table
	// written all week long carries a proposal to drop it after the peak.
	// Heavy writes in the window: inserts into orders, every hour.
	var writes []*events.QueryStatObserved
	for h := last.Add(-24 * time.Hour).Truncate(time.Hour); h.Before(last); h = h.Add(time.Hour) {
		writes = append(writes, &events.QueryStatObserved{Target: "main", QueryID: "903",
			Query:       "INSERT INTO orders (id, customer_id, status, created_at, note) VALUES ($1, $2, $3, $4, $5)",
			WindowStart: h, WindowEnd: h.Add(58 * time.Minute), Calls: 200000, TotalExecTimeMs: 200000 * 0.05, MeanExecTimeMs: 0.05, Rows: 200000})
	}
	feed(t, s, writes...)
	for i, ts := range []time.Time{last.Add(-24 * time.Hour), last} {
		feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders", ObservedAt: ts,
			LiveRows: 50000, Inserts: int64(i) * 4800000, AvgRowWidthBytes: 80, TotalSizeBytes: 6 << 20})
	}
	d.Config.Scorer.Forecast.DropAfterPeak = true
	s, err = scorer.New(d)
	require.NoError(t, err)
	r, err = s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	var found bool
	r.EachCandidate(func(c *events.IndexCandidateScored, _ string) {
		if c.Index.Columns[0] != "customer_id" {
			return
		}
		found = true
		require.NotNil(t, c.Forecast)
		require.NotNil(t, c.Forecast.DropAfter, "write %.0f, build %.0f", c.WriteOverheadCost, c.BuildCost)
		require.Equal(t, c.Forecast.PeakEnd, *c.Forecast.DropAfter)
		require.Contains(t, c.Forecast.DropDetail, "between peaks")
		t.Log(c.Forecast.DropDetail)
	})
	require.True(t, found)
}
