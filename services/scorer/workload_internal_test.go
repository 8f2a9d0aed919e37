package scorer

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// TestWorkloadCarriesWindowsAndParamSamples: the statements the scorer
// loads carry their history window, whether runs were unfinished and the
// observed parameter values (newest first), stored and replayed alike.
func TestWorkloadCarriesWindowsAndParamSamples(t *testing.T) {
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	cfg := config.Default()
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	s := &Scorer{deps: stage.Deps{Config: cfg, Control: db.Pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		dirty: map[string]bool{}, removalsDirty: map[string]bool{}}
	end := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	since := end.Add(-48 * time.Hour)
	evs := []*events.QueryStatObserved{
		{Target: "main", QueryID: "1", Query: "select * from t where a = $1", WindowStart: since, WindowEnd: end.Add(-time.Minute),
			Calls: 10, TotalExecTimeMs: 10, WindowSource: events.WindowHistoryStatsSince},
		{Target: "main", QueryID: "1", Query: "select * from t where a = $1", WindowStart: end.Add(-time.Minute), WindowEnd: end,
			Calls: 2, TotalExecTimeMs: 2},
		{Target: "main", QueryID: "2", Query: "select * from t where b = $1", WindowStart: end.Add(-3 * time.Second), WindowEnd: end.Add(-time.Second),
			Calls: 1, TotalExecTimeMs: 2000, WindowSource: events.WindowActivity, Unfinished: true, ParamSamples: [][]string{{"old"}}},
		{Target: "main", QueryID: "2", Query: "select * from t where b = $1", WindowStart: end.Add(-2 * time.Second), WindowEnd: end,
			Calls: 2, TotalExecTimeMs: 3000, WindowSource: events.WindowActivity, Unfinished: true, ParamSamples: [][]string{{"x"}, {"y"}}},
	}
	for _, q := range evs {
		env, err := events.Wrap(q, "test", "", q.WindowEnd)
		require.NoError(t, err)
		_, err = s.HandleQueryStat(context.Background(), env, q)
		require.NoError(t, err)
	}
	check := func(stmts []*statement, start time.Time) {
		require.Len(t, stmts, 2)
		a, b := stmts[0], stmts[1]
		require.Equal(t, int64(12), a.Calls)
		require.Equal(t, events.WindowHistoryStatsSince, a.HistorySource)
		require.Equal(t, since, a.HistoryStart)
		require.Equal(t, "history since 2026-12-05, 1 day", a.window())
		require.False(t, a.Unfinished)
		require.Nil(t, a.ParamSamples)
		require.Equal(t, int64(3), b.Calls, "runs of a statement pg_stat_statements never had count")
		require.True(t, b.Unfinished)
		require.Equal(t, [][]string{{"x"}, {"y"}, {"old"}}, b.ParamSamples)
		require.Equal(t, since, start, "the window reaches back to the history's start")
	}
	stmts, start, _, err := s.loadWorkload(context.Background(), "main", Options{})
	require.NoError(t, err)
	check(stmts, start)
	stmts, start, _ = s.retainedWorkload("main", &Retained{QueryStats: evs}, Options{})
	check(stmts, start)
}
