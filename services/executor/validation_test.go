package executor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
)

const targetedQuery = "SELECT id FROM public.contacts WHERE email = $1"

// workload records one collector window of a statement, as the collector
// writes it to workload_stats.
func (e *env) workload(queryID, query string, start, end time.Time, calls int64, meanMs float64) {
	e.t.Helper()
	_, err := e.db.Pool.Exec(context.Background(), `insert into indexpilot.workload_stats
  (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows)
values ('main', $1, $2, $3, $4, $5, $6, $5)`, queryID, end, start, query, calls, float64(calls)*meanMs)
	require.NoError(e.t, err)
}

func (e *env) dbNow() time.Time {
	e.t.Helper()
	var now time.Time
	require.NoError(e.t, e.db.Pool.QueryRow(context.Background(), "select now()").Scan(&now))
	return now
}

func validationCfg(maxWait time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		c.Executor.Validation.MinWait = 0
		c.Executor.Validation.MaxWait = maxWait
		c.Executor.Validation.MinCalls = 100
		c.Executor.Validation.BeforeWindow = time.Hour
	}
}

func TestWorkloadShiftedAwayIndexIsReverted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	ctx := context.Background()
	s := spec("email")
	now := e.dbNow()
	// Before the build the application looked contacts up by email.
	e.workload("42", targetedQuery, now.Add(-20*time.Minute), now.Add(-10*time.Minute), 500, 8)
	e.workload("42", targetedQuery, now.Add(-10*time.Minute), now.Add(-time.Minute), 400, 8)

	run := e.start(validationCfg(1500 * time.Millisecond))
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.validations where recommendation_id = $1", dec.RecommendationID) == 1
	}, wait, tick)
	_, valid := e.ourIndex(s)
	require.True(t, valid, "the index is built first")

	// Then the workload shifts: the application now filters by tenant, and
	// the email lookup is gone.
	built := e.scalar("select built_at from indexpilot.validations where recommendation_id = $1", dec.RecommendationID).(time.Time)
	e.workload("77", "SELECT id FROM public.contacts WHERE tenant_id = $1", built, built.Add(time.Second), 3000, 2)

	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "reverted" }, wait, tick,
		"state is %q", e.recState(dec.RecommendationID))
	exists, _ := e.ourIndex(s)
	require.False(t, exists, "the reverted index must be dropped")

	require.Equal(t, "no_change", e.scalar("select verdict from indexpilot.validations where recommendation_id = $1", dec.RecommendationID))
	require.Equal(t, true, e.scalar("select reverted from indexpilot.validations where recommendation_id = $1", dec.RecommendationID))
	require.Equal(t, dec.RecommendationID, e.scalar(`select recommendation_id::text from indexpilot.blocklist
 where target = 'main' and query_fingerprint = '42' and index_key = $1`, s.Key()))

	var validateID int64
	var ev executor.ValidationEvidence
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select id, evidence from indexpilot.mutation_log
 where action = 'validate' and recommendation_id = $1`, dec.RecommendationID).Scan(&validateID, &ev))
	require.Equal(t, "no_change", ev.Verdict)
	require.True(t, ev.Reverted)
	require.Len(t, ev.Statements, 1)
	require.Equal(t, int64(900), ev.Statements[0].BeforeCalls)
	require.InDelta(t, 8.0, ev.Statements[0].BeforeMeanMs, 1e-9)
	require.Zero(t, ev.Statements[0].AfterCalls)
	require.Contains(t, ev.Reason, "stopped running")
	var parent int64
	var ddl string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select parent_id, ddl from indexpilot.mutation_log
 where action = 'revert' and outcome = 'reverted' and recommendation_id = $1`, dec.RecommendationID).Scan(&parent, &ddl))
	require.Equal(t, validateID, parent)
	require.Equal(t, indexdef.DropSQL("public", indexdef.Name(s)), ddl)

	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexValidationCompleted)) == 1 }, wait, tick)
	var done events.IndexValidationCompleted
	run.payload(t, events.TypeIndexValidationCompleted, 0, &done)
	require.Equal(t, events.VerdictNoChange, done.Verdict)
	require.True(t, done.Reverted)
	require.Equal(t, indexdef.Name(s), done.IndexName)
}

func TestIndexThatHelpsIsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	ctx := context.Background()
	s := spec("email")
	now := e.dbNow()
	e.workload("42", targetedQuery, now.Add(-20*time.Minute), now.Add(-time.Minute), 500, 8)

	run := e.start(validationCfg(time.Hour))
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.validations where recommendation_id = $1", dec.RecommendationID) == 1
	}, wait, tick)
	built := e.scalar("select built_at from indexpilot.validations where recommendation_id = $1", dec.RecommendationID).(time.Time)
	// Too few calls yet: the validation waits, scaled to the call rate.
	require.Eventually(t, func() bool {
		return e.count(`select count(*) from indexpilot.validations where recommendation_id = $1
   and state = 'pending' and not_before > now() + interval '1 minute'`, dec.RecommendationID) == 1
	}, wait, tick)
	e.workload("42", targetedQuery, built, built.Add(30*time.Second), 250, 0.4)
	_, err := e.db.Pool.Exec(ctx, "update indexpilot.validations set not_before = now() where recommendation_id = $1", dec.RecommendationID)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		return e.scalar("select verdict from indexpilot.validations where recommendation_id = $1", dec.RecommendationID) == "improved"
	}, wait, tick)
	require.Equal(t, "applied", e.recState(dec.RecommendationID))
	_, valid := e.ourIndex(s)
	require.True(t, valid)
	require.Equal(t, int64(0), e.count("select count(*) from indexpilot.blocklist"))
	var ev executor.ValidationEvidence
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select evidence from indexpilot.mutation_log
 where action = 'validate' and recommendation_id = $1`, dec.RecommendationID).Scan(&ev))
	require.InDelta(t, 95.0, ev.ChangePct, 1e-6)
	require.NotNil(t, ev.PlanUsesIndex)
	require.True(t, *ev.PlanUsesIndex, "the plan of %q must use the index", targetedQuery)
	require.False(t, ev.Reverted)
}

func TestApprovedRemovalDropsConcurrentlyAndRestoreRecreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5000)
	ctx := context.Background()
	def := "CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)"
	e.db.Exec(t, def)
	id := events.RemovalID("main", "public", "contacts_email_idx", def)
	pk := events.RemovalID("main", "public", "contacts_pkey", "")
	// The index is one IndexPilot built: its recommendation is applied.
	rec := e.approve(events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"email"}}, events.VerdictApproved).RecommendationID
	_, err := e.db.Pool.Exec(ctx, `update indexpilot.recommendations set state = 'applied', index_name = 'contacts_email_idx' where id = $1`, rec)
	require.NoError(t, err)
	for _, r := range [][2]string{{id, "contacts_email_idx"}, {pk, "contacts_pkey"}} {
		_, err := e.db.Pool.Exec(ctx, `insert into indexpilot.removals (id, target, schema_name, index_name, reason, recommendation_id)
