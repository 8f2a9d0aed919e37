package indexpilot_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestRunAllAdvisesOnAStatementThatAlwaysTimesOut: a statement that
// always exceeds its session's statement_timeout is never in
// pg_stat_statements; the collector samples it running in
// pg_stat_activity and the pipeline recommends its index.
func TestRunAllAdvisesOnAStatementThatAlwaysTimesOut(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	// The load is history when IndexPilot starts (pgtest.Load).
	db.Load(t,
		`create table public.big (id bigint primary key, k int not null, payload text)`,
		`insert into public.big select g, g % 5000, md5(g::text) from generate_series(1, 100000) g`,
		`analyze public.big`,
	)
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=advisory",
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_COLLECTOR_INTERVAL=200ms",
		"INDEXPILOT_COLLECTOR_ACTIVITY_THRESHOLD=100ms",
		"INDEXPILOT_SCORER_INTERVAL=200ms",
		// The index (2 MiB) is more than 10 % of this small database.
		"INDEXPILOT_SCORER_STORAGE_BUDGET_MB=1024",
	})
	require.NoError(t, err)
	stop := startAll(t, cfg)

	// Each of the 20 rows with k = 42 sleeps 0.1 s: over the 1 s timeout
	// every time, without burning the shared server's CPU.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, "set statement_timeout = '1s'")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = conn.Exec(ctx, "select payload from public.big where k = 42 and pg_sleep(0.1) is not null", pgx.QueryExecModeSimpleProtocol)
		}
	}()
	count := func(sql string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
		return n
	}
	if !assert.Eventually(t, func() bool {
		return count(`select count(*) from indexpilot.recommendations
			where table_name = 'big' and index_spec->'columns' = '["k"]'`) == 1
	}, 90*time.Second, 100*time.Millisecond, "no recommendation for the statement that always times out") {
		var rows, recs string
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select coalesce(string_agg(format('%s %s %s %s', query_id, query, calls, param_samples), E'\n'), '')
			from indexpilot.workload_stats where window_source = 'activity'`).Scan(&rows))
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select coalesce(string_agg(format('%s %s %s', index_spec, state, reason), E'\n'), '')
			from indexpilot.recommendations`).Scan(&recs))
		var decisions string
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select coalesce(string_agg(format('%s %s %s %s', stage, action, outcome, reason), E'\n'), '')
			from indexpilot.mutation_log`).Scan(&decisions))
		t.Fatalf("running samples stored:\n%s\nrecommendations:\n%s\nmutation log:\n%s", rows, recs, decisions)
	}
	cancel()
	<-done
	stop()
	require.Zero(t, count(`select count(*) from pg_stat_statements
		where dbid = (select oid from pg_database where datname = current_database())
		  and query like '%pg_sleep%' and query not like '%indexpilot%'`),
		"the statement finished once: the test proves nothing")
	require.Positive(t, count(`select count(*) from indexpilot.workload_stats
		where window_source = 'activity' and unfinished and param_samples @> '[["42", "0.1"]]'`))
}
