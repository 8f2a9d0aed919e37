package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// TestCheckFindsViolations plants what the invariants forbid (a duplicate
// index, an INVALID index, a build with two outcomes, an approved
// recommendation that never reached the executor) and expects Check to name
// each; on a clean database it reports nothing.
func TestCheckFindsViolations(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		"create table public.t (id int primary key, a int, b int)",
		"insert into public.t select g, g % 10, g % 3 from generate_series(1, 100) g")
	require.Empty(t, Check(ctx, db.Pool, 0), "a clean database")

	db.Exec(t,
		"create index t_a_1 on public.t (a)",
		"create index t_a_2 on public.t (a)",
		"create index t_a_b on public.t (a, b)")
	_, err = db.Pool.Exec(ctx, "create unique index concurrently t_b_unique on public.t (b)")
	require.Error(t, err, "a unique index on duplicate values fails and stays INVALID")
	db.Exec(t, `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ('00000000-0000-0000-0000-000000000001', 'chaos', 'k1', 'public', 't', '{}', 't_a_1', 'applied', 'apply_mode',
        gen_random_uuid(), gen_random_uuid(), 'v1', 50, 1000, '{}'),
       ('00000000-0000-0000-0000-000000000002', 'chaos', 'k2', 'public', 't', '{}', 't_c', 'approved', 'apply_mode',
        gen_random_uuid(), gen_random_uuid(), 'v1', 50, 1000, '{}')`,
		`insert into indexpilot.builds (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, state)
values ('00000000-0000-0000-0000-000000000001', 'chaos', '{}', 't_a_1', gen_random_uuid(), gen_random_uuid(), 'done')`,
		`insert into indexpilot.mutation_log (stage, action, outcome, recommendation_id)
values ('executor', 'build', 'built', '00000000-0000-0000-0000-000000000001'),
       ('executor', 'build', 'already_exists', '00000000-0000-0000-0000-000000000001')`)

	got := Check(ctx, db.Pool, LockTimeout+2*LockTimeout)
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"duplicate index: t has 2 indexes with one definition: t_a_1, t_a_2",
		"INVALID index left: t_b_unique",
		"recommendation lost: recommendation 00000000-0000-0000-0000-000000000002 (t_c) is approved",
		"not exactly one outcome per build: build 00000000-0000-0000-0000-000000000001 (t_a_1) is done with 2 terminal outcomes",
		"lock wait: an application statement waited 6s",
	} {
		require.Contains(t, joined, want, "Check's report")
	}
	require.NotContains(t, joined, "applied but not built", "t_a_1 exists and is valid")
	require.Len(t, got, 5, "one line per planted violation: %s", joined)
}

// TestCheckCandidatesFindsLostOnes: a candidate event the gatekeeper never
// processed, and one processed without leaving a row, are both reported;
// one with its recommendation is not.
func TestCheckCandidatesFindsLostOnes(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	cand := func(col string) events.Envelope {
		spec := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{col}}
		env, err := events.Wrap(&events.IndexCandidateScored{Target: "chaos", CandidateID: events.CandidateID("chaos", spec, "v2"),
			Index: spec, FormulaVersion: "v2", WhatIfMethod: "hypopg", WindowEnd: time.Now().UTC(),
			MaxImprovementPct: 50, EstimatedSizeBytes: 1000}, "scorer", "", time.Now().UTC())
		require.NoError(t, err)
		return env
	}
	kept, unprocessed, rowless := cand("a"), cand("b"), cand("c")
	var keptSpec events.IndexCandidateScored
	require.NoError(t, events.DecodeData(kept, &keptSpec))
	db.Exec(t, `insert into indexpilot.processed_events (consumer, event_id) values
 ('`+gatekeeper.Consumer+`', '`+kept.ID+`'), ('`+gatekeeper.Consumer+`', '`+rowless.ID+`')`,
		`insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values (gen_random_uuid(), 'chaos', '`+keptSpec.Index.Key()+`', 'public', 't', '{}', 't_a', 'proposed', 'advisory_mode',
        '`+keptSpec.CandidateID+`', '`+kept.ID+`', 'v2', 50, 1000, '{}')`)

	got := CheckCandidates(ctx, db.Pool, []events.Envelope{kept, unprocessed, rowless, kept})
	require.Len(t, got, 2, "%v", got)
	require.Contains(t, got[0], unprocessed.ID+" (public.t|btree|b|, published ", got[0])
	require.Contains(t, got[1], rowless.ID+" (public.t|btree|c|) processed without a row", got[1])
}

