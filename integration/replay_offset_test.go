package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestReplayFromKafkaOffset publishes statistics events, notes the offset
// after the first one, and runs `indexpilot replay --since <offset>`: the
// report scores exactly the events from that offset on, read back from
// Kafka (the control database holds no workload at all), and the replay
// joins no consumer group.
func TestReplayFromKafkaOffset(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		`create table public.orders (id bigint primary key, customer_id int not null, status text not null,
			created_at timestamptz not null, note text)`,
		`insert into public.orders select g, g % 5000, (array['new','paid','void'])[1 + g % 3],
			timestamptz '2026-01-01' + g * interval '1 minute', md5(g::text) from generate_series(1, 50000) g`,
		`analyze public.orders`)
	brokers := newKafka(t)
	cfg := config.Default()
	cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	b, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	defer func() { _ = b.Close() }()

	end := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	stat := func(id, q string, at time.Time) *events.QueryStatObserved {
		return &events.QueryStatObserved{Target: "main", QueryID: id, Query: q, WindowStart: at.Add(-time.Minute),
			WindowEnd: at, Calls: 500, TotalExecTimeMs: 1500, MeanExecTimeMs: 3, Rows: 500}
	}
	table := func(at time.Time, inserts int64) *events.TableStatObserved {
		return &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders", ObservedAt: at, Inserts: inserts, LiveRows: 50000}
	}
	// Before the offset: a statement on note, and a table sample.
	require.NoError(t, b.Publish(ctx, "test", "", stat("1", "SELECT id FROM orders WHERE note = $1", end.Add(-2*time.Hour)),
		table(end.Add(-2*time.Hour), 100)))

	// All of a target's events are on one partition (keyed by target).
	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	require.NoError(t, err)
	defer func() { _ = client.Close() }()
	qtopic := events.Topic(events.TypeQueryStatObserved)
	parts, err := client.Partitions(qtopic)
	require.NoError(t, err)
	partition, offset := int32(-1), int64(0)
	for _, p := range parts {
		n, err := client.GetOffset(qtopic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		if n > 0 {
			partition, offset = p, n
		}
	}
	require.Equal(t, int64(1), offset, "one query statistics event so far")

	// From the offset on: two statements, the second one seen twice (a
	// redelivery), and two table samples.
	after := []events.Payload{
		stat("2", "SELECT id, status FROM orders WHERE customer_id = $1", end.Add(-time.Hour)),
		table(end.Add(-time.Hour), 200),
		stat("3", "SELECT id FROM orders WHERE customer_id = $1 AND created_at > $2", end),
		table(end, 300),
	}
	require.NoError(t, b.Publish(ctx, "test", "", after...))
	require.NoError(t, b.Publish(ctx, "test", "", after[2]))

	bin := filepath.Join(t.TempDir(), "indexpilot")
	build := exec.Command("go", "build", "-o", bin, "github.com/indexpilot/indexpilot/services/indexpilot/cmd/indexpilot")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the indexpilot binary: %s", out)
	env := append(os.Environ(),
		"INDEXPILOT_CONFIG=",
		"INDEXPILOT_DATABASE_URL="+db.URL,
		"INDEXPILOT_TARGETS=main="+db.URL,
		"INDEXPILOT_BUS_TRANSPORT=kafka",
		"INDEXPILOT_BUS_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"INDEXPILOT_BUS_KAFKA_VERSION=3.6.0",
		"INDEXPILOT_SCORER_STORAGE_BUDGET_MB=1024",
	)
	replay := func(since string) ([]scorer.Report, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "replay", "--json", "--since", since)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "replay --since %s: %s", since, stderr.String())
		var reps []scorer.Report
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &reps), stdout.String())
		require.Len(t, reps, 1)
		return reps, stderr.String()
	}
	queryIDs := func(r scorer.Report) []string {
		seen := map[string]bool{}
		for _, c := range r.Chosen {
			for _, ev := range c.Statements {
				seen[ev.QueryID] = true
			}
		}
		var ids []string
		for _, id := range []string{"1", "2", "3"} {
			if seen[id] {
				ids = append(ids, id)
			}
		}
		return ids
	}

	for _, since := range []string{fmt.Sprintf("%d:%d", partition, offset), fmt.Sprint(offset)} {
		reps, _ := replay(since)
		r := reps[0]
		require.Equal(t, 2, r.Statements, "--since %s: statements 2 and 3 only", since)
		require.Equal(t, end.Add(-time.Hour-time.Minute), r.WindowStart, "the window starts at the first replayed delta")
		require.Equal(t, end, r.WindowEnd)
		require.NotEmpty(t, r.Chosen)
		require.NotContains(t, queryIDs(r), "1")
		for _, c := range r.Chosen {
			require.Equal(t, "customer_id", c.Index.Columns[0], "statement 1 (note) is before the offset")
		}
	}

	// From the start, the earlier statement is back.
	reps, _ := replay("0")
	require.Equal(t, 3, reps[0].Statements)
	require.Contains(t, queryIDs(reps[0]), "1")

	// Past the end: nothing to score. A partition the topic does not
	// have: one clear line.
	reps, _ = replay(fmt.Sprintf("%d:%d", partition, 99))
	require.Zero(t, reps[0].Statements)
	cmd := exec.Command(bin, "replay", "--since", "99:0")
	cmd.Env = env
	msg, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, "indexpilot: replay: read retained events: topic "+qtopic+" has no partition 99", strings.TrimSpace(string(msg)))

	// Nothing was stored, and no consumer group was joined or committed.
	var stored int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from indexpilot.workload_stats").Scan(&stored))
	require.Zero(t, stored)
	admin, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err)
	groups, err := admin.ListConsumerGroups()
	require.NoError(t, err)
	require.Empty(t, groups)
}
