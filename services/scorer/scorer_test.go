package scorer_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/scorer"
)

func setup(t *testing.T) (*pgtest.Database, stage.Deps) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	return db, setupOn(t, db)
}

// setupOn migrates db, fills public.orders and returns the scorer's deps
// with db as control and target database.
func setupOn(t *testing.T, db *pgtest.Database) stage.Deps {
	t.Helper()
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		`create table public.orders (id bigint primary key, customer_id int not null, status text not null,
			created_at timestamptz not null, note text)`,
		`insert into public.orders select g, g % 5000, (array['new','paid','void'])[1 + g % 3],
			timestamptz '2026-01-01' + g * interval '1 minute', md5(g::text) from generate_series(1, 50000) g`,
		`create index orders_status_created on public.orders (status, created_at)`,
		`analyze public.orders`,
	)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Scorer.Interval = 50 * time.Millisecond
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	t.Cleanup(func() { _ = b.Close() })
	targets := stage.NewTargets(cfg.Targets, "scorer")
	t.Cleanup(targets.Close)
	return stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: targets, Logger: logger}
}

func querystat(id, query string, calls int64, end time.Time) *events.QueryStatObserved {
	return &events.QueryStatObserved{Target: "main", QueryID: id, Query: query, WindowStart: end.Add(-time.Minute),
		WindowEnd: end, Calls: calls, TotalExecTimeMs: float64(calls) * 3, MeanExecTimeMs: 3, Rows: calls}
}

// TestScoresTheMissingIndexOnly feeds workload deltas through the real
// router and checks the candidates the real planner proves.
func TestScoresTheMissingIndexOnly(t *testing.T) {
	db, d := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cands, err := bus.Record(ctx, d.Bus, "test.candidates", events.TypeIndexCandidateScored)
	require.NoError(t, err)
	ready := make(chan struct{})
	d.OnReady = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- scorer.Start(ctx, d) }()
	<-ready

	end := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	stats := []events.Payload{
		// Needs an index on customer_id.
		querystat("101", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end),
		// Already served by orders_status_created: no candidate.
		querystat("102", "SELECT id FROM orders WHERE status = $1 ORDER BY created_at LIMIT $2", 500, end),
		// Served by the primary key.
		querystat("103", "SELECT note FROM orders WHERE id = $1", 500, end),
		// Not a statement the scorer can index: counted, no crash.
		querystat("104", "INSERT INTO orders (id, customer_id, status, created_at) VALUES ($1, $2, $3, $4)", 10, end),
		querystat("105", "SELECT $1::interval", 10, end),
	}
	require.NoError(t, d.Bus.Publish(ctx, "test", "", stats...))
	// The same deltas again: stored once.
	require.NoError(t, d.Bus.Publish(ctx, "test", "", stats...))

	require.Eventually(t, func() bool { return len(cands.All()) >= 1 }, 30*time.Second, 20*time.Millisecond)
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.workload_stats").Scan(&n))
	require.Equal(t, len(stats), n, "workload rows after a redelivery")

	// Scoring rounds run while deltas arrive; wait for the one that saw all.
	var byCols map[string]*events.IndexCandidateScored
	require.Eventually(t, func() bool {
		byCols = map[string]*events.IndexCandidateScored{}
		for _, env := range cands.All() {
			p, err := events.Decode(env)
			require.NoError(t, err)
			c := p.(*events.IndexCandidateScored)
			byCols[strings.Join(c.Index.Columns, ",")] = c
		}
		return byCols["customer_id"] != nil
	}, 30*time.Second, 20*time.Millisecond)
	c := byCols["customer_id"]
	require.Equal(t, "orders", c.Index.Table)
	require.Equal(t, "public", c.Index.Schema)
	require.GreaterOrEqual(t, c.MaxImprovementPct, 20.0)
	require.Equal(t, scorer.WhatIfHypoPG, c.WhatIfMethod)
	require.Len(t, c.Statements, 1)
	require.Equal(t, "101", c.Statements[0].QueryID)
	require.Less(t, c.Statements[0].CostAfter, c.Statements[0].CostBefore)
	require.Greater(t, c.EstimatedSizeBytes, int64(0))
	require.Equal(t, end, c.WindowEnd)

	// Nothing an existing index already covers, nothing for the statement
	// the primary key serves, and not a composite that would claim the
	// saving the customer_id index already gives.
	existing, err := indexdef.Load(ctx, db.Pool, "public", "orders")
	require.NoError(t, err)
	for cols, c := range byCols {
		_, covered := indexdef.FindCovering(existing, c.Index)
		require.False(t, covered, "candidate (%s) is covered by an existing index", cols)
		for _, st := range c.Statements {
			require.NotEqual(t, "103", st.QueryID, "a candidate claims the primary-key lookup")
		}
		if cols != "customer_id" {
			require.NotEqual(t, "customer_id", c.Index.Columns[0], "redundant composite %s chosen", cols)
		}
	}
	cancel()
	require.NoError(t, <-done)
}

// TestScoringIsDeterministic scores the same stored workload twice and
// gets the same events.
func TestScoringIsDeterministic(t *testing.T) {
	_, d := setup(t)
	ctx := context.Background()
	s, err := scorer.New(d)
	require.NoError(t, err)
	end := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, q := range []*events.QueryStatObserved{
		querystat("201", "SELECT * FROM orders o WHERE o.customer_id = $1 AND o.created_at > $2", 300, end),
		querystat("202", "SELECT id FROM public.orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2", 200, end),
	} {
		env, err := events.Wrap(q, "test", "", end)
		require.NoError(t, err)
		_, err = s.HandleQueryStat(ctx, env, q)
		require.NoError(t, err)
	}
	a, err := s.ScoreTarget(ctx, "main")
	require.NoError(t, err)
	b, err := s.ScoreTarget(ctx, "main")
	require.NoError(t, err)
	require.NotEmpty(t, a)
	require.Equal(t, len(a), len(b))
	for i := range a {
		require.Equal(t, a[i].EventID(), b[i].EventID())
		require.Equal(t, a[i], b[i])
		c := a[i].(*events.IndexCandidateScored)
		require.Equal(t, "customer_id", c.Index.Columns[0], "every chosen index leads with the equality column: %v", c.Index.Columns)
	}
}
