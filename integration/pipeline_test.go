package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/scorer"
)

type pipeline struct {
	t       *testing.T
	db      *pgtest.Database
	cfg     config.Config
	brokers []string
	rec     map[events.Type]*bus.Recorder
	ctx     context.Context
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	// The load is history when IndexPilot starts (pgtest.Load).
	db.Load(t,
		`create table public.orders (
			id bigint generated always as identity primary key,
			customer_id int not null,
			status text not null,
			total_cents int not null,
			created_at timestamptz not null)`,
		`insert into public.orders (customer_id, status, total_cents, created_at)
		 select (g * 7919) % 20000, (array['new','paid','shipped','void'])[1 + g % 4], g % 10000,
		        timestamptz '2026-01-01' + g * interval '1 minute'
		   from generate_series(1, 60000) g`,
		`analyze public.orders`,
	)

	brokers := newKafka(t)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	cfg.Collector.Interval = 300 * time.Millisecond
	cfg.Scorer.Interval = 300 * time.Millisecond
	cfg.Executor.PollInterval = 100 * time.Millisecond
	cfg.Executor.LockTimeout = 2 * time.Second
	cfg.Gatekeeper.CPU.Source = config.CPUSourceNone // the shared host's CPU must not defer the build
	require.NoError(t, cfg.Validate())

	p := &pipeline{t: t, db: db, cfg: cfg, brokers: brokers, rec: map[events.Type]*bus.Recorder{}, ctx: ctx}
	obs, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = obs.Close() })
	for _, ty := range events.Types {
		r, err := bus.Record(ctx, obs, "indexpilot.test.observer."+string(ty), ty)
		require.NoError(t, err)
		p.rec[ty] = r
	}
	return p
}

