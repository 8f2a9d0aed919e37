package collector

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestBypassPausesAndResumesCollection pauses the collector stage at run
// time (persisted and sent on the control topic, as `indexpilot bypass
// set` does): nothing is published while it is paused, and the calls made
// meanwhile are published once it is resumed.
func TestBypassPausesAndResumesCollection(t *testing.T) {
	t.Parallel()
	ctl := controlDB(t)
	work := pgtest.NewDatabase(t)
	work.RequireExtension(t, "pg_stat_statements")
	work.Exec(t,
		"create table orders (id bigint primary key, note text)",
		"insert into orders select g, 'n' || g from generate_series(1, 100) g",
	)
	// Known to pg_stat_statements before the first poll: its history.
	runWorkload(t, work, 2)
	logs := &logtest.Buffer{}
	d := deps(t, []config.Target{{Name: "main", DSN: work.URL}}, 20*time.Millisecond, nil)
	d.Control = ctl.Pool
	d.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d.Config.Features.Bypass.RefreshInterval = 50 * time.Millisecond
	s := subscribe(t, d.Bus)
	startWith(t, d, Options{})

	sum := func() int64 {
		var n int64
		for _, e := range s.queryStats(isWorkload) {
			n += e.Calls
		}
		return n
	}
	require.Eventually(t, func() bool { return len(s.polls("main")) >= 1 }, 15*time.Second, 5*time.Millisecond)
	runWorkload(t, work, 3)
	require.Eventually(t, func() bool { return sum() == 2+3 }, 15*time.Second, 5*time.Millisecond)

	ctx := context.Background()
	_, err := bypass.Set(ctx, ctl.Pool, d.Bus, bypass.Change{Level: bypass.LevelStage, Name: Name, Disabled: true,
		Reason: "target maintenance", Actor: "test"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return logs.Count("polling paused by the bypass") == 1 }, 10*time.Second, 5*time.Millisecond,
		"the running collector did not see the pause")
	pausedAt := time.Now().UTC()

	runWorkload(t, work, 5)
	pollAfter := func(at time.Time) bool {
		for _, p := range s.polls("main") {
			if p.After(at) {
				return true
			}
		}
		return false
	}
	// Ten intervals with no poll and no published statement.
	require.Never(t, func() bool { return pollAfter(pausedAt) || sum() != 2+3 }, 200*time.Millisecond, 10*time.Millisecond,
		"the collector published while its stage was paused")

	resumedAt := time.Now().UTC()
	_, err = bypass.Set(ctx, ctl.Pool, d.Bus, bypass.Change{Level: bypass.LevelStage, Name: Name, Disabled: false,
		Reason: "maintenance over", Actor: "test"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return sum() == 2+3+5 && pollAfter(resumedAt) }, 15*time.Second, 5*time.Millisecond,
		"collection did not resume")
	last := s.queryStats(isWorkload)
	require.Equal(t, int64(5), last[len(last)-1].Calls, "the paused period's calls are reported once, after the pause")
	require.True(t, last[len(last)-1].WindowEnd.After(resumedAt))
	require.Equal(t, 1, logs.Count("polling resumed"))
}

// TestStatsCollectionFeatureDisabledPublishesNothing disables the
// stats_collection feature on an injected state, then enables it.
func TestStatsCollectionFeatureDisabledPublishesNothing(t *testing.T) {
	t.Parallel()
	work := pgtest.NewDatabase(t)
	work.Exec(t, "create table orders (id bigint primary key)")
	logs := &logtest.Buffer{}
	d := deps(t, []config.Target{{Name: "main", DSN: work.URL}}, 20*time.Millisecond, nil)
	d.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st := bypass.NewState(config.Bypass{}, nil)
	st.Apply(bypass.Switch{Level: bypass.LevelFeature, Name: config.FeatureStatsCollection, Disabled: true, Reason: "off", ChangeID: 1})
	s := subscribe(t, d.Bus)
	startWith(t, d, Options{Bypass: st})
	require.Eventually(t, func() bool { return logs.Count("polling paused by the bypass") == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Never(t, func() bool { return len(s.tableStats(nil)) > 0 }, 200*time.Millisecond, 10*time.Millisecond,
		"the collector published with stats_collection disabled")

	st.Apply(bypass.Switch{Level: bypass.LevelFeature, Name: config.FeatureStatsCollection, Disabled: false, Reason: "on", ChangeID: 2})
	require.Eventually(t, func() bool {
		return len(s.tableStats(func(ts *events.TableStatObserved) bool { return ts.Table == "orders" })) > 0
	}, 15*time.Second, 5*time.Millisecond, "collection did not resume when the feature was enabled")
}
