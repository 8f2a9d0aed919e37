package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestPredictiveBuildIsScheduledBeforeThePeak replays five weeks of a
// weekly report (Mondays 02:00 UTC) and an hourly lookup through the
// scorer with an injected clock, scores on a Wednesday, and hands the
// candidates to the gatekeeper in apply mode while its clock steps forward
// ten minutes at a time: the lookup's index is approved at once, the
// report's is held and approved before the peak, not after it. With a
// maintenance window that is shut from the build-from time to the peak
// (Saturdays only), the build is approved in the last Saturday window
// before the peak instead of being deferred past it.
func TestPredictiveBuildIsScheduledBeforeThePeak(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		`create table public.orders (id bigint primary key, customer_id int not null, note text not null)`,
		`insert into public.orders select g, g % 5000, md5(g::text) from generate_series(1, 50000) g`,
		`analyze public.orders`)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Scorer.StorageBudgetMB = 1024
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Gatekeeper.CPU.Source = config.CPUSourceNone
	logger := testLogger()
	b := bus.NewMemory(logger)
	t.Cleanup(func() { _ = b.Close() })
	targets := stage.NewTargets(cfg.Targets, "test")
	t.Cleanup(targets.Close)
	var now time.Time
	clock := func() time.Time { return now }
	s, err := scorer.New(stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: targets, Logger: logger, Now: clock})
	require.NoError(t, err)

	first := time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)  // a Monday
	last := time.Date(2026, 11, 11, 13, 0, 0, 0, time.UTC) // a Wednesday
	put := func(q *events.QueryStatObserved) {
		now = q.WindowEnd
		env, err := events.Wrap(q, "collector", "", q.WindowEnd)
		require.NoError(t, err)
		_, err = s.HandleQueryStat(ctx, env, q)
		require.NoError(t, err)
	}
	for h := first; h.Before(last); h = h.Add(time.Hour) {
		if h.Weekday() == time.Monday && h.Hour() == 2 {
			for _, m := range []int{20, 40, 59} {
				e := h.Add(time.Duration(m) * time.Minute)
				put(&events.QueryStatObserved{Target: "main", QueryID: "report", Query: "SELECT id, note FROM orders WHERE customer_id = $1",
					WindowStart: e.Add(-20 * time.Minute), WindowEnd: e, Calls: 80, TotalExecTimeMs: 80 * 30, MeanExecTimeMs: 30, Rows: 800})
			}
		}
		put(&events.QueryStatObserved{Target: "main", QueryID: "lookup", Query: "SELECT id FROM orders WHERE note = $1",
			WindowStart: h, WindowEnd: h.Add(59 * time.Minute), Calls: 40, TotalExecTimeMs: 200, MeanExecTimeMs: 5, Rows: 40})
	}
	rep, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, rep.Forecasts, 1)
	require.Equal(t, "report", rep.Forecasts[0].QueryID, "the lookup has no period")
	peak := time.Date(2026, 11, 16, 2, 0, 0, 0, time.UTC)
	var report, lookup *events.IndexCandidateScored
	for _, c := range rep.Chosen {
		switch c.Statements[0].QueryID {
		case "report":
			report = c
		case "lookup":
			lookup = c
		}
	}
	require.NotNil(t, report)
	require.NotNil(t, lookup)
	require.Nil(t, lookup.Forecast)
	require.Equal(t, peak, report.Forecast.PeakAt)

	// schedule runs the gatekeeper on its own control database from the
	// scoring time on, rechecking every ten minutes, and returns when each
	// candidate was approved.
	schedule := func(w config.Window) map[string]time.Time {
		gdb := pgtest.NewDatabase(t)
		_, err := metadata.Migrate(ctx, gdb.Pool)
		require.NoError(t, err)
		gcfg := cfg
		gcfg.DatabaseURL = gdb.URL
		gcfg.Gatekeeper.Window = w
		gcfg.Gatekeeper.RateLimit = config.RateLimits{}
		g, err := gatekeeper.New(stage.Deps{Config: gcfg, Bus: b, Control: gdb.Pool, Targets: targets, Logger: logger, Now: clock},
			gatekeeper.Options{})
		require.NoError(t, err)
		approved := map[string]time.Time{}
		cands := map[string]*events.IndexCandidateScored{"lookup": lookup, "report": report}
		look := func() {
			for name, c := range cands {
				var st string
				require.NoError(t, gdb.Pool.QueryRow(ctx, "select state from indexpilot.recommendations where id = $1",
					events.RecommendationID("main", c.Index)).Scan(&st))
				if _, done := approved[name]; !done && st == "approved" {
					approved[name] = now
				}
			}
		}
		now = last.Add(time.Minute)
		for _, c := range []*events.IndexCandidateScored{lookup, report} {
			env, err := events.Wrap(c, "scorer", "", now)
			require.NoError(t, err)
			_, err = g.Handle(ctx, env, c)
			require.NoError(t, err)
		}
		look()
		var state, reason, detail string
		require.NoError(t, gdb.Pool.QueryRow(ctx, "select state, reason, detail from indexpilot.recommendations where id = $1",
			events.RecommendationID("main", report.Index)).Scan(&state, &reason, &detail))
		require.Equal(t, []string{"deferred", string(events.ReasonForecastHold)}, []string{state, reason})
		require.Contains(t, detail, "weekly peak expected Mon 02:00 UTC, build by ")
		// The recheck loop, without its ticker, every ten minutes.
		for now = now.Add(10 * time.Minute); now.Before(peak.Add(2*time.Hour)) && len(approved) < 2; now = now.Add(10 * time.Minute) {
			_, err = g.Recheck(ctx)
			require.NoError(t, err)
			look()
		}
		return approved
	}

	got := schedule(config.Window{TimeZone: "UTC"})
	require.Equal(t, last.Add(time.Minute), got["lookup"], "the lookup's index is wanted now")
	at, ok := got["report"]
	require.True(t, ok, "the report's index was never approved")
	require.True(t, at.Before(peak), "approved at %s, after the peak %s", at, peak)
	require.False(t, at.Before(report.Forecast.BuildFrom), "approved at %s, before it was due (%s)", at, report.Forecast.BuildFrom)
	require.False(t, at.After(report.Forecast.BuildBy), "approved at %s, after build-by %s", at, report.Forecast.BuildBy)

	// Saturdays 10:00-16:00 only: shut from Sunday evening to the peak.
	got = schedule(config.Window{Start: "10:00", End: "16:00", Days: []string{"sat"}, TimeZone: "UTC"})
	at, ok = got["report"]
	require.True(t, ok, "the report's index was never approved")
	require.Equal(t, time.Date(2026, 11, 14, 10, 1, 0, 0, time.UTC), at,
		"approved at the first recheck in the last window before the peak (the clock steps from 13:01 by ten minutes)")
}
