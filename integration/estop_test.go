package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/executor"
)

// bigRows makes CREATE INDEX CONCURRENTLY on big(h) take well over 10 s:
// 4 million md5 strings sorted with maintenance_work_mem at its 1 MB
// minimum and no parallel workers (27 s on the shared 2-core test host;
// generating the table takes about 10 s, unlogged).
const bigRows = 4_000_000

// estopEnv is a control database that is also the target "main", with a
// big table, an executor running in this process on the default
// in-process bus, and the indexpilot CLI binary to issue stops from a
// second process.
type estopEnv struct {
	tb  testing.TB
	db  *pgtest.Database
	bin string
	env []string
	run *running
}

func newEstopEnv(tb testing.TB) *estopEnv {
	tb.Helper()
	ctx := context.Background()
	db := pgtest.NewDatabase(tb)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(tb, err)
	bin := filepath.Join(tb.TempDir(), "indexpilot")
	built := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = exec.Command("go", "build", "-o", bin, "github.com/indexpilot/indexpilot/services/indexpilot/cmd/indexpilot").CombinedOutput()
		built <- err
	}()
	db.Exec(tb,
		"alter database "+postgres.Ident(db.Name)+" set maintenance_work_mem = '1MB'",
		"alter database "+postgres.Ident(db.Name)+" set max_parallel_maintenance_workers = 0",
		"create unlogged table public.big as select g as id, md5(g::text) as h from generate_series(1, "+strconv.Itoa(bigRows)+") g",
		"analyze public.big")
	require.NoError(tb, <-built, "build the indexpilot binary: %s", out)

	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Executor.PollInterval = 100 * time.Millisecond
	cfg.Executor.CPU.Enabled = false // the shared host's CPU must not defer the build
	// The default refresh (5 s) stays: only NOTIFY can make the 1 s.
	e := &estopEnv{tb: tb, db: db, bin: bin, env: append(os.Environ(),
		"INDEXPILOT_CONFIG=",
		"INDEXPILOT_DATABASE_URL="+db.URL,
		"INDEXPILOT_TARGETS=main="+db.URL,
	)}
	e.run = startStage(tb, "executor", executor.Start, cfg, db.Pool)
	return e
}

// queue approves spec and queues its build as the executor's decision
// handler does, and returns the recommendation id.
func (e *estopEnv) queue(spec events.IndexSpec) string {
	e.tb.Helper()
	recID := events.RecommendationID("main", spec)
	cand := events.CandidateID("main", spec, "v1")
	candEvent := events.DeterministicID("candidate_scored", cand, "2026-11-25T12:00:00.000000Z")
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, 'main', $2, $3, $4, $5, $6, 'approved', 'apply_mode', $7, $8, 'v1', 90, 100000, '{}')`,
		recID, spec.Key(), spec.Schema, spec.Table, spec, indexdef.Name(spec), cand, candEvent)
	require.NoError(e.tb, err)
	_, err = e.db.Pool.Exec(ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, query_ids)
values ($1, 'main', $2, $3, $4, $5, '{}')`, recID, spec, indexdef.Name(spec), events.DeterministicID("decision", recID), cand)
	require.NoError(e.tb, err)
	return recID
}

// cli runs the indexpilot binary in its own process.
func (e *estopEnv) cli(args ...string) {
	e.tb.Helper()
	var out bytes.Buffer
	cmd := exec.Command(e.bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = e.env, &out, &out
	require.NoError(e.tb, cmd.Run(), "indexpilot %v: %s", args, out.String())
}

func (e *estopEnv) scalar(sql string, args ...any) any {
	e.tb.Helper()
	var v any
	require.NoError(e.tb, e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v), sql)
	return v
}

// buildingPID waits until CREATE INDEX CONCURRENTLY on public.big is
// past its start and returns the server pid of its session.
func (e *estopEnv) buildingPID() int32 {
	e.tb.Helper()
	var pid int32
	require.Eventually(e.tb, func() bool {
		err := e.db.Pool.QueryRow(context.Background(), `select pid from pg_stat_progress_create_index
 where relid = 'public.big'::regclass and phase like 'building index%'`).Scan(&pid)
		return err == nil
	}, 2*time.Minute, 10*time.Millisecond, "the build never started")
	return pid
}

