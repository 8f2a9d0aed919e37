package integration

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestScorerScaleOut feeds the same query statistics events to one scorer
// and, on a fresh broker and control database, to two scorer instances in
// one consumer group: both runs publish the same candidate events.
func TestScorerScaleOut(t *testing.T) {
	tdb := pgtest.NewDatabase(t)
	tdb.RequireExtension(t, "hypopg")
	tdb.Exec(t,
		`create table public.orders (id bigint primary key, customer_id int not null, status text not null,
			created_at timestamptz not null, note text)`,
		`insert into public.orders select g, g % 5000, (array['new','paid','void'])[1 + g % 3],
			timestamptz '2026-01-01' + g * interval '1 minute', md5(g::text) from generate_series(1, 50000) g`,
		`analyze public.orders`,
	)
	// Several target names on the one database spread the events over the
	// partitions, hence over the instances.
	queries := []string{
		"SELECT id, status FROM orders WHERE customer_id = $1",
		"SELECT id FROM orders WHERE note = $1",
		"SELECT id FROM orders WHERE customer_id = $1 AND created_at > $2",
		"SELECT note FROM orders WHERE created_at BETWEEN $1 AND $2 ORDER BY created_at LIMIT $3",
		"SELECT count(*) FROM orders WHERE status = $1 AND customer_id = $2",
		"SELECT o.id FROM public.orders o WHERE o.note = $1 AND o.status = $2",
	}
	var targets []config.Target
	var stats []events.Payload
	end := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i, q := range queries {
		name := fmt.Sprintf("t%d", i)
		targets = append(targets, config.Target{Name: name, DSN: tdb.URL})
		// One event per target: every scoring round sees its whole workload.
		stats = append(stats, &events.QueryStatObserved{Target: name, QueryID: fmt.Sprint(100 + i), Query: q,
			WindowStart: end.Add(-time.Minute), WindowEnd: end, Calls: 500, TotalExecTimeMs: 1500, MeanExecTimeMs: 3, Rows: 500})
	}

	run := func(instances int) []string {
		control := pgtest.NewDatabase(t)
		_, err := metadata.Migrate(context.Background(), control.Pool)
		require.NoError(t, err)
		cfg := config.Default()
		cfg.DatabaseURL = control.URL
		cfg.Targets = targets
		cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: newKafka(t), Version: "3.6.0"}}
		cfg.Scorer.Interval = 200 * time.Millisecond
		cfg.Scorer.StorageBudgetMB = 1024
		require.NoError(t, cfg.Validate())

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		obs, err := bus.New(cfg.Bus, testLogger())
		require.NoError(t, err)
		defer func() { _ = obs.Close() }()
		rec, err := bus.Record(ctx, obs, "indexpilot.test.observer.candidates", events.TypeIndexCandidateScored)
		require.NoError(t, err)

		var stages []*running
		for i := 0; i < instances; i++ {
			stages = append(stages, startStage(t, fmt.Sprintf("scorer-%d", i), scorer.Start, cfg, control.Pool))
		}
		require.NoError(t, obs.Publish(ctx, "test", "", stats...))

		ids := func() []string {
			seen := map[string]bool{}
			for _, env := range rec.All() {
				seen[env.ID] = true
			}
			out := make([]string, 0, len(seen))
			for id := range seen {
				out = append(out, id)
			}
			sort.Strings(out)
			return out
		}
		targetsSeen := func() int {
			seen := map[string]bool{}
			for _, env := range rec.All() {
				seen[env.Subject] = true
			}
			return len(seen)
		}
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, control.Pool.QueryRow(ctx, "select count(*) from indexpilot.workload_stats").Scan(&n))
			return n == len(stats) && targetsSeen() == len(targets)
		}, 90*time.Second, 100*time.Millisecond, "every target scored")
		// Let any round that was running finish and publish.
		var last []string
		require.Eventually(t, func() bool {
			now := ids()
			stable := fmt.Sprint(now) == fmt.Sprint(last)
			last = now
			return stable
		}, 30*time.Second, time.Second, "candidate set settles")
		for _, s := range stages {
			s.stop(t)
		}
		return last
	}

	one := run(1)
	two := run(2)
	require.NotEmpty(t, one)
	require.Equal(t, one, two, "two instances in one group publish the same candidate events as one")
}
