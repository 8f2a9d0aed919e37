package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// switchCPU is a CPU source the test turns up and down.
type switchCPU struct{ pct atomic.Int64 }

func (s *switchCPU) CPUPercent(context.Context, string) (float64, error) {
	return float64(s.pct.Load()), nil
}

// TestApplyWaitsWhileCPUIsOverloaded: in apply mode, while the CPU source
// reports overload the recommendation is deferred and nothing is built;
// once it clears, the index is built, once, and valid. The candidate is
// published on Kafka as the scorer would, so the test holds whatever the
// scorer selects.
func TestApplyWaitsWhileCPUIsOverloaded(t *testing.T) {
	p := newPipeline(t)
	cfg := p.cfg
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Gatekeeper.RecheckInterval = 200 * time.Millisecond
	cfg.Gatekeeper.CPU.Cooldown = 0
	cpu := &switchCPU{}
	cpu.pct.Store(97)

	startStage(t, "executor", executor.Start, cfg, p.db.Pool)
	startStage(t, "gatekeeper", func(ctx context.Context, d stage.Deps) error {
		return gatekeeper.StartWith(ctx, d, gatekeeper.Options{CPU: cpu})
	}, cfg, p.db.Pool)

	pub, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	spec := events.IndexSpec{Schema: "public", Table: "orders", Method: "btree", Columns: []string{"customer_id"}}
	cand := func(at time.Time) *events.IndexCandidateScored {
		return &events.IndexCandidateScored{Target: "main", CandidateID: events.CandidateID("main", spec, "v1"), Index: spec,
			FormulaVersion: "v1", WhatIfMethod: "hypopg", WindowEnd: at, MaxImprovementPct: 98, EstimatedSizeBytes: 1 << 20,
			Statements: []events.StatementEvidence{{QueryID: "7", Query: "select id, total_cents from public.orders where customer_id = $1",
				Calls: 200, CostBefore: 1200, CostAfter: 8, ImprovementPct: 99.3}}}
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	require.NoError(t, pub.Publish(p.ctx, "scorer", "", cand(t0)))
	p.eventually(func() bool {
		return p.count("select count(*) from indexpilot.recommendations where state = 'deferred' and reason = 'cpu_throttled'") == 1
	}, "the recommendation deferred by the CPU throttle")
	// A re-scored candidate and several rechecks later, still nothing built.
	require.NoError(t, pub.Publish(p.ctx, "scorer", "", cand(t0.Add(time.Minute))))
	p.eventually(func() bool {
		return p.count("select count(*) from indexpilot.processed_events where consumer = $1", gatekeeper.Consumer) == 2
	},
		"the re-scored candidate processed")
	time.Sleep(5 * cfg.Gatekeeper.RecheckInterval) // let rechecks run while overloaded
	require.Empty(t, p.ourIndexes(), "an index was built while the CPU was overloaded")
	require.Equal(t, 0, p.count("select count(*) from indexpilot.builds"))
	require.Equal(t, 0, p.count("select count(*) from indexpilot.rate_buckets"), "a token was charged for a deferred build")
	require.Equal(t, 0, p.count("select count(*) from indexpilot.mutation_log where stage = 'executor'"))
	require.Equal(t, 1, p.count("select count(*) from indexpilot.recommendations where state = 'deferred'"))

	cpu.pct.Store(12)
	p.eventually(func() bool {
		return p.count("select count(*) from indexpilot.recommendations where state = 'applied'") == 1
	}, "the recommendation applied once the CPU cleared")
	idx := p.ourIndexes()
	require.Len(t, idx, 1, "indexes built: %v", idx)
	require.Regexp(t, `^ip_orders_customer_id_[0-9a-f]{8}:true$`, idx[0])
	require.Equal(t, 1, p.count(`select count(*) from indexpilot.mutation_log
 where stage = 'gatekeeper' and outcome = 'deferred->approved' and parent_id is not null`))
	require.Equal(t, 1, p.count("select count(*) from indexpilot.mutation_log where stage = 'executor' and action = 'build' and outcome = 'built'"))
}

// TestBypassSetOnOneInstanceReachesAnother: a run-time bypass change made
// through one instance's bus reaches another instance over Kafka within a
// second (the periodic refresh is set to an hour, so only the control
// topic can carry it).
func TestBypassSetOnOneInstanceReachesAnother(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	brokers := newKafka(t)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	cfg.Features.Bypass.RefreshInterval = time.Hour

	newInstance := func(name string) (*bus.Bus, *bypass.State) {
		b, err := bus.New(cfg.Bus, testLogger())
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		st, err := bypass.Watch(ctx, stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: stage.NewTargets(cfg.Targets, name),
			Logger: testLogger()}, name)
		require.NoError(t, err)
		return b, st
	}
	busA, _ := newInstance("gatekeeper")
	_, stB := newInstance("executor")

	// Warm up: B's consumer group joins; wait until a first change arrives.
	_, err = bypass.Set(ctx, db.Pool, busA, bypass.Change{Level: bypass.LevelFeature, Name: config.FeatureIndexRemoval,
		Disabled: true, Reason: "warm-up", Actor: "test"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool { ok, _ := stB.Allows(bypass.LevelFeature, config.FeatureIndexRemoval); return !ok },
		60*time.Second, 10*time.Millisecond, "instance B never joined the control topic")

	guarded, done := stB.GuardDDL(ctx)
	defer done()
	start := time.Now()
	_, err = bypass.Set(ctx, db.Pool, busA, bypass.Change{Level: bypass.LevelEmergency, Disabled: true,
		Reason: "incident", Actor: "test"}, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool { ok, _ := stB.AllowsDDL(config.FeatureAutoIndexing); return !ok },
		time.Second, 5*time.Millisecond, "instance B did not obey the emergency stop within a second")
	select {
	case <-guarded.Done():
		require.ErrorIs(t, context.Cause(guarded), bypass.ErrEmergencyStop)
	case <-time.After(time.Second):
		t.Fatal("instance B's in-flight DDL context was not cancelled")
	}
	t.Logf("emergency stop reached instance B in %s", time.Since(start))
}
