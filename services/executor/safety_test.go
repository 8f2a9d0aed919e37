package executor_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/executor"
)

// outcomeTypes are the events the test stage runs record.
var outcomeTypes = []events.Type{events.TypeIndexBuildCompleted, events.TypeIndexBuildFailed,
	events.TypeIndexValidationCompleted, events.TypeIndexRemovalCompleted}

// holdSnapshot opens a repeatable-read snapshot that holds any CREATE INDEX
// CONCURRENTLY at its last phase until release is called.
func (e *env) holdSnapshot() (release func()) {
	e.t.Helper()
	ctx := context.Background()
	snap, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(e.t, err)
	_, err = snap.Exec(ctx, "begin isolation level repeatable read")
	require.NoError(e.t, err)
	_, err = snap.Exec(ctx, "select count(*) from pg_class")
	require.NoError(e.t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = snap.Exec(ctx, "rollback")
			_ = snap.Close(ctx)
		})
	}
	e.t.Cleanup(release)
	return release
}

func (e *env) waitPhase(phase string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		return e.count(`select count(*) from pg_stat_progress_create_index
 where relid = 'public.contacts'::regclass and phase = $1`, phase) == 1
	}, wait, tick, "the build never reached phase %q", phase)
}

func TestLongTransactionBuildGivesUpWithinLockTimeoutAndAppDoesNotWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5000)
	ctx := context.Background()
	const lockTimeout = time.Second

	// A long maintenance transaction holds a lock that conflicts with
	// CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE) but not with the
	// application's reads and writes.
	holder, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(t, err)
	defer holder.Close(ctx)
	_, err = holder.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = holder.Exec(ctx, "lock table public.contacts in share update exclusive mode")
	require.NoError(t, err)

	// The application keeps reading and writing; it records its slowest
	// statement.
	app, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(t, err)
	defer app.Close(ctx)
	var slowest atomic.Int64
	var appQueries atomic.Int64
	appCtx, stopApp := context.WithCancel(ctx)
	appDone := make(chan error, 1)
	go func() {
		for i := 1; appCtx.Err() == nil; i++ {
			start := time.Now()
			if _, err := app.Exec(appCtx, "insert into public.contacts values ($1, 1, 'app@example.com')", 1_000_000+i); err != nil {
				appDone <- err
				return
			}
			var n int64
			if err := app.QueryRow(appCtx, "select count(*) from public.contacts where tenant_id = 1").Scan(&n); err != nil {
				appDone <- err
				return
			}
			if d := time.Since(start).Nanoseconds(); d > slowest.Load() {
				slowest.Store(d)
			}
			appQueries.Add(1)
		}
		appDone <- nil
	}()

	run := e.start(func(c *config.Config) {
		c.Executor.LockTimeout = lockTimeout
		c.Executor.MaxAttempts = 1
	})
	s := spec("email")
	dec := e.approve(s, events.VerdictApproved)
	published := time.Now()
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexBuildFailed)) == 1 }, wait, tick)
	gaveUpAfter := time.Since(published)
	stopApp()
	// The app ends on its cancelled statement, or cleanly when the cancel
	// lands between two statements; any other error is a failure.
	if err := <-appDone; err != nil {
		require.ErrorIs(t, err, context.Canceled)
	}

	var failed events.IndexBuildFailed
	run.payload(t, events.TypeIndexBuildFailed, 0, &failed)
	require.Equal(t, "55P03", failed.SQLState, "the build must give up on its lock timeout: %+v", failed)
	require.Equal(t, byte('T'), holder.PgConn().TxStatus(), "the long transaction was never disturbed")
	exists, _ := e.ourIndex(s)
	require.False(t, exists, "no INVALID leftover")
	t.Logf("build gave up %s after the decision; app ran %d statement pairs, slowest %s",
		gaveUpAfter, appQueries.Load(), time.Duration(slowest.Load()))
	require.Positive(t, appQueries.Load())
	// Generous bounds on a shared 2-core machine: the app never waits for
	// the build's lock queue, and the build never waits much beyond its
	// lock_timeout.
	require.Less(t, time.Duration(slowest.Load()), lockTimeout, "an application statement waited longer than lock_timeout")
	require.Less(t, gaveUpAfter, lockTimeout+15*time.Second)
	_, err = holder.Exec(ctx, "rollback")
	require.NoError(t, err)
}