// stopLatency is what one emergency stop took, on the server's clock, from
// the start of the transaction that recorded it (its mutation_log row).
type stopLatency struct {
	// cancelled: the CREATE INDEX is no longer running (its progress row
	// is gone).
	cancelled time.Duration
	// gone: the build's backend has left pg_stat_activity (the INVALID
	// leftover dropped on the way, the session closed).
	gone time.Duration
}

// stop issues `indexpilot bypass stop` from a second process while the
// build of pid runs, and measures, by polling the server, when the build
// is cancelled and its backend gone.
func (e *estopEnv) stop(pid int32, reason string) stopLatency {
	e.tb.Helper()
	ctx := context.Background()
	conn, err := e.db.Pool.Acquire(ctx)
	require.NoError(e.tb, err)
	defer conn.Release()
	type seen struct {
		cancelled, gone time.Time
		err             error
	}
	done := make(chan seen, 1)
	go func() {
		var s seen
		deadline := time.Now().Add(2 * time.Minute)
		for s.gone.IsZero() && time.Now().Before(deadline) {
			var at time.Time
			var building, alive bool
			if s.err = conn.QueryRow(ctx, `select clock_timestamp(),
       exists(select 1 from pg_stat_progress_create_index where pid = $1),
       exists(select 1 from pg_stat_activity where pid = $1)`, pid).Scan(&at, &building, &alive); s.err != nil {
				break
			}
			if !building && s.cancelled.IsZero() {
				s.cancelled = at
			}
			if !alive {
				s.gone = at
			}
			time.Sleep(2 * time.Millisecond)
		}
		done <- s
	}()
	e.cli("bypass", "stop", "--reason", reason)
	s := <-done
	require.NoError(e.tb, s.err)
	require.False(e.tb, s.gone.IsZero(), "the build's backend was still there 2 minutes after the stop")
	at, ok := e.scalar(`select occurred_at from indexpilot.mutation_log
 where stage = 'bypass' and action = 'bypass_set' and outcome = 'disabled' and reason = $1`, reason).(time.Time)
	require.True(e.tb, ok)
	return stopLatency{cancelled: s.cancelled.Sub(at), gone: s.gone.Sub(at)}
}

// settledStopped waits until the executor has recorded the build of recID
// as stopped.
func (e *estopEnv) settledStopped(recID string) {
	e.tb.Helper()
	require.Eventually(e.tb, func() bool {
		return e.scalar("select state from indexpilot.builds where recommendation_id = $1", recID) == "stopped"
	}, time.Minute, 10*time.Millisecond, "the stopped build was not recorded as stopped")
}

func (e *estopEnv) invalidIndexes() int64 {
	e.tb.Helper()
	n, _ := e.scalar(`select count(*) from pg_index where indrelid = 'public.big'::regclass and not indisvalid`).(int64)
	return n
}

