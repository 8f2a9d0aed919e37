package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/scorer"
)

func TestReplay(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		`create table public.orders (id bigint primary key, customer_id int not null, note text)`,
		`insert into public.orders select g, g % 5000, md5(g::text) from generate_series(1, 50000) g`,
		`analyze public.orders`,
		// The stored workload, as the scorer keeps it from querystat events.
		`insert into indexpilot.workload_stats (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows) values
		 ('main', '1', '2026-11-20T12:00:00Z', '2026-11-20T11:59:00Z', 'SELECT note FROM orders WHERE customer_id = $1', 500, 1500, 500),
		 ('main', '2', '2026-11-25T12:00:00Z', '2026-11-25T11:59:00Z', 'SELECT id FROM orders WHERE customer_id = $1 AND note = $2', 10, 30, 10)`,
	)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_SCORER_STORAGE_BUDGET_MB": "1024"}

	code, out, stderr := runCLI(t, env, "replay", "--json", "--formula", "v1", "--since", "2026-11-19T00:00:00Z")
	require.Equal(t, 0, code, stderr)
	var reps []scorer.Report
	require.NoError(t, json.Unmarshal([]byte(out), &reps), out)
	require.Len(t, reps, 1)
	r := reps[0]
	require.Equal(t, "main", r.Target)
	require.Equal(t, "v1", r.FormulaVersion)
	require.Equal(t, 2, r.Statements)
	require.NotEmpty(t, r.Chosen)
	require.Equal(t, "customer_id", r.Chosen[0].Index.Columns[0])
	require.Equal(t, "v1", r.Chosen[0].FormulaVersion)
	require.Equal(t, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), r.WindowEnd)

	// The default window (24 h before the latest observation) misses the
	// busy statement; the table report says what it saw.
	code, out, stderr = runCLI(t, env, "replay", "--formula", "v2")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "target main — formula v2, what-if hypopg")
	require.Contains(t, out, "statements 1 (unparsed 0, not evaluable 0)")

	// The report is the same on every run (determinism), ids included.
	_, a, _ := runCLI(t, env, "replay", "--json", "--since", "2026-11-19T00:00:00Z")
	_, b, _ := runCLI(t, env, "replay", "--json", "--since", "2026-11-19T00:00:00Z")
	require.Equal(t, stripVolatile(t, a), stripVolatile(t, b))

	for _, args := range [][]string{
		{"replay", "--since", "yesterday"},
		{"replay", "--formula", "v9"},
		{"replay", "--until", "soon"},
		{"replay", "--emit"},
		{"replay", "--target", "nope"},
		{"replay", "--since", "99999999999999999999"},
	} {
		code, _, stderr := runCLI(t, env, args...)
		require.Equal(t, 2, code, "args %v: %s", args, stderr)
		require.True(t, strings.HasPrefix(stderr, "indexpilot: replay:"), stderr)
	}

	// An offset is a Kafka notion: on the memory bus, one line and exit 1.
	for _, since := range []string{"42", "1:42"} {
		code, _, stderr = runCLI(t, env, "replay", "--since", since)
		require.Equal(t, 1, code, stderr)
		require.Equal(t, "indexpilot: replay: --since "+since+": offsets exist only on the kafka transport (bus.transport is memory)", strings.TrimSpace(stderr))
	}
}

// stripVolatile drops the run-time counters (duration, cache) from a JSON
// report.
func stripVolatile(t *testing.T, s string) []map[string]any {
	t.Helper()
	var v []map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &v), s)
	for _, r := range v {
		delete(r, "duration_ns")
		delete(r, "cache_hits")
		delete(r, "what_if_calls")
	}
	return v
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	got, err := parseSince("72h", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-72*time.Hour), got)
	got, err = parseSince("2026-11-01T00:00:00Z", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), got)
	got, err = parseSince("", now)
	require.NoError(t, err)
	require.True(t, got.IsZero())
	_, err = parseSince("-5h", now)
	require.Error(t, err)
}