func TestKilledExecutorLeftoverIsDroppedAndIndexBuiltOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	ctx := context.Background()
	s := spec("tenant_id", "email")
	name := indexdef.Name(s)
	dec := e.approve(s, events.VerdictApproved)

	// What a killed executor leaves: its row claimed under a lease that has
	// now expired, and the INVALID index of its interrupted build (no
	// backend is building it any more).
	_, err := e.db.Pool.Exec(ctx, `update indexpilot.recommendations set state = 'building' where id = $1`, dec.RecommendationID)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, state, attempts, claimed_by, lease_until)
values ($1, 'main', $2, $3, $4, $5, 'running', 1, 'killed/1/dead', now() - interval '1 second')`,
		dec.RecommendationID, s, name, dec.EventID(), dec.CandidateID)
	require.NoError(t, err)
	e.db.Exec(t, "create index "+postgres.Ident(name)+" on public.contacts (tenant_id, email)",
		"update pg_index set indisvalid = false where indexrelid = 'public."+name+"'::regclass")
	_, valid := e.ourIndex(s)
	require.False(t, valid)

	run := e.start(nil)
	// The redelivered decision after the restart changes nothing.
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "applied" }, wait, tick)
	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexBuildCompleted)) == 1 }, wait, tick)
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.processed_events where event_id = $1", dec.EventID()) == 1
	}, wait, tick)

	exists, valid := e.ourIndex(s)
	require.True(t, exists)
	require.True(t, valid)
	var ev map[string]any
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select evidence from indexpilot.mutation_log
 where stage = 'executor' and action = 'build' and recommendation_id = $1`, dec.RecommendationID).Scan(&ev))
	require.Equal(t, true, ev["dropped_leftover"])
	require.Equal(t, "killed/1/dead", ev["took_over_from"])
	require.Equal(t, int64(1), e.count(`select count(*) from indexpilot.mutation_log
 where stage = 'executor' and action = 'build' and outcome = 'built'`), "built exactly once")
	require.Equal(t, int64(1), e.count("select count(*) from pg_index where indrelid = 'public.contacts'::regclass and not indisprimary"))
}

