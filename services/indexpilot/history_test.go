package indexpilot_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestRunAllAnswersFromTheHistory points the pipeline at a database whose
// pg_stat_statements already holds the workload and sends no new traffic:
// the first poll publishes that history, the recommendation is recorded
// with the history window in its evidence, and neither later polls nor a
// restart of the pipeline (which publishes the history again) count a call
// twice.
func TestRunAllAnswersFromTheHistory(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	// The load is history when IndexPilot starts (pgtest.Load).
	db.Load(t,
		`create table public.visits (id bigint primary key, page_id int not null, agent text)`,
		`insert into public.visits select g, g % 4000, md5(g::text) from generate_series(1, 40000) g`,
		`analyze public.visits`,
	)
	const calls = 60
	for i := range calls {
		_, err := db.Pool.Exec(context.Background(), "select agent from public.visits where page_id = $1", i)
		require.NoError(t, err)
	}
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=advisory",
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_COLLECTOR_INTERVAL=200ms",
		"INDEXPILOT_SCORER_INTERVAL=200ms",
	})
	require.NoError(t, err)

	count := func(sql string) int64 {
		var n int64
		require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
		return n
	}
	const stored = `select coalesce(sum(calls), 0)::bigint from indexpilot.workload_stats where query like '%from public.visits where page_id%'`
	run := func(wait func()) {
		stop := startAll(t, cfg)
		wait()
		stop()
	}
	polls := func(n int) func() {
		return func() {
			first := count("select coalesce(max(extract(epoch from observed_at) * 1e6), 0)::bigint from indexpilot.table_stats")
			require.Eventually(t, func() bool {
				return count("select coalesce(max(extract(epoch from observed_at) * 1e6), 0)::bigint from indexpilot.table_stats") > first+int64(n)*200_000
			}, 60*time.Second, 50*time.Millisecond, "the collector stopped polling")
		}
	}

	run(func() {
		require.Eventually(t, func() bool {
			return count(`select count(*) from indexpilot.recommendations
				where table_name = 'visits' and index_spec->'columns' = '["page_id"]'`) == 1
		}, 60*time.Second, 50*time.Millisecond, "no recommendation from the history alone")
		var window string
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select s->>'window'
			  from indexpilot.recommendations r, jsonb_array_elements(r.evidence->'statements') s
			 where r.table_name = 'visits' limit 1`).Scan(&window))
		require.Regexp(t, `^history since \d{4}-\d{2}-\d{2}, \d+ (day|hour|minute)s?$`, window)
		polls(3)()
		require.Equal(t, int64(calls), count(stored), "the polls after the history added calls that were never made")
	})
	// A restart publishes the history again: it replaces what it covers.
	run(polls(3))
	require.Equal(t, int64(calls), count(stored), "a restart counted the history twice")
}
