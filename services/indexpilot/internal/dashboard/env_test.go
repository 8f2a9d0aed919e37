package dashboard

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// testToken is the token of the tests that act; long enough for the
// configuration's rule.
const testToken = "s3cret-dashboard-token-for-tests"

var testStates = []string{"applied", "approved", "building", "deferred", "failed", "proposed", "rejected", "reverted", "superseded"}

// testTraceID is the trace the scorer's candidate of the first
// recommendation arrives in: the gatekeeper keeps its span as the
// recommendation's trace_parent.
var testTraceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

// The statements' tenant splits of the fixtures: two tenants of very
// different load on the email lookup (reported by the application), one
// tenant nearly alone on the tenant's listing (from pg_qualstats).
var (
	emailTenants = []events.TenantShare{
		{Tenant: "17", Share: 0.72, Source: events.TenantSourceAppStats},
		{Tenant: "3", Share: 0.2, Source: events.TenantSourceAppStats},
		{Bucket: events.TenantOthers, Share: 0.08, Source: events.TenantSourceAppStats}}
	listingTenants = []events.TenantShare{
		{Tenant: "7", Share: 0.9, Source: events.TenantSourceQualstats},
		{Tenant: "12", Share: 0.1, Source: events.TenantSourceQualstats}}
)

// weeklyForecast is the forecast of a statement that peaks every Monday
// at 02:00 UTC, as the scorer records it: the next peak a week from the
// start of this week, the build estimated at 40 minutes.
func weeklyForecast(now time.Time) *events.Forecast {
	day := now.UTC().Truncate(24 * time.Hour)
	peak := day.AddDate(0, 0, (8-int(day.Weekday()))%7+7).Add(2 * time.Hour)
	drop := peak.Add(3 * time.Hour)
	return &events.Forecast{QueryID: "1contacts", Period: "weekly", Phase: "Mon 02:00 UTC", Amplitude: 6.5, Confidence: 1,
		Periods: 5, PeakAt: peak, PeakEnd: peak.Add(time.Hour), BuildSeconds: 2400, BuildBy: peak.Add(-40 * time.Minute),
		BuildFrom: peak.Add(-2 * time.Hour), DropAfter: &drop, DropDetail: "writes cost 900 between peaks, the peak saves 21000"}
}

// env is a migrated control database holding recommendations the
// gatekeeper recorded from scored candidates (its own code path), and the
// dashboard serving it.
type env struct {
	db   *pgtest.Database
	cfg  config.Config
	srv  *httptest.Server
	recs []*events.IndexCandidateScored
	// logs is what the server logged.
	logs *testLog
}

