package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// TestStandAloneStageServesMetrics runs the gatekeeper over Kafka the way
// its stand-alone binary does (stage.RunTelemetry, which stage.Main calls):
// once it has decided on a candidate, its /metrics on the health listener
// serves its own bus series, consumed and published, with non-zero values.
func TestStandAloneStageServesMetrics(t *testing.T) {
	p := newPipeline(t)
	cfg := p.cfg
	cfg.Adapters.Listen = "127.0.0.1:0"
	cfg.Features.AutoIndexer.Mode = config.ModeAdvisory
	require.NoError(t, cfg.Validate())
	prevM := otel.GetMeterProvider()
	defer otel.SetMeterProvider(prevM)

	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- stage.RunTelemetry(ctx, cfg, gatekeeper.Name, gatekeeper.Start, stage.RunOptions{Listening: func(a net.Addr) { addrc <- a }})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("gatekeeper stopped before listening: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no listener within 60 s")
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "gatekeeper not ready")

	pub, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	defer pub.Close()
	spec := events.IndexSpec{Schema: "public", Table: "orders", Method: "btree", Columns: []string{"customer_id"}}
	cand := &events.IndexCandidateScored{Target: "main", CandidateID: events.CandidateID("main", spec, "v1"), Index: spec,
		FormulaVersion: "v1", WhatIfMethod: "hypopg", WindowEnd: time.Now().UTC(), MaxImprovementPct: 98, EstimatedSizeBytes: 1 << 20,
		Statements: []events.StatementEvidence{{QueryID: "7", Query: "select id, total_cents from public.orders where customer_id = $1",
			Calls: 200, CostBefore: 1200, CostAfter: 8, ImprovementPct: 99.3}}}
	require.NoError(t, pub.Publish(ctx, "scorer", "corr-metrics", cand))

	want := []string{
		`indexpilot_bus_consumed_total{group="indexpilot.gatekeeper.candidates",outcome="ok",stage="gatekeeper",type="index_candidate.scored.v1"} 1`,
		`indexpilot_bus_published_total{stage="gatekeeper",type="index_decision.made.v1"} 1`,
	}
	var last atomic.Value // the last scrape, for the failure message
	last.Store("")
	ok := assert.Eventually(t, func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last.Store(string(b))
		lines := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			lines[l] = true
		}
		for _, w := range want {
			if !lines[w] {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond)
	require.True(t, ok, "the gatekeeper's /metrics lacks %v:\n%s", want, last.Load())
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("gatekeeper did not stop within 30 s")
	}
}