func (p *pipeline) count(sql string, args ...any) int {
	p.t.Helper()
	var n int
	require.NoError(p.t, p.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// workload runs the statement the pipeline should find an index for.
func (p *pipeline) workload(n int) {
	p.t.Helper()
	for i := 0; i < n; i++ {
		rows, err := p.db.Pool.Query(context.Background(), "select id, total_cents from public.orders where customer_id = $1", (i*37)%20000)
		require.NoError(p.t, err)
		rows.Close()
		require.NoError(p.t, rows.Err())
	}
}

func (p *pipeline) ourIndexes() []string {
	p.t.Helper()
	rows, err := p.db.Pool.Query(context.Background(),
		`select i.relname || ':' || x.indisvalid from pg_index x join pg_class i on i.oid = x.indexrelid
		  where x.indrelid = 'public.orders'::regclass and not x.indisprimary order by 1`)
	require.NoError(p.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(p.t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

func (p *pipeline) eventually(cond func() bool, what string) {
	p.t.Helper()
	require.Eventually(p.t, cond, 90*time.Second, 100*time.Millisecond, what)
}

// TestPipelineOverKafka drives the whole flow: advisory records one
// recommendation and builds nothing; apply builds exactly one valid index;
// redelivering every event changes nothing.
func TestPipelineOverKafka(t *testing.T) {
	p := newPipeline(t)

	// Consumers first, then the collector (its first poll publishes the history).
	exec := startStage(t, "executor", executor.Start, p.cfg, p.db.Pool)
	gate := startStage(t, "gatekeeper", gatekeeper.Start, p.cfg, p.db.Pool)
	score := startStage(t, "scorer", scorer.Start, p.cfg, p.db.Pool)
	coll := startStage(t, "collector", collector.Start, p.cfg, p.db.Pool)
	p.eventually(func() bool { return len(p.rec[events.TypeTableStatObserved].All()) > 0 }, "the collector's first poll (table statistics)")

	// --- advisory ---
	p.workload(200)
	p.eventually(func() bool { return p.count("select count(*) from indexpilot.recommendations") >= 1 },
		"a recommendation for orders(customer_id) in advisory mode")
	// Let a few more scoring rounds pass with more workload: still one.
	p.workload(50)
	p.eventually(func() bool { return len(p.rec[events.TypeIndexCandidateScored].All()) >= 2 }, "a re-scored candidate")
	require.Equal(t, 1, p.count("select count(*) from indexpilot.recommendations"), "advisory recommendations")
	require.Equal(t, 1, p.count(`select count(*) from indexpilot.recommendations
		where state = 'proposed' and table_name = 'orders' and index_spec->'columns' = '["customer_id"]'::jsonb`),
		"the recommendation is not proposed orders(customer_id)")
	require.Empty(t, p.ourIndexes(), "advisory mode built an index")
	require.Equal(t, 0, p.count("select count(*) from indexpilot.builds"))
	require.Equal(t, 1, p.count("select count(*) from indexpilot.mutation_log where action = 'recommend' and outcome = 'proposed'"))

	// --- apply: restart the gatekeeper in apply mode; new workload makes
	// the scorer re-emit the candidate, which is then approved and built.
	gate.stop(t)
	apply := p.cfg
	apply.Features.AutoIndexer.Mode = config.ModeApply
	gate = startStage(t, "gatekeeper", gatekeeper.Start, apply, p.db.Pool)
	p.workload(100)
	p.eventually(func() bool {
		return p.count("select count(*) from indexpilot.recommendations where state = 'applied'") == 1
	},
		"the recommendation applied")
	idx := p.ourIndexes()
	require.Len(t, idx, 1, "indexes built: %v", idx)
	require.Regexp(t, `^ip_orders_customer_id_[0-9a-f]{8}:true$`, idx[0])
	require.Equal(t, 1, p.count("select count(*) from indexpilot.recommendations"))
	p.eventually(func() bool { return p.rec[events.TypeIndexBuildCompleted].DistinctIDs() == 1 }, "one build completed event")
	require.Equal(t, 1, p.count("select count(*) from indexpilot.mutation_log where stage = 'executor' and action = 'build' and outcome = 'built'"))

	// --- redeliver every event seen so far, then a marker per topic whose
	// effect shows the consumer has passed everything before it (same key,
	// same partition, in order).
	pub, err := bus.New(p.cfg.Bus, testLogger())
	require.NoError(t, err)
	defer pub.Close()
	redelivered := 0
	for _, ty := range []events.Type{events.TypeQueryStatObserved, events.TypeTableStatObserved,
		events.TypeIndexCandidateScored, events.TypeIndexDecisionMade} {
		for _, env := range p.rec[ty].All() {
			payload, err := events.Decode(env)
			require.NoError(t, err)
			require.NoError(t, pub.Publish(p.ctx, "test-redelivery", env.CorrelationID, payload))
			redelivered++
		}
	}
	require.Greater(t, redelivered, 4)
	markerSpec := events.IndexSpec{Schema: "public", Table: "orders", Method: "btree", Columns: []string{"status"}}
	marker := &events.IndexCandidateScored{Target: "main", CandidateID: events.CandidateID("main", markerSpec, "marker"),
		Index: markerSpec, FormulaVersion: "marker", WhatIfMethod: "hypopg", WindowEnd: time.Now().UTC(),
		MaxImprovementPct: 1, EstimatedSizeBytes: 1}
	require.NoError(t, pub.Publish(p.ctx, "test-redelivery", "", marker))
	p.eventually(func() bool {
		return p.count("select count(*) from indexpilot.mutation_log where candidate_id = $1 and outcome = 'rejected'", marker.CandidateID) == 1
	}, "the gatekeeper reaching the marker after the redelivered candidates")
	markerDecision := &events.IndexDecisionMade{Target: "main", RecommendationID: events.RecommendationID("main", markerSpec),
		CandidateID: marker.CandidateID, CandidateEventID: marker.EventID(), Index: markerSpec,
		Verdict: events.VerdictRejected, Reason: events.ReasonBelowMinBenefit, DecidedAt: time.Now().UTC()}
	require.NoError(t, pub.Publish(p.ctx, "test-redelivery", "", markerDecision))
	p.eventually(func() bool {
		return p.count("select count(*) from indexpilot.processed_events where event_id = $1", markerDecision.EventID()) >= 1
	}, "the executor reaching the marker after the redelivered decisions")
	// Give the build loop a few polls to act on anything it might have queued.
	p.workload(10)
	p.eventually(func() bool { return len(p.rec[events.TypeIndexCandidateScored].All()) >= 4 }, "another scoring round")

	require.Len(t, p.ourIndexes(), 1, "redelivery built a second index")
	require.Equal(t, 1, p.count("select count(*) from indexpilot.recommendations"), "redelivery added a recommendation")
	require.Equal(t, 1, p.count("select count(*) from indexpilot.builds"), "redelivery queued a second build")
	require.Equal(t, 1, p.count("select count(*) from indexpilot.mutation_log where stage = 'executor' and outcome = 'built'"))
	require.Equal(t, 1, p.rec[events.TypeIndexBuildCompleted].DistinctIDs(), "build completed ids")

	for _, r := range []*running{coll, score, gate, exec} {
		r.stop(t)
	}
	fmt.Fprintf(testWriter{t}, "redelivered %d events\n", redelivered)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