values ($1, 'main', 'public', $2, 'unused', (select id from indexpilot.recommendations where index_name = $2))`, r[0], r[1])
		require.NoError(t, err)
	}

	run := e.start(nil)
	require.Eventually(t, func() bool {
		return e.scalar("select state from indexpilot.removals where id = $1", id) == "done" &&
			e.scalar("select state from indexpilot.removals where id = $1", pk) == "failed"
	}, wait, tick)
	require.Equal(t, int64(0), e.count("select count(*) from pg_class where relname = 'contacts_email_idx'"))
	require.Equal(t, int64(1), e.count("select count(*) from pg_class where relname = 'contacts_pkey'"), "a primary key is never removed")
	require.Equal(t, def, e.scalar("select definition from indexpilot.removals where id = $1", id))
	require.Equal(t, "removed", e.scalar("select state from indexpilot.recommendations where id = $1", rec),
		"the recommendation of a dropped index stayed applied")
	require.Equal(t, `DROP INDEX CONCURRENTLY IF EXISTS "public"."contacts_email_idx"`, e.scalar(`select ddl from indexpilot.mutation_log
 where action = 'remove' and outcome = 'dropped'`))
	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexRemovalCompleted)) == 1 }, wait, tick)
	var done events.IndexRemovalCompleted
	run.payload(t, events.TypeIndexRemovalCompleted, 0, &done)
	require.Equal(t, def, done.Definition)
	require.Equal(t, id, done.RemovalID)

	cfg := config.Default()
	targets := stage.NewTargets([]config.Target{{Name: "main", DSN: e.db.URL}}, "cli")
	defer targets.Close()
	_, err = executor.Restore(ctx, e.db.Pool, targets, cfg.Executor, pk[:8])
	require.ErrorIs(t, err, executor.ErrNotRestorable, "a failed removal has nothing to restore")
	res, err := executor.Restore(ctx, e.db.Pool, targets, cfg.Executor, id[:8])
	require.NoError(t, err)
	require.Equal(t, "CREATE INDEX CONCURRENTLY contacts_email_idx ON public.contacts USING btree (email)", res.DDL)
	var valid bool
	var got string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select x.indisvalid, pg_get_indexdef(x.indexrelid) from pg_index x
 where x.indexrelid = 'public.contacts_email_idx'::regclass`).Scan(&valid, &got))
	require.True(t, valid)
	require.Equal(t, def, got)
	require.Equal(t, "restored", e.scalar("select state from indexpilot.removals where id = $1", id))
	require.Equal(t, "applied", e.scalar("select state from indexpilot.recommendations where id = $1", rec), "restored, it is applied again")
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.mutation_log where action = 'restore'"))
	_, err = executor.Restore(ctx, e.db.Pool, targets, cfg.Executor, id)
	require.ErrorIs(t, err, executor.ErrNotRestorable, "restoring twice does nothing")
}

func TestEmergencyStopCancelsInFlightRemoval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5000)
	ctx := context.Background()
	def := "CREATE INDEX contacts_tenant_idx ON public.contacts USING btree (tenant_id)"
	e.db.Exec(t, def)
	id := events.RemovalID("main", "public", "contacts_tenant_idx", def)
	_, err := e.db.Pool.Exec(ctx, `insert into indexpilot.removals (id, target, schema_name, index_name, reason)
values ($1, 'main', 'public', 'contacts_tenant_idx', 'unused')`, id)
	require.NoError(t, err)

	// An open transaction that read the table makes DROP INDEX CONCURRENTLY
	// wait for it.
	reader, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(t, err)
	defer reader.Close(ctx)
	_, err = reader.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = reader.Exec(ctx, "select count(*) from public.contacts")
	require.NoError(t, err)

	var stopped atomic.Bool
	e.startWith(func(c *config.Config) { c.Executor.LockTimeout = 5 * time.Minute },
		executor.Options{Stopper: executor.StopperFunc(func() (bool, string) { return stopped.Load(), "operator" })})
	require.Eventually(t, func() bool {
		return e.count(`select count(*) from pg_stat_activity where query like '%DROP INDEX CONCURRENTLY%contacts_tenant_idx%'
   and wait_event_type = 'Lock' and pid <> pg_backend_pid()`) == 1
	}, wait, tick, "the drop never started waiting")
	stopped.Store(true)
	require.Eventually(t, func() bool {
		return e.scalar(`select outcome from indexpilot.mutation_log where action = 'remove'`) == "retry"
	}, wait, tick)
	require.Equal(t, "pending", e.scalar("select state from indexpilot.removals where id = $1", id))
	require.Equal(t, def, e.scalar("select definition from indexpilot.removals where id = $1", id), "the definition is kept")

	_, err = reader.Exec(ctx, "rollback")
	require.NoError(t, err)
	stopped.Store(false)
	require.Eventually(t, func() bool { return e.scalar("select state from indexpilot.removals where id = $1", id) == "done" }, wait, tick)
	require.Equal(t, int64(0), e.count("select count(*) from pg_class where relname = 'contacts_tenant_idx'"))
}
