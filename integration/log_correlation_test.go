package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// TestStageLogLinesCarryTheCorrelationID: a candidate published with a
// correlation id goes through the gatekeeper (apply mode) to the executor,
// whose own JSON log lines while handling the decision ("build queued")
// carry that correlation id and the handling span's trace id, as its build
// lines carry the correlation id of the outcome it publishes.
func TestStageLogLinesCarryTheCorrelationID(t *testing.T) {
	p := newPipeline(t)
	cfg := p.cfg
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Log = config.Log{Level: "info", Format: "json"}

	var logs logtest.Buffer
	logger := telemetry.NewLogger(cfg.Log, &logs, executor.Name)
	b, err := bus.New(cfg.Bus, logger)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(p.ctx)
	targets := stage.NewTargets(cfg.Targets, executor.Name)
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- executor.Start(ctx, stage.Deps{Config: cfg, Bus: b, Control: p.db.Pool, Targets: targets, Logger: logger,
			OnReady: func() { once.Do(func() { close(ready) }) }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		targets.Close()
		_ = b.Close()
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("executor stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("executor not ready within 60 s")
	}
	startStage(t, gatekeeper.Name, gatekeeper.Start, cfg, p.db.Pool)

	pub, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	spec := events.IndexSpec{Schema: "public", Table: "orders", Method: "btree", Columns: []string{"customer_id"}}
	cand := &events.IndexCandidateScored{Target: "main", CandidateID: events.CandidateID("main", spec, "v1"), Index: spec,
		FormulaVersion: "v1", WhatIfMethod: "hypopg", WindowEnd: time.Now().UTC(), MaxImprovementPct: 98, EstimatedSizeBytes: 1 << 20,
		Statements: []events.StatementEvidence{{QueryID: "7", Query: "select id, total_cents from public.orders where customer_id = $1",
			Calls: 200, CostBefore: 1200, CostAfter: 8, ImprovementPct: 99.3}}}
	const corr = "corr-log-check"
	require.NoError(t, pub.Publish(p.ctx, "scorer", corr, cand))

	var queued, settled map[string]any
	require.Eventually(t, func() bool {
		for _, rec := range logs.Records(t) {
			switch rec["msg"] {
			case "build queued":
				queued = rec
			case "build settled":
				settled = rec
			}
		}
		return queued != nil && settled != nil
	}, 60*time.Second, 100*time.Millisecond, "no build queued and settled in the executor's log")
	require.Equal(t, corr, queued["correlation_id"], "build queued: %v", queued)
	require.Equal(t, executor.Name, queued["stage"])
	tid, _ := queued["trace_id"].(string)
	require.Len(t, tid, 32, "build queued carries no trace id: %v", queued)
	require.NotEmpty(t, queued["span_id"])
	// The build loop works from the control database, not a message: its
	// lines carry the decision's event id, the correlation id its outcome
	// event is published with.
	require.Eventually(t, func() bool { return len(p.rec[events.TypeIndexDecisionMade].All()) > 0 }, 30*time.Second, 50*time.Millisecond)
	var decisionIDs []string
	for _, env := range p.rec[events.TypeIndexDecisionMade].All() {
		require.Equal(t, corr, env.CorrelationID, "the decision keeps the candidate's correlation id")
		decisionIDs = append(decisionIDs, env.ID)
	}
	require.Contains(t, decisionIDs, settled["correlation_id"], "build settled: %v", settled)
	text := logs.String()
	require.False(t, strings.Contains(text, "select id, total_cents"), "a log line quotes the statement")
}
