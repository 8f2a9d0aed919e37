package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/executor"
)

// TestExecutorProcessKilledMidBuild runs the executor as its own process
// over Kafka, kills it with SIGKILL while CREATE INDEX CONCURRENTLY runs
// (so nothing of its own cleanup runs), then starts a new executor: the
// claim is taken over when the lease expires, no INVALID index is left, and
// exactly one valid index exists.
func TestExecutorProcessKilledMidBuild(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		"create table public.contacts (id bigint primary key, tenant_id int not null, email text not null)",
		"insert into public.contacts select g, g % 50, 'user' || g || '@example.com' from generate_series(1, 50000) g",
		"analyze public.contacts")
	brokers := newKafka(t)

	bin := filepath.Join(t.TempDir(), "executor")
	build := exec.Command("go", "build", "-o", bin, "github.com/indexpilot/indexpilot/services/executor/cmd/executor")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the executor binary: %s", out)

	// An open snapshot holds the build at its last phase.
	snap, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer snap.Close(ctx)
	_, err = snap.Exec(ctx, "begin isolation level repeatable read")
	require.NoError(t, err)
	_, err = snap.Exec(ctx, "select count(*) from pg_class")
	require.NoError(t, err)

	var stderr bytes.Buffer
	proc := exec.Command(bin)
	proc.Env = append(os.Environ(),
		"INDEXPILOT_CONFIG=",
		"INDEXPILOT_DATABASE_URL="+db.URL,
		"INDEXPILOT_TARGETS=main="+db.URL,
		"INDEXPILOT_BUS_TRANSPORT=kafka",
		"INDEXPILOT_BUS_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"INDEXPILOT_BUS_KAFKA_VERSION=3.6.0",
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=apply",
		"INDEXPILOT_EXECUTOR_POLL_INTERVAL=100ms",
		"INDEXPILOT_EXECUTOR_LEASE=2s",
		"INDEXPILOT_EXECUTOR_LOCK_TIMEOUT=5m",
		"INDEXPILOT_EXECUTOR_CPU_ENABLED=false", // the shared host's CPU must not defer the build
	)
	proc.Stderr = &stderr
	require.NoError(t, proc.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = proc.Process.Kill()
			_ = proc.Wait()
		}
	})

	spec := events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"tenant_id", "email"}}
	recID := events.RecommendationID("main", spec)
	cand := events.CandidateID("main", spec, "v1")
	candEvent := events.DeterministicID("candidate_scored", cand, "2026-11-25T12:00:00.000000Z")
	db.Exec(t, `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ('`+recID+`', 'main', '`+spec.Key()+`', 'public', 'contacts',
  '{"schema":"public","table":"contacts","method":"btree","columns":["tenant_id","email"]}',
  '`+indexdef.Name(spec)+`', 'approved', 'apply_mode', '`+cand+`', '`+candEvent+`', 'v1', 90, 100000, '{}')`)
	dec := &events.IndexDecisionMade{Target: "main", RecommendationID: recID, CandidateID: cand, CandidateEventID: candEvent,
		Index: spec, Verdict: events.VerdictApproved, Reason: events.ReasonApplyMode, QueryIDs: []string{"42"},
		DecidedAt: time.Now().UTC()}
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Executor.PollInterval = 100 * time.Millisecond
	cfg.Executor.Lease = 2 * time.Second
	cfg.Executor.CPU.Enabled = false
	pub, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Publish(ctx, "test", "", dec))

	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
		return n
	}
	require.Eventually(t, func() bool {
		return count(`select count(*) from pg_stat_progress_create_index
 where relid = 'public.contacts'::regclass and phase = 'waiting for old snapshots'`) == 1
	}, 120*time.Second, 50*time.Millisecond, "the executor process never reached the build's last phase; stderr: %s", &stderr)

	require.NoError(t, proc.Process.Signal(syscall.SIGKILL))
	killed = true
	_ = proc.Wait()
	require.Equal(t, 1, count("select count(*) from indexpilot.builds where state = 'running'"), "the dead process's claim remains")
	require.Equal(t, 1, count(`select count(*) from pg_index where indrelid = 'public.contacts'::regclass and not indisvalid`),
		"the killed build left its INVALID index")
	// The server notices the dead client (client_connection_check_interval,
	// set by the build's session) and aborts the orphaned build, leaving the
	// INVALID index behind.
	require.Eventually(t, func() bool {
		return count(`select count(*) from pg_stat_progress_create_index where relid = 'public.contacts'::regclass`) == 0
	}, 60*time.Second, 100*time.Millisecond, "the orphaned build was never aborted by the server")
	require.Equal(t, 1, count(`select count(*) from pg_index where indrelid = 'public.contacts'::regclass and not indisvalid`))
	_, err = snap.Exec(ctx, "rollback")
	require.NoError(t, err)

	// A new executor (and the decision redelivered) finish the job.
	again := startStage(t, "executor", executor.Start, cfg, db.Pool)
	require.NoError(t, pub.Publish(ctx, "test", "", dec))
	require.Eventually(t, func() bool {
		return count("select count(*) from indexpilot.recommendations where id = $1 and state = 'applied'", recID) == 1
	}, 120*time.Second, 100*time.Millisecond, "the build was never finished after the restart")
	again.stop(t)

	require.Equal(t, 0, count(`select count(*) from pg_index where indrelid = 'public.contacts'::regclass and not indisvalid`),
		"no INVALID leftover")
	require.Equal(t, 1, count(`select count(*) from pg_index where indrelid = 'public.contacts'::regclass and not indisprimary`),
		"exactly one index")
	require.Equal(t, 1, count(`select count(*) from pg_index x join pg_class i on i.oid = x.indexrelid
 where i.relname = $1 and x.indisvalid`, indexdef.Name(spec)))
	require.Equal(t, 1, count(`select count(*) from indexpilot.mutation_log
 where stage = 'executor' and action = 'build' and outcome = 'built'
   and (evidence->>'dropped_leftover')::boolean and evidence->>'took_over_from' <> ''`),
		"one build, after dropping the leftover, by the executor that took the claim over")
	require.Equal(t, 1, count("select count(*) from indexpilot.builds where state = 'done'"))
	var outcome, evidence string
	require.NoError(t, db.Pool.QueryRow(ctx, `select outcome, evidence::text from indexpilot.mutation_log
 where stage = 'executor' and action = 'build' order by id desc limit 1`).Scan(&outcome, &evidence))
	t.Logf("after the restart: %s %s", outcome, evidence)
}
