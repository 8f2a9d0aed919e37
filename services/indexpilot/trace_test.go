package indexpilot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/cli"
)

// TestOneTraceFromStatementToIndex runs the pipeline in apply mode on the
// memory bus against a real database, with the in-memory span exporter:
// the workload's statement gets an index, built and validated. From the
// validation span, following parents and span links through the spans
// exported, one reaches the executor's build, the gatekeeper's decision,
// the scorer's candidate and the collector's publish span of the
// statement's querystat events (its query id). Then `indexpilot explain`
// prints the same chain from the control database, and a bad id fails
// with one line.
func TestOneTraceFromStatementToIndex(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t,
		`create table public.orders (id bigint primary key, customer_id int not null, note text)`,
		`insert into public.orders select g, g % 4000, md5(g::text) from generate_series(1, 60000) g`,
		`analyze public.orders`,
	)
	cfg, err := config.Load("", []string{
		"INDEXPILOT_DATABASE_URL=" + db.URL,
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=apply",
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_EXECUTOR_CPU_ENABLED=false",
		"INDEXPILOT_COLLECTOR_INTERVAL=200ms",
		"INDEXPILOT_SCORER_INTERVAL=200ms",
		"INDEXPILOT_EXECUTOR_POLL_INTERVAL=100ms",
		"INDEXPILOT_EXECUTOR_VALIDATION_MIN_WAIT=1s",
		"INDEXPILOT_EXECUTOR_VALIDATION_MIN_CALLS=20",
		"INDEXPILOT_EXECUTOR_VALIDATION_REVERT_NO_CHANGE=false",
		"INDEXPILOT_EXECUTOR_VALIDATION_REVERT_REGRESSED=false",
	})
	require.NoError(t, err)
	ctx := context.Background()
	count := func(sql string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	// The load is history: the collector's first table sample must hold
	// it (a backend flushes its counters up to a second late), or it would
	// be writes in the window, charged to the candidate.
	require.Eventually(t, func() bool {
		return count(`select coalesce(sum(n_tup_ins), 0)::int from pg_stat_user_tables where relname = 'orders'`) >= 60000
	}, 30*time.Second, 50*time.Millisecond, "the load's inserts never reached pg_stat_user_tables")
	stop := startAll(t, cfg)
	require.Eventually(t, func() bool { return count("select count(*) from indexpilot.table_stats") > 0 },
		30*time.Second, 50*time.Millisecond, "no table statistics reached the scorer")
	const stmt = "select note from public.orders where customer_id = $1"
	run := func() {
		for i := 0; i < 60; i++ {
			_, err := db.Pool.Exec(ctx, stmt, i)
			require.NoError(t, err)
		}
	}
	run()
	if !assertEventually(t, func() bool {
		return count(`select count(*) from indexpilot.recommendations where state = 'applied'`) == 1
	}, 90*time.Second, 100*time.Millisecond, "the index on orders(customer_id) was not built") {
		dumpControl(t, db)
		t.FailNow()
	}
	// The after window of the validation: the same statement again, in
	// windows that start after the build (the one spanning it counts in
	// neither).
	require.Eventually(t, func() bool {
		for i := 0; i < 10; i++ {
			_, err := db.Pool.Exec(ctx, stmt, i)
			require.NoError(t, err)
		}
		return count(`select count(*) from indexpilot.validations where state = 'done'`) == 1
	}, 90*time.Second, 200*time.Millisecond, "the build was not validated")
	stop()

	var queryID, recID string
	require.NoError(t, db.Pool.QueryRow(ctx, `select query_id from indexpilot.workload_stats
 where query like '%from public.orders where customer_id%' limit 1`).Scan(&queryID))
	require.NoError(t, db.Pool.QueryRow(ctx, `select id::text from indexpilot.recommendations`).Scan(&recID))

	// The spans, by id.
	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var validation *tracetest.SpanStub
	for i, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		if s.Name == "executor validate" {
			validation = &spans[i]
		}
	}
	require.NotNil(t, validation, "no validation span among %d spans", len(spans))
	attr := func(s tracetest.SpanStub, key string) string {
		for _, kv := range s.Attributes {
			if kv.Key == attribute.Key(key) {
				return kv.Value.Emit()
			}
		}
		return ""
	}
	require.Equal(t, recID, attr(*validation, "indexpilot.recommendation_id"))

	// Walk from the validation: parents and links, breadth first.
	reached := map[string][]tracetest.SpanStub{}
	seen := map[trace.SpanID]bool{}
	queue := []tracetest.SpanStub{*validation}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if seen[s.SpanContext.SpanID()] {
			continue
		}
		seen[s.SpanContext.SpanID()] = true
		reached[s.Name] = append(reached[s.Name], s)
		next := []trace.SpanContext{s.Parent}
		for _, l := range s.Links {
			next = append(next, l.SpanContext)
		}
		for _, sc := range next {
			if p, ok := byID[sc.SpanID()]; ok && sc.IsValid() {
				queue = append(queue, p)
			}
		}
	}
	for _, name := range []string{"executor build", "executor handle index_decision.made.v1", "publish index_decision.made.v1",
		"gatekeeper handle index_candidate.scored.v1", "publish index_candidate.scored.v1", "scorer candidate"} {
		require.NotEmpty(t, reached[name], "the walk from the validation span does not reach %q", name)
	}
	require.Equal(t, "approved", attr(reached["gatekeeper handle index_candidate.scored.v1"][0], "indexpilot.verdict"))
	require.Equal(t, "built", attr(reached["executor build"][0], telemetry.AttrOutcome))
	// The candidate's links lead to the collector's publish spans of the
	// statement's querystat events.
	var collected int
	for _, s := range reached["publish querystat.observed.v1"] {
		require.Equal(t, "collector", attr(s, telemetry.AttrStage))
		if attr(s, telemetry.AttrQueryID) == queryID {
			collected++
		}
	}
	require.Positive(t, collected, "no collector span of statement %s is reached from the validation span", queryID)
	// One trace: the validation is in the trace of the candidate.
	require.Equal(t, reached["scorer candidate"][0].SpanContext.TraceID(), validation.SpanContext.TraceID())

	// The same chain from the control database.
	t.Setenv("INDEXPILOT_DATABASE_URL", db.URL)
	t.Setenv("INDEXPILOT_CONFIG", "")
	var out, errb bytes.Buffer
	require.Equal(t, 0, cli.Main(ctx, []string{"explain", recID[:8]}, &out, &errb), errb.String())
	text := out.String()
	t.Logf("indexpilot explain %s:\n%s", recID[:8], text)
	for _, want := range []string{
		"recommendation " + recID,
		"trace " + validation.SpanContext.TraceID().String(),
		"query id " + queryID,
		"select note from public.orders where customer_id = $1",
		"2. candidate and pricing",
		"plan cost",
		"recommend approved (apply_mode)",
		"rules passed: target, scorer_verdict, bypass, min_benefit, blocklist, storage_budget, write_performance, mode, approval, ddl_allowed, maintenance_window, cpu_throttle, rate_limits",
		"built ip_orders_customer_id",
		"5. validation",
	} {
		require.Contains(t, text, want, "explain output:\n%s", text)
	}
	require.NotContains(t, text[strings.Index(text, "5. validation"):], "none", "explain output:\n%s", text)

	out.Reset()
	errb.Reset()
	require.Equal(t, 0, cli.Main(ctx, []string{"explain", recID, "--json"}, &out, &errb), errb.String())
	var x cli.Explanation
	require.NoError(t, json.Unmarshal(out.Bytes(), &x))
	require.Equal(t, recID, x.Recommendation.ID)
	require.Len(t, x.Statements, 1)
	require.Equal(t, queryID, x.Statements[0].QueryID)
	require.Positive(t, x.Statements[0].WindowCount)
	require.Positive(t, x.Statements[0].WindowCalls)
	require.NotEmpty(t, x.Decisions)
	require.NotEmpty(t, x.Builds)
	require.Equal(t, "built", x.Builds[len(x.Builds)-1].Outcome)
	require.NotNil(t, x.Validation)
	require.NotEmpty(t, x.Validation.Verdict)

	for _, bad := range []string{"00000000-0000-0000-0000-000000000000", "zzzz"} {
		out.Reset()
		errb.Reset()
		require.Equal(t, 1, cli.Main(ctx, []string{"explain", bad}, &out, &errb))
		require.Equal(t, "indexpilot: explain: no recommendation with id \""+bad+"\" (indexpilot recommendations lists them)\n", errb.String())
		require.Empty(t, out.String())
	}
	errb.Reset()
	require.Equal(t, 2, cli.Main(ctx, []string{"explain", "ab"}, &out, &errb))
	require.Equal(t, 1, strings.Count(errb.String(), "\n"))
}

// assertEventually is require.Eventually that lets the caller look around
// before it stops the test.
func assertEventually(t *testing.T, cond func() bool, wait, tick time.Duration, msg string) bool {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(tick)
	}
	t.Errorf("%s (within %s)", msg, wait)
	return false
}

// dumpControl logs what the control database holds about the pipeline.
func dumpControl(t *testing.T, db *pgtest.Database) {
	t.Helper()
	for _, q := range []string{
		`select count(*)::text || ' windows, ' || coalesce(sum(calls), 0)::text || ' calls' from indexpilot.workload_stats where query like '%public.orders%'`,
		`select coalesce(string_agg(state || ' ' || reason || ' ' || coalesce(detail, ''), '; '), 'none') from indexpilot.recommendations`,
		`select coalesce(string_agg(stage || ' ' || action || ' ' || outcome || ' ' || coalesce(reason, ''), '; ' order by id), 'none') from indexpilot.mutation_log`,
		`select coalesce(string_agg(state || ' ' || coalesce(last_error, ''), '; '), 'none') from indexpilot.builds`,
	} {
		var s string
		if err := db.Pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Logf("%s: %v", q, err)
			continue
		}
		t.Logf("%s\n  => %s", q, s)
	}
}
