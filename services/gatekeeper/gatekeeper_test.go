package gatekeeper_test

import (
	"context"
	"io"
	"log/slog"
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
)

type harness struct {
	db        *pgtest.Database
	bus       *bus.Bus
	decisions *bus.Recorder
	ctx       context.Context
}

func start(t *testing.T, mode string) *harness {
	t.Helper()
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Features.AutoIndexer.Mode = mode
	cfg.Gatekeeper.CPU.Source = config.CPUSourceNone
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	t.Cleanup(func() { _ = b.Close() })
	rec, err := bus.Record(ctx, b, "test.decisions", events.TypeIndexDecisionMade)
	require.NoError(t, err)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- gatekeeper.Start(ctx, stage.Deps{Config: cfg, Bus: b, Control: db.Pool,
			Targets: stage.NewTargets(cfg.Targets, "test"), Logger: logger, OnReady: func() { close(ready) }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("gatekeeper did not become ready")
	}
	return &harness{db: db, bus: b, decisions: rec, ctx: ctx}
}

func candidate(improvement float64, windowEnd time.Time) *events.IndexCandidateScored {
	spec := events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"tenant_id", "email"}}
	return &events.IndexCandidateScored{
		Target: "main", CandidateID: events.CandidateID("main", spec, "v1"), Index: spec, FormulaVersion: "v1",
		WhatIfMethod: "hypopg", WindowEnd: windowEnd, MaxImprovementPct: improvement, EstimatedSizeBytes: 8192,
		Statements: []events.StatementEvidence{{QueryID: "42", Query: "select 1", Calls: 10, CostBefore: 100, CostAfter: 1, ImprovementPct: 99}},
	}
}

func (h *harness) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (h *harness) waitProcessed(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return h.count(t, "select count(*) from indexpilot.processed_events where consumer = $1", gatekeeper.Consumer) >= n
	}, 10*time.Second, 20*time.Millisecond, "gatekeeper did not process %d events", n)
}

func TestAdvisoryTwiceGivesOneProposedRecommendation(t *testing.T) {
	h := start(t, config.ModeAdvisory)
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", c))
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", c))
	h.waitProcessed(t, 1)
	// A re-scored candidate for the same index (a later window) is a new
	// event but must not add a recommendation or a log row either.
	later := candidate(98, time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC))
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", later))
	h.waitProcessed(t, 2)

	var state, reason string
	var pct float64
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, "select state, reason, max_improvement_pct from indexpilot.recommendations").Scan(&state, &reason, &pct))
	require.Equal(t, "proposed", state)
	require.Equal(t, string(events.ReasonAdvisoryMode), reason)
	require.Equal(t, 98.0, pct, "evidence of the newer candidate was not kept")
	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.recommendations"))
	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.mutation_log where action = 'recommend'"))
	require.Eventually(t, func() bool { return h.decisions.DistinctIDs() == 1 }, 5*time.Second, 20*time.Millisecond)
	d := h.decisions.All()[0]
	p, err := events.Decode(d)
	require.NoError(t, err)
	require.Equal(t, events.VerdictAdvised, p.(*events.IndexDecisionMade).Verdict)
}

func TestApplyApprovesOnceAndRejectsWeakCandidates(t *testing.T) {
	h := start(t, config.ModeApply)
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", c))
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", c))
	weak := candidate(5, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	weak.Index.Columns = []string{"status"}
	weak.CandidateID = events.CandidateID("main", weak.Index, "v1")
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", weak))
	h.waitProcessed(t, 2)

	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.recommendations where state = 'approved'"))
	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.recommendations"), "a rejected candidate made a recommendation")
	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.mutation_log where outcome = 'rejected' and reason = $1", string(events.ReasonBelowMinBenefit)))
	require.Eventually(t, func() bool { return h.decisions.DistinctIDs() == 2 }, 5*time.Second, 20*time.Millisecond)
	verdicts := map[events.Verdict]int{}
	for _, e := range h.decisions.All() {
		p, err := events.Decode(e)
		require.NoError(t, err)
		verdicts[p.(*events.IndexDecisionMade).Verdict]++
	}
	require.Equal(t, 1, verdicts[events.VerdictRejected])
	require.GreaterOrEqual(t, verdicts[events.VerdictApproved], 1)
}

func TestSwitchingToApplyPromotesAProposal(t *testing.T) {
	h := start(t, config.ModeAdvisory)
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	require.NoError(t, h.bus.Publish(h.ctx, "test", "", c))
	h.waitProcessed(t, 1)

	// A second gatekeeper in apply mode on the same control database.
	cfg := config.Default()
	cfg.DatabaseURL = h.db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: h.db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Gatekeeper.CPU.Source = config.CPUSourceNone
	g, err := gatekeeper.New(stage.Deps{Config: cfg, Bus: h.bus, Control: h.db.Pool, Targets: stage.NewTargets(cfg.Targets, "t"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, gatekeeper.Options{})
	require.NoError(t, err)
	later := candidate(97, time.Date(2026, 11, 25, 12, 5, 0, 0, time.UTC))
	env, err := events.Wrap(later, "scorer", "", time.Now())
	require.NoError(t, err)
	out, err := g.Handle(h.ctx, env, later)
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, events.VerdictApproved, out[0].(*events.IndexDecisionMade).Verdict)
	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.recommendations where state = 'approved'"))
	require.Equal(t, 1, h.count(t, "select count(*) from indexpilot.mutation_log where outcome = 'proposed->approved'"))
	// Redelivery of the approving event re-emits the same decision id.
	again, err := g.Handle(h.ctx, env, later)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, out[0].EventID(), again[0].EventID())
	require.Equal(t, 2, h.count(t, "select count(*) from indexpilot.mutation_log where action = 'recommend'"))
}