func newEnv(t *testing.T, token string, mut ...func(*config.Config)) *env {
	t.Helper()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		"create table public.contacts (id int primary key, tenant_id int, email text, created_at timestamptz)",
		"insert into public.contacts select g, g % 50, 'u' || g || '@example.com', now() - g * interval '1 minute' from generate_series(1, 5000) g",
		"create table public.orders (id int primary key, contact_id int, total numeric)",
		"insert into public.orders select g, g % 5000, g from generate_series(1, 5000) g",
		"analyze public.contacts", "analyze public.orders")
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeAdvisory
	cfg.Dashboard.Token = token
	for _, m := range mut {
		m(&cfg)
	}
	require.NoError(t, cfg.Validate())

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	t.Cleanup(func() { _ = b.Close() })
	g, err := gatekeeper.New(stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: stage.NewTargets(cfg.Targets, "t"), Logger: logger},
		gatekeeper.Options{Bypass: bypass.NewState(cfg.Features.Bypass, nil)})
	require.NoError(t, err)
	e := &env{db: db, cfg: cfg}
	window := time.Now().UTC().Truncate(time.Minute)
	for _, c := range []struct {
		table  string
		cols   []string
		gain   float64
		saving float64
		writeC float64
		query  string
		calls  int64
		before float64
		after  float64
		size   int64
		// tenants is the statement's split; forecast its peak; traced:
		// the candidate arrives in a trace.
		tenants  []events.TenantShare
		forecast *events.Forecast
		traced   bool
	}{
		{"contacts", []string{"email"}, 99.2, 52000, 800, "select * from contacts where email = $1", 1200, 180.5, 1.4, 180224,
			emailTenants, nil, true},
		{"contacts", []string{"tenant_id", "created_at"}, 71.5, 21000, 2600, "select * from contacts where tenant_id = $1 order by created_at desc limit $2", 300, 210.0, 59.8, 229376,
			listingTenants, weeklyForecast(time.Now()), false},
		{"orders", []string{"contact_id"}, 88.0, 9000, 400, "select * from orders where contact_id = $1", 450, 95.3, 11.4, 131072,
			nil, nil, false},
	} {
		spec := events.IndexSpec{Schema: "public", Table: c.table, Method: "btree", Columns: c.cols}
		cand := &events.IndexCandidateScored{
			Target: "main", CandidateID: events.CandidateID("main", spec, "v2"), Index: spec, FormulaVersion: "v2",
			WhatIfMethod: "hypopg", WindowEnd: window, MaxImprovementPct: c.gain, EstimatedSizeBytes: c.size,
			Statements: []events.StatementEvidence{{QueryID: "1" + c.table, Query: c.query, Calls: c.calls, MeanExecTimeMs: c.before / 50,
				CostBefore: c.before, CostAfter: c.after, ImprovementPct: 100 * (c.before - c.after) / c.before, Tenants: c.tenants}},
			BenefitCost: c.saving, WriteOverheadCost: c.writeC, NetBenefit: c.saving - c.writeC, Forecast: c.forecast,
			WALBytesPerWriteTxn: float64(c.size) / 2048, // a made-up figure of the right order
		}
		// The index's split, combined from its statements' as the scorer does.
		cand.Tenants = events.CombineTenantShares([]events.TenantPart{{Weight: c.saving, Shares: c.tenants}}, events.TenantTop)
		envl, err := events.Wrap(cand, "scorer", "", time.Now())
		require.NoError(t, err)
		hctx := ctx
		if c.traced {
			hctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: testTraceID,
				SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled}))
		}
		_, err = g.Handle(hctx, envl, cand)
		require.NoError(t, err)
		e.recs = append(e.recs, cand)
	}
	recs, err := decisions.ListRecommendations(ctx, db.Pool, "", "")
	require.NoError(t, err)
	require.Len(t, recs, 3, "the gatekeeper recorded one recommendation per candidate")

	e.logs = &testLog{t: t}
	s, err := New(Options{Config: cfg, Control: db.Pool, Logger: slog.New(slog.NewTextHandler(e.logs, nil)), States: testStates})
	require.NoError(t, err)
	e.srv = httptest.NewServer(s)
	t.Cleanup(e.srv.Close)
	return e
}

// recID is the id of the i-th recommendation recorded.
func (e *env) recID(i int) string {
	return events.RecommendationID("main", e.recs[i].Index)
}

func (e *env) state(t *testing.T, id string) string {
	t.Helper()
	var s string
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), "select state from indexpilot.recommendations where id = $1", id).Scan(&s))
	return s
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// pipelineState describes the control database for a failure message:
// every recommendation (table, columns, state, reason, WAL per write
// transaction) and the scorer's position against the collector's last
// window.
func (e *env) pipelineState(t *testing.T) string {
	t.Helper()
	var out string
	err := e.db.Pool.QueryRow(context.Background(), `select coalesce(string_agg(format('%s%s %s (%s) wal=%s', r.table_name, r.index_spec->'columns', r.state,
         r.reason, r.evidence->>'wal_bytes_per_write_txn'), '; ' order by r.created_at), 'no recommendation')
       || format(' | scorer at %s, last window end %s, stage health: %s',
         (select position from indexpilot.stage_health where stage = 'scorer' and target = 'main'),
         (select max(window_end) from indexpilot.workload_stats where target = 'main'),
         (select string_agg(format('%s %s', stage, coalesce(nullif(last_error, ''), 'ok')), ', ') from indexpilot.stage_health))
  from indexpilot.recommendations r`).Scan(&out)
	if err != nil {
		return "state unreadable: " + err.Error()
	}
	return out
}

// testLog sends the server's log to the test's log and keeps it.
type testLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf strings.Builder
}

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	return len(p), nil
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
