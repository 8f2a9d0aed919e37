package executor_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
)

// approvedLongAgo makes a recommendation approved an hour ago whose
// decision event was never delivered.
func (e *env) approvedLongAgo(s events.IndexSpec) *events.IndexDecisionMade {
	e.t.Helper()
	dec := e.approve(s, events.VerdictApproved)
	_, err := e.db.Pool.Exec(context.Background(),
		"update indexpilot.recommendations set updated_at = now() - interval '1 hour' where id = $1", dec.RecommendationID)
	require.NoError(e.t, err)
	return dec
}

// TestApprovalWithoutItsEventIsBuiltOnce: a recommendation approved long
// ago whose decision never reached an executor is queued by the executor
// at start, built once, and recorded as queued without its event; the
// event arriving after all is a no-op. A fresh approval is left to its
// event, and nothing is queued in advisory mode.
func TestApprovalWithoutItsEventIsBuiltOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	lost := e.approvedLongAgo(spec("tenant_id", "email"))
	// The recommendation's trace (the candidate's): the recovered build
	// continues it.
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, err := e.db.Pool.Exec(context.Background(), "update indexpilot.recommendations set trace_parent = $2 where id = $1", lost.RecommendationID, parent)
	require.NoError(t, err)
	fresh := e.approve(spec("email"), events.VerdictApproved) // its event may still come

	advisory := e.start(func(c *config.Config) { c.Features.AutoIndexer.Mode = config.ModeAdvisory })
	time.Sleep(500 * time.Millisecond) // several poll intervals
	advisory.stop(t)
	require.Zero(t, e.count("select count(*) from indexpilot.builds"), "an advisory executor queued a build")

	run := e.start(nil)
	require.Eventually(t, func() bool { return e.recState(lost.RecommendationID) == "applied" }, wait, tick,
		"the approval without its event was never built (state %q)", e.recState(lost.RecommendationID))
	exists, valid := e.ourIndex(lost.Index)
	require.True(t, exists && valid)
	require.Equal(t, lost.EventID(), e.scalar("select decision_event_id::text from indexpilot.builds where recommendation_id = $1", lost.RecommendationID),
		"the build carries the id of the decision it stands for")
	require.Contains(t, e.scalar("select coalesce(trace_parent, '') from indexpilot.builds where recommendation_id = $1", lost.RecommendationID),
		"4bf92f3577b34da6a3ce929d0e0e4736", "the recovered build left the recommendation's trace")
	require.Equal(t, int64(1), e.count(`select count(*) from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1 and outcome = 'queued' and reason = 'decision_event_missing'`, lost.RecommendationID))
	require.Equal(t, "approved", e.recState(fresh.RecommendationID), "an approval younger than recover_after was queued")

	// The decision arrives after all: already processed, nothing doubles.
	require.NoError(t, run.bus.Publish(context.Background(), "gatekeeper", "", lost))
	require.Eventually(t, func() bool { return run.logs.seen("decision already processed", "event_id", lost.EventID()) },
		wait, tick, "the late decision was never handled")
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.builds where recommendation_id = $1", lost.RecommendationID))
	require.Equal(t, int64(1), e.count(`select count(*) from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1 and outcome in ('built', 'already_exists')`, lost.RecommendationID))
	require.Len(t, run.received(events.TypeIndexBuildCompleted), 1)
}

// TestExecutorsRecoveringAtOnceQueueOneBuild: eight executors look for
// approvals without a build at the same moment; one build is queued, one
// index built.
func TestExecutorsRecoveringAtOnceQueueOneBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	lost := e.approvedLongAgo(spec("tenant_id"))
	cfg := config.Default()
	cfg.DatabaseURL = e.db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: e.db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeApply

	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	queued := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := stage.Deps{Config: cfg, Control: e.db.Pool, Targets: stage.NewTargets(cfg.Targets, executor.Name),
				Logger: slog.New(slog.DiscardHandler)}
			<-start
			queued[i], errs[i] = executor.RecoverApproved(context.Background(), d)
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range n {
		require.NoError(t, errs[i])
		total += queued[i]
	}
	require.Equal(t, 1, total, "builds queued by %d executors at once: %v", n, queued)
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.builds"))
	require.Equal(t, int64(1), e.count(`select count(*) from indexpilot.mutation_log where outcome = 'queued'`))

	// Two executors then race for the build: one index.
	e.start(nil)
	e.start(nil)
	require.Eventually(t, func() bool { return e.recState(lost.RecommendationID) == "applied" }, wait, tick)
	list, err := indexdef.Load(context.Background(), e.db.Pool, "public", "contacts")
	require.NoError(t, err)
	equal := 0
	for _, x := range list {
		if x.Equal(lost.Index) {
			equal++
		}
	}
	require.Equal(t, 1, equal)
	require.Equal(t, int64(1), e.count(`select count(*) from indexpilot.mutation_log
 where stage = 'executor' and outcome in ('built', 'already_exists')`))
}
