package dashboard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// runPipeline runs the all-in-one process (collector, scorer, gatekeeper,
// executor on the memory bus) on cfg until the test ends.
func runPipeline(t *testing.T, cfg config.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- indexpilot.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
			indexpilot.Options{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("RunAll exited before ready: %v", err)
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("RunAll not ready within a minute")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("RunAll did not stop within a minute of cancel")
		}
	})
}

// TestBrowserFollowsThePipeline drives the dashboard over what the real
// pipeline produced: the collector saw a workload of reads and writes, the
// scorer priced the candidate (its read saving and WAL per write
// transaction), the gatekeeper held it for approval; the page shows those
// numbers and every stage's health, a signed-in operator approves it, and
// the executor builds it.
func TestBrowserFollowsThePipeline(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	db.RequireExtension(t, "pg_stat_statements")
	// The load is history when IndexPilot starts (pgtest.Load).
	db.Load(t,
		`create table public.events (id bigint primary key, account_id int not null, kind text not null, payload text)`,
		`insert into public.events select g, g % 3000, 'k' || (g % 7), md5(g::text) from generate_series(1, 40000) g`,
		`analyze public.events`)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Dashboard.Token = testToken
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Gatekeeper.Approval.AutoApproveMinImprovementPct = 100 // every candidate waits for an operator
	cfg.Gatekeeper.CPU.Source = config.CPUSourceNone           // the shared host's CPU must not defer anything
	cfg.Gatekeeper.RecheckInterval = 200 * time.Millisecond
	cfg.Executor.PollInterval = 200 * time.Millisecond
	cfg.Collector.Interval = 500 * time.Millisecond
	cfg.Scorer.Interval = time.Second
	cfg.Scorer.TriggerDebounce = 300 * time.Millisecond
	require.NoError(t, cfg.Validate())
	runPipeline(t, cfg)

	s, err := New(Options{Config: cfg, Control: db.Pool, Logger: slog.New(slog.NewTextHandler(&testLog{t: t}, nil)), States: testStates})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := &env{db: db, cfg: cfg, srv: srv}

	// The workload, after the collector's first poll so that it counts in
	// full: reads by account, and single-row inserts (each its own write
	// transaction, each one more entry in an index on account_id).
	require.Eventually(t, func() bool { return e.count(t, "select count(*) from indexpilot.table_stats") > 0 },
		time.Minute, 50*time.Millisecond, "the collector never polled the target")
	ctx := context.Background()
	for i := range 150 {
		_, err := db.Pool.Exec(ctx, "select payload from public.events where account_id = $1", i)
		require.NoError(t, err)
	}
	for i := range 200 {
		_, err := db.Pool.Exec(ctx, "insert into public.events (id, account_id, kind, payload) values ($1, $2, 'k1', 'p')", 100000+i, i%3000)
		require.NoError(t, err)
	}

	var done time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, "select clock_timestamp()").Scan(&done))

	// The scorer priced it and the gatekeeper recorded it, waiting for
	// approval; wait until the scorer has scored a window that holds the
	// whole workload, so that its numbers no longer move. (Not the latest
	// window: this test's own queries are workload too, so the collector
	// records a new window at every poll, and a scoring run that takes
	// longer than a poll, as on a loaded machine, never reaches the
	// latest.)
	var id string
	priced := assert.Eventually(t, func() bool {
		err := db.Pool.QueryRow(ctx, `select r.id::text from indexpilot.recommendations r
 where r.table_name = 'events' and r.index_spec->'columns' = '["account_id"]' and r.state = 'proposed'
   and (r.evidence->>'wal_bytes_per_write_txn')::float8 > 0
   and (select position from indexpilot.stage_health where stage = 'scorer' and target = 'main')
       >= (select min(window_end) from indexpilot.workload_stats where target = 'main' and window_end >= $1)`, done).Scan(&id)
		return err == nil
	}, 2*time.Minute, 100*time.Millisecond)
	if !priced {
		t.Fatalf("no priced recommendation on events(account_id) waits for approval: %s", e.pipelineState(t))
	}
	t.Logf("pipeline: %s", e.pipelineState(t))
	rec, err := decisions.GetRecommendation(ctx, db.Pool, id)
	require.NoError(t, err)
	require.Equal(t, "v2", rec.Evidence.FormulaVersion)
	require.Positive(t, rec.Evidence.BenefitCost, "the scorer's read saving")
	require.Positive(t, rec.Evidence.WALBytesPerWriteTxn, "the scorer's WAL per write transaction")
	require.Positive(t, rec.Evidence.WALImageBytesPerWriteTxn, "inserts with scattered account ids dirty the index's leaves: full-page images")
	require.NotEmpty(t, rec.TraceID, "the gatekeeper kept the candidate's trace")

	b := browser(t)
	dir := shots(t)
	u := srv.URL

	// Recommendations: read saving and WAL per write transaction side by
	// side, the scorer's numbers from the evidence row (read again each
	// time: a late scoring run may still move them).
	require.Eventually(t, func() bool {
		r, err := decisions.GetRecommendation(ctx, db.Pool, id)
		require.NoError(t, err)
		run(t, b, chromedp.Navigate(u+"/recommendations"))
		row := `#recs tr[data-id="` + id + `"] `
		return textNow(t, b, row+"td.read-saving") == fmt.Sprintf("%.2f", r.Evidence.BenefitCost) &&
			textNow(t, b, row+"td.write-cost") == fmt.Sprintf("%.2f", r.Evidence.WriteOverheadCost) &&
			textNow(t, b, row+"td.wal") == fmt.Sprintf("%.2f B", r.Evidence.WALBytesPerWriteTxn)
	}, time.Minute, 500*time.Millisecond, "the recommendations page does not show the scorer's read saving and WAL")
	shot(t, b, dir, "pipeline-recommendations")
	require.Eventually(t, func() bool {
		r, err := decisions.GetRecommendation(ctx, db.Pool, id)
		require.NoError(t, err)
		run(t, b, chromedp.Navigate(u+"/recommendations/"+id))
		return textNow(t, b, "#read-saving") == fmt.Sprintf("%.2f plan-cost units per window", r.Evidence.BenefitCost) &&
			textNow(t, b, "#wal") == fmt.Sprintf("%.2f bytes %s", r.Evidence.WALBytesPerWriteTxn, events.WALUnit(r.Evidence.WALBasis)) &&
			strings.HasPrefix(textNow(t, b, "#wal-images"), fmt.Sprintf("%.2f bytes", r.Evidence.WALImageBytesPerWriteTxn)) &&
			textNow(t, b, "#ddl") == r.DDL && textNow(t, b, "#trace-id") == r.TraceID
	}, time.Minute, 500*time.Millisecond, "the recommendation's page does not show the scorer's read saving, WAL (and its full-page images) and trace")

	// Overview: every stage has worked on the target, as stage_health and
	// collector_targets say.
	require.Eventually(t, func() bool {
		run(t, b, chromedp.Navigate(u+"/"))
		for _, st := range []string{"collector", "scorer", "gatekeeper", "executor"} {
			if textNow(t, b, `#target-main tr[data-stage="`+st+`"] td.health`) != "ok" {
				return false
			}
		}
		return true
	}, time.Minute, 500*time.Millisecond, "not every stage shows ok")
	// The scorer's last activity as stage_health has it (the test's own
	// queries are workload too, so the scorer may run again meanwhile:
	// compare a page read between two equal database reads).
	scoredAt := func() string {
		var at time.Time
		require.NoError(t, db.Pool.QueryRow(ctx, `select last_run_at from indexpilot.stage_health where stage = 'scorer' and target = 'main'`).Scan(&at))
		return at.UTC().Format("2006-01-02 15:04:05Z")
	}
	require.Eventually(t, func() bool {
		before := scoredAt()
		run(t, b, chromedp.Navigate(u+"/"))
		shown := textNow(t, b, `#target-main tr[data-stage="scorer"] td.last-activity`)
		return before == scoredAt() && shown == before
	}, time.Minute, 200*time.Millisecond, "the overview does not show the scorer's last activity")
	shot(t, b, dir, "pipeline-overview")

	// Sign in, approve; the gatekeeper hands the approval to the executor,
	// which builds the index; the page shows it applied.
	run(t, b,
		chromedp.Navigate(u+"/login"),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#bypass")),
		chromedp.Navigate(u+"/recommendations/"+id),
		chromedp.SendKeys(chromedp.CSS(`form[action$="/approve"] input[name="reason"]`), "priced by the pipeline"),
		chromedp.Click(chromedp.CSS("#approve")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	)
	require.Equal(t, 1, e.count(t, `select count(*) from indexpilot.mutation_log where recommendation_id = $1
   and evidence->>'detail' = 'approved by dashboard session from 127.0.0.1: priced by the pipeline'`, id))
	require.Eventually(t, func() bool {
		return e.count(t, `select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid
 where c.relname = $1 and i.indisvalid`, rec.IndexName) == 1
	}, 2*time.Minute, 200*time.Millisecond, "the approved index was not built")
	require.Eventually(t, func() bool { return e.state(t, id) == "applied" }, time.Minute, 200*time.Millisecond)
	run(t, b, chromedp.Navigate(u+"/recommendations/"+id))
	require.Equal(t, "applied", text(t, b, "#state"))
	require.Equal(t, 1, eval[int](t, b, `[...document.querySelectorAll("#timeline td")].filter(td => td.textContent === "built").length`))
	shot(t, b, dir, "pipeline-built")

	// The executor's heartbeat for the target records the build.
	var built time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `select last_success_at from indexpilot.stage_health where stage = 'executor' and target = 'main'`).Scan(&built))
	require.WithinDuration(t, time.Now(), built, 2*time.Minute)
}

// textNow is the trimmed text of the first element sel selects, "" when
// there is none (it does not wait for one to appear).
func textNow(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").trim()`, sel))
}