// TestSessionRefusesAServerWithoutSlotsForARun: on a server whose free
// connection slots cannot hold a run plus the margin IndexPilot's guard
// keeps free, a session stops before its first run with a one-line reason,
// and leaves nothing behind; a shape whose runs fit is let through.
func TestSessionRefusesAServerWithoutSlotsForARun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		// The server runs as OS user postgres: t.TempDir's private parent
		// gets o+x.
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	}
	// 30 slots: a memory-shape run (13) plus the margin (5) fits, a kafka
	// run with two scorers and two executors (38) does not.
	cluster, err := demo.StartClusterWith(ctx, filepath.Join(dir, "cluster"), nil, demo.ClusterOptions{MaxConnections: 30})
	if errors.Is(err, demo.ErrPrerequisite) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	admin := cluster.URL("postgres")

	var out strings.Builder
	_, err = Run(ctx, Options{Runs: 1, Procs: 2, Shape: ShapeKafka, AdminURL: admin}, &out)
	require.Error(t, err)
	require.Contains(t, err.Error(), "a run needs up to 38 plus the 5 IndexPilot leaves free")
	require.Contains(t, err.Error(), "setup-postgres.sh --bench")
	require.NotContains(t, err.Error(), "\n", "one line")
	require.Empty(t, out.String(), "no run was started")

	opts := Options{Runs: 1, Procs: 1, Shape: ShapeMemory, AdminURL: admin}
	require.NoError(t, opts.validate())
	pool, err := connect(ctx, admin, appHarness, 3)
	require.NoError(t, err)
	defer pool.Close()
	short, err := (&Session{opts: opts, admin: pool, out: &out}).shortOfSlots(ctx)
	require.NoError(t, err)
	require.Empty(t, short, "a memory-shape run fits in 30 slots")
}

// TestDroppedRunDatabaseLeavesNoStatements: a run's database takes its
// pg_stat_statements entries with it, so sessions of hundreds of runs do
// not fill the shared server's table (a full table evicts the newest
// entries of everyone else).
func TestDroppedRunDatabaseLeavesNoStatements(t *testing.T) {
	ctx := context.Background()
	admin, err := connect(ctx, pgtest.AdminURL(), appHarness, 3)
	require.NoError(t, err)
	defer admin.Close()
	s := &Session{admin: admin}
	name := fmt.Sprintf("%stest_%d", Prefix, os.Getpid())
	url, err := demo.CreateDatabase(ctx, pgtest.AdminURL(), name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.dropDatabase(context.Background(), name) })
	var oid uint32
	require.NoError(t, admin.QueryRow(ctx, "select oid from pg_database where datname = $1", name).Scan(&oid))
	db, err := connect(ctx, url, appDriver, 1)
	require.NoError(t, err)
	for _, rel := range []string{"pg_class", "pg_namespace", "pg_type"} {
		_, err = db.Exec(ctx, "select count(*) from "+rel)
		require.NoError(t, err)
	}
	db.Close()
	count := func() (n int) {
		require.NoError(t, admin.QueryRow(ctx, "select count(*) from pg_stat_statements where dbid = $1", oid).Scan(&n))
		return n
	}
	require.GreaterOrEqual(t, count(), 3, "the run's statements are tracked")
	require.NoError(t, s.dropDatabase(ctx, name))
	require.Zero(t, count(), "entries of the dropped database left in pg_stat_statements")
}