// TestEmergencyStopFromTheCLICancelsARunningBuildAtOnce is the operator's
// emergency stop on the default one-process setup: a CREATE INDEX
// CONCURRENTLY that takes well over 10 s runs in the executor (in-process
// bus, default 5 s refresh), and `indexpilot bypass stop` is typed in
// another process. The build is cancelled on the server within 1 s, its
// INVALID index dropped, its row says stopped and why; nothing starts
// while the stop is on, and after `bypass resume` both pending builds are
// done.
func TestEmergencyStopFromTheCLICancelsARunningBuildAtOnce(t *testing.T) {
	e := newEstopEnv(t)
	slow := events.IndexSpec{Schema: "public", Table: "big", Method: "btree", Columns: []string{"h"}}
	next := events.IndexSpec{Schema: "public", Table: "big", Method: "btree", Columns: []string{"id"}}
	slowID := e.queue(slow)
	pid := e.buildingPID()
	nextID := e.queue(next) // waits behind the running build of the same table

	// The 1 s bound is the requirement, asserted on the server's
	// clock; measured values are about 0.1-0.2 s (docs/gatekeeper.md), so
	// the margin is wide even on the loaded shared host.
	lat := e.stop(pid, "incident 7")
	t.Logf("build cancelled %s and its backend gone %s after the stop was recorded", lat.cancelled, lat.gone)
	require.LessOrEqual(t, lat.cancelled, time.Second, "the build was not cancelled within 1 s of the emergency stop")
	require.LessOrEqual(t, lat.gone, time.Second, "the build's backend was not gone within 1 s of the emergency stop")

	e.settledStopped(slowID)
	require.Zero(t, e.invalidIndexes(), "the stopped build left its INVALID index")
	require.Equal(t, "emergency stop: emergency disabled by runtime", e.scalar(
		"select split_part(last_error, ' (', 1) from indexpilot.builds where recommendation_id = $1", slowID))
	require.Contains(t, e.scalar("select last_error from indexpilot.builds where recommendation_id = $1", slowID), "incident 7")
	require.Equal(t, "stopped", e.scalar(`select outcome from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1 order by id desc limit 1`, slowID))

	// Nothing starts while the stop is on, though both builds are due.
	require.Never(t, func() bool {
		n, _ := e.scalar(`select count(*) from pg_stat_progress_create_index where relid = 'public.big'::regclass`).(int64)
		m, _ := e.scalar(`select count(*) from indexpilot.builds where state = 'running'`).(int64)
		return n > 0 || m > 0
	}, 2*time.Second, 20*time.Millisecond, "a build started during the emergency stop")
	require.Equal(t, int32(0), e.scalar("select attempts from indexpilot.builds where recommendation_id = $1", nextID))

	e.cli("bypass", "resume", "--reason", "incident 7 over")
	require.Eventually(t, func() bool {
		n, _ := e.scalar(`select count(*) from indexpilot.recommendations where id = any($1) and state = 'applied'`,
			[]string{slowID, nextID}).(int64)
		return n == 2
	}, 5*time.Minute, 100*time.Millisecond, "the pending builds were not done after the resume")
	require.Zero(t, e.invalidIndexes())
	took := e.scalar(`select (evidence->>'duration_ms')::float8 from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1 and outcome = 'built'`, slowID)
	t.Logf("the stopped build, resumed, took %.1f s to complete", took.(float64)/1000)
	e.run.stop(t)
}

// BenchmarkEmergencyStopLatency measures b.N emergency stops (run it with
// -benchtime=20x), each issued with `indexpilot bypass stop` from a second
// process while CREATE INDEX CONCURRENTLY runs in the executor on the
// in-process bus, then resumed. It reports, on the server's clock from the
// transaction that recorded the stop, when the build was cancelled and
// when its backend was gone: median and max.
func BenchmarkEmergencyStopLatency(b *testing.B) {
	e := newEstopEnv(b)
	recID := e.queue(events.IndexSpec{Schema: "public", Table: "big", Method: "btree", Columns: []string{"h"}})
	var cancelled, gone []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pid := e.buildingPID()
		lat := e.stop(pid, "bench stop "+time.Now().Format(time.RFC3339Nano))
		cancelled, gone = append(cancelled, lat.cancelled), append(gone, lat.gone)
		e.settledStopped(recID)
		require.Zero(b, e.invalidIndexes())
		e.cli("bypass", "resume", "--reason", "bench resume")
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	median := func(l []time.Duration) time.Duration { l = slices.Clone(l); slices.Sort(l); return l[len(l)/2] }
	b.ReportMetric(ms(median(cancelled)), "cancel-median-ms")
	b.ReportMetric(ms(slices.Max(cancelled)), "cancel-max-ms")
	b.ReportMetric(ms(median(gone)), "gone-median-ms")
	b.ReportMetric(ms(slices.Max(gone)), "gone-max-ms")
	b.ReportMetric(0, "ns/op")
	e.run.stop(b)
}