func TestHighCPUCancelsBuildCleansUpAndDefers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	ctx := context.Background()
	s := spec("email")
	var cpu atomic.Int64
	cpu.Store(10)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(ctx) }()
	release := e.holdSnapshot()
	run := e.startWith(func(c *config.Config) {
		c.Executor.LockTimeout = 5 * time.Minute
		c.Executor.CPU.Enabled = true
		c.Executor.CPU.Interval = 30 * time.Millisecond
		c.Executor.CPU.Samples = 3
		c.Executor.CPU.CeilingPct = 80
		c.Executor.CPU.DeferFor = time.Hour
	}, executor.Options{CPU: executor.CPUFunc(func(context.Context, string) (float64, error) {
		return float64(cpu.Load()), nil
	}), Meter: mp})
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	e.waitPhase("waiting for old snapshots")

	// Progress is recorded while it runs.
	require.Eventually(t, func() bool {
		return e.scalar(`select progress->>'phase' from indexpilot.builds where recommendation_id = $1`,
			dec.RecommendationID) == "waiting for old snapshots"
	}, wait, tick)
	var p executor.Progress
	raw := e.scalar(`select progress from indexpilot.builds where recommendation_id = $1`, dec.RecommendationID)
	b, err := json.Marshal(raw)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &p))
	require.Equal(t, "contacts", p.Table)
	require.NotNil(t, p.CPUPercent)
	require.Equal(t, "building", e.recState(dec.RecommendationID))

	// And exposed as metrics.
	gauges := map[string]metricdata.DataPoint[float64]{}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[float64]); ok && len(g.DataPoints) == 1 {
				gauges[m.Name] = g.DataPoints[0]
			}
		}
	}
	require.Contains(t, gauges, executor.MetricBuildProgress)
	require.Contains(t, gauges, executor.MetricBuildCPU)
	require.Equal(t, 10.0, gauges[executor.MetricBuildCPU].Value)
	attrs := gauges[executor.MetricBuildProgress].Attributes
	phase, _ := attrs.Value("phase")
	require.Equal(t, "waiting for old snapshots", phase.AsString())
	index, _ := attrs.Value("index")
	require.Equal(t, indexdef.Name(s), index.AsString())

	cpu.Store(95)
	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "deferred" }, wait, tick)
	var state, outcome, reason string
	var later bool
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select b.state, b.not_before > now() + interval '50 minutes', m.outcome, m.reason
  from indexpilot.builds b join indexpilot.mutation_log m on m.recommendation_id = b.recommendation_id and m.stage = 'executor'
 where b.recommendation_id = $1`, dec.RecommendationID).Scan(&state, &later, &outcome, &reason))
	require.Equal(t, "pending", state)
	require.True(t, later, "a deferred build waits defer_for")
	require.Equal(t, "deferred", outcome)
	require.Contains(t, reason, "ceiling")
	exists, _ := e.ourIndex(s)
	require.False(t, exists, "the cancelled build's leftover must be dropped")
	require.Equal(t, int64(0), e.count(`select count(*) from pg_stat_progress_create_index where relid = 'public.contacts'::regclass`))
	require.Empty(t, run.received(events.TypeIndexBuildCompleted))
	require.Empty(t, run.received(events.TypeIndexBuildFailed), "a deferral is not a failure")

	// Once it is due again and the CPU is calm, the build goes ahead.
	release()
	cpu.Store(10)
	_, err = e.db.Pool.Exec(ctx, "update indexpilot.builds set not_before = now() where recommendation_id = $1", dec.RecommendationID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "applied" }, wait, tick)
	_, valid := e.ourIndex(s)
	require.True(t, valid)
}

func TestEmergencyStopCancelsInFlightBuildAndClaimsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	ctx := context.Background()
	s := spec("email")
	var stopped atomic.Bool
	release := e.holdSnapshot()
	run := e.startWith(func(c *config.Config) { c.Executor.LockTimeout = 5 * time.Minute },
		executor.Options{Stopper: executor.StopperFunc(func() (bool, string) { return stopped.Load(), "operator" })})
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	e.waitPhase("waiting for old snapshots")

	stopped.Store(true)
	require.Eventually(t, func() bool {
		return e.scalar(`select outcome from indexpilot.mutation_log where stage = 'executor' and recommendation_id = $1`,
			dec.RecommendationID) == "stopped"
	}, wait, tick)
	exists, _ := e.ourIndex(s)
	require.False(t, exists, "the stopped build's leftover must be dropped")
	require.Equal(t, "stopped", e.scalar("select state from indexpilot.builds where recommendation_id = $1", dec.RecommendationID))
	require.Equal(t, "emergency stop: operator", e.scalar("select last_error from indexpilot.builds where recommendation_id = $1", dec.RecommendationID))
	require.Equal(t, "approved", e.recState(dec.RecommendationID))

	// While stopped, nothing is claimed even though the build is due.
	release()
	other := e.approve(spec("tenant_id"), events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", other))
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.builds where state in ('pending','stopped') and not_before <= now()") == 2
	}, wait, tick)
	require.Never(t, func() bool {
		return e.count("select count(*) from indexpilot.builds where state not in ('pending','stopped')") > 0
	}, 500*time.Millisecond, tick)

	stopped.Store(false)
	require.Eventually(t, func() bool {
		return e.recState(dec.RecommendationID) == "applied" && e.recState(other.RecommendationID) == "applied"
	}, wait, tick)
}

func TestBuildOnPartitionedTableThroughTheStage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	ctx := context.Background()
	e.db.Exec(t,
		"create table public.events (id bigint not null, tenant_id int not null) partition by range (id)",
		"create table public.events_a partition of public.events for values from (0) to (5000)",
		"create table public.events_b partition of public.events for values from (5000) to (maxvalue)",
		"insert into public.events select g, g % 50 from generate_series(1, 10000) g")
	s := events.IndexSpec{Schema: "public", Table: "events", Method: "btree", Columns: []string{"tenant_id"}}
	run := e.start(nil)
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "applied" }, wait, tick,
		"state %q", e.recState(dec.RecommendationID))
	require.Equal(t, int64(3), e.count(`select count(*) from pg_partition_tree($1::regclass) p
  join pg_index x on x.indexrelid = p.relid where x.indisvalid`, "public."+indexdef.Name(s)))
	require.Contains(t, e.scalar(`select ddl from indexpilot.mutation_log where action = 'build' and recommendation_id = $1`,
		dec.RecommendationID), "ATTACH PARTITION")
}
