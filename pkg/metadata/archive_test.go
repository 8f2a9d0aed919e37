package metadata_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestArchiveMovesOldRowsInBatchesAndKeepsLineage(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	// 25 old rows, each the parent of the next, then 3 recent ones; the
	// first recent row's parent is the last old one.
	var parent *int64
	for i := 0; i < 28; i++ {
		id, err := metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "test", Action: "recommend", Outcome: "proposed",
			Target: "main", Fields: []string{"a"}, ParentID: parent, Evidence: map[string]int{"i": i}})
		require.NoError(t, err)
		parent = &id
	}
	db.Exec(t, `update indexpilot.mutation_log set occurred_at = now() - interval '40 days' where id in
  (select id from indexpilot.mutation_log order by id limit 25)`)
	count := func(sql string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	cutoff := time.Now().Add(-30 * 24 * time.Hour)

	n, err := metadata.ArchiveLog(ctx, db.Pool, cutoff, 10, true)
	require.NoError(t, err)
	require.EqualValues(t, 25, n, "dry run counts")
	require.Equal(t, 28, count("select count(*) from indexpilot.mutation_log"), "dry run moved nothing")

	n, err = metadata.ArchiveLog(ctx, db.Pool, cutoff, 10, false)
	require.NoError(t, err)
	require.EqualValues(t, 25, n)
	require.Equal(t, 3, count("select count(*) from indexpilot.mutation_log"))
	require.Equal(t, 25, count("select count(*) from indexpilot.mutation_log_archive"))
	require.Equal(t, 0, count("select count(*) from indexpilot.mutation_log where occurred_at < now() - interval '30 days'"))
	// Rows are moved unchanged, and lineage resolves across both tables.
	require.Equal(t, 25, count(`select count(*) from indexpilot.mutation_log_archive where stage = 'test' and evidence ? 'i' and fields = '{a}'`))
	require.Equal(t, 27, count(`select count(*) from indexpilot.mutation_log_all c join indexpilot.mutation_log_all p on p.id = c.parent_id`))

	n, err = metadata.ArchiveLog(ctx, db.Pool, cutoff, 10, false)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to move")
	// New rows keep getting fresh ids after the move.
	id, err := metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "test", Action: "build", Outcome: "built", ParentID: parent})
	require.NoError(t, err)
	require.Greater(t, id, *parent)
}

func TestMutationLoggingOffWritesOnlyBypassRows(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	count := func(stage string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.mutation_log where stage = $1", stage).Scan(&n))
		return n
	}
	first, err := metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "gatekeeper", Action: "recommend", Outcome: "proposed"})
	require.NoError(t, err)

	// Off in the configuration: ordinary rows are skipped, the parent id
	// comes back so lineage continues; bypass rows are written.
	off := metadata.WithLogging(ctx, false)
	id, err := metadata.AppendLog(off, db.Pool, metadata.Entry{Stage: "gatekeeper", Action: "recommend", Outcome: "proposed->deferred", ParentID: &first})
	require.NoError(t, err)
	require.Equal(t, first, id)
	id, err = metadata.AppendLog(off, db.Pool, metadata.Entry{Stage: "executor", Action: "build", Outcome: "built"})
	require.NoError(t, err)
	require.Zero(t, id)
	_, err = metadata.AppendLog(off, db.Pool, metadata.Entry{Stage: metadata.StageBypass, Action: "bypass_set", Outcome: "disabled"})
	require.NoError(t, err)
	require.Equal(t, 1, count("gatekeeper"))
	require.Equal(t, 0, count("executor"))
	require.Equal(t, 1, count(metadata.StageBypass))

	// Off at run time (a persisted bypass switch): the same.
	db.Exec(t, `insert into indexpilot.bypass_state (level, name, disabled, reason, actor, change_id, changed_at)
values ('feature', 'mutation_logging', true, 'test', 'alice', 1, now())`)
	_, err = metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "gatekeeper", Action: "recommend", Outcome: "proposed"})
	require.NoError(t, err)
	_, err = metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: metadata.StageBypass, Action: "bypass_set", Outcome: "enabled"})
	require.NoError(t, err)
	require.Equal(t, 1, count("gatekeeper"))
	require.Equal(t, 2, count(metadata.StageBypass))

	// An expired switch no longer disables; enabled again, rows are written.
	db.Exec(t, `update indexpilot.bypass_state set expires_at = now() - interval '1 second'`)
	_, err = metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "gatekeeper", Action: "recommend", Outcome: "proposed"})
	require.NoError(t, err)
	require.Equal(t, 2, count("gatekeeper"))
	db.Exec(t, `update indexpilot.bypass_state set disabled = false, expires_at = null`)
	_, err = metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "gatekeeper", Action: "recommend", Outcome: "proposed"})
	require.NoError(t, err)
	require.Equal(t, 3, count("gatekeeper"))
}
