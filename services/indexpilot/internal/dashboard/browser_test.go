package dashboard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// chromium is the browser the end-to-end test drives: Debian's package
// (infra/scripts/setup-chromium.sh installs it; CHROMIUM overrides).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (bash infra/scripts/setup-chromium.sh installs it)")
		}
		t.Skip("chromium is not installed (bash infra/scripts/setup-chromium.sh installs it)")
	}
	return p
}

// browser starts a headless Chromium with a fresh profile, nothing
// fetched from the network on its own, and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// shots is where the screenshots go: $DASHBOARD_SCREENSHOTS, else a new
// temporary directory kept after the test (its path is logged).
func shots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "indexpilot-dashboard-screenshots-")
		require.NoError(t, err)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)
	return dir
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// text is the text of the first element sel (CSS) selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, "text of %s", sel)
	return strings.TrimSpace(v)
}

// eval is the value of a JavaScript expression on the page.
func eval[T any](t *testing.T, ctx context.Context, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	require.NoError(t, err, "evaluate %s", js)
	return v
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

// applyWithApproval is apply mode where every candidate waits for an
// operator's approval.
func applyWithApproval(c *config.Config) {
	c.Features.AutoIndexer.Mode = config.ModeApply
	c.Gatekeeper.Approval.AutoApproveMinImprovementPct = 100
	c.Gatekeeper.CPU.Source = config.CPUSourceNone
}

// TestBrowserShowsTheDatabaseAndApprovesWithTheToken checks each page
// against recommendations the gatekeeper recorded from fixed candidates
// (three, so that the chart and the filters have something to show), the
// approval and the read-only server. TestBrowserFollowsThePipeline
// follows a recommendation of the real pipeline to its build.
func TestBrowserShowsTheDatabaseAndApprovesWithTheToken(t *testing.T) {
	e := newEnv(t, testToken, applyWithApproval)
	ctx := browser(t)
	dir := shots(t)
	u := e.srv.URL
	recs, err := decisions.ListRecommendations(t.Context(), e.db.Pool, "", "")
	require.NoError(t, err)

	// Overview: the recommendations by state, as the database counts them.
	run(t, ctx, chromedp.Navigate(u+"/"))
	require.Equal(t, strconv.Itoa(e.count(t, "select count(*) from indexpilot.recommendations where state = 'proposed'")),
		text(t, ctx, `#target-main a[data-state="proposed"] b`))
	require.Equal(t, strconv.Itoa(e.count(t, "select count(distinct query_id) from indexpilot.workload_stats")),
		text(t, ctx, `#target-main .statements`))
	require.Equal(t, "viewing", text(t, ctx, "#mode"))
	shot(t, ctx, dir, "overview")

	// Recommendations: one row per recommendation, best first, and the chart.
	run(t, ctx, chromedp.Navigate(u+"/recommendations"))
	ids := eval[[]string](t, ctx, `[...document.querySelectorAll("#recs tr[data-id]")].map(r => r.dataset.id)`)
	var want []string
	for _, r := range recs {
		want = append(want, r.ID)
	}
	require.Equal(t, want, ids)
	require.Equal(t, len(recs), eval[int](t, ctx, `document.querySelectorAll("figure.pareto circle").length`),
		"one point per candidate in the Pareto chart")
	shot(t, ctx, dir, "recommendations")

	// One recommendation: its DDL and evidence, as recorded.
	top := recs[0]
	run(t, ctx, chromedp.Navigate(u+"/recommendations/"+top.ID))
	require.Equal(t, top.DDL, text(t, ctx, "#ddl"))
	require.Equal(t, strconv.FormatInt(top.Evidence.Statements[0].Calls, 10), text(t, ctx, "#evidence td.calls"))
	require.Equal(t, fmt.Sprintf("%.2f", top.Evidence.Statements[0].CostBefore), text(t, ctx, "#evidence td.cost-before"))
	// Its split by tenant, the statement's, and its trace, as recorded.
	require.NotEmpty(t, top.Evidence.Tenants)
	require.Equal(t, events.TenantSummary(top.Evidence.Tenants), text(t, ctx, "#tenant-summary"))
	require.Equal(t, events.TenantSummary(top.Evidence.Statements[0].Tenants), text(t, ctx, "#evidence td.tenants"))
	require.Equal(t, len(top.Evidence.Tenants), eval[int](t, ctx, `document.querySelectorAll("#tenants svg rect").length`))
	require.NotEmpty(t, top.TraceID)
	require.Equal(t, top.TraceID, text(t, ctx, "#trace-id"))
	shot(t, ctx, dir, "recommendation")

	// The one with a forecast peak.
	fc := recs[2]
	require.NotNil(t, fc.Evidence.Forecast)
	run(t, ctx, chromedp.Navigate(u+"/recommendations/"+fc.ID))
	require.Equal(t, fc.Evidence.Forecast.Summary(), text(t, ctx, "#forecast-summary"))
	require.Equal(t, events.TenantSummary(fc.Evidence.Tenants), text(t, ctx, "#tenant-summary"))
	require.Equal(t, "not recorded", text(t, ctx, "#trace"))
	shot(t, ctx, dir, "recommendation-forecast")

	// History: the mutation_log rows, newest first.
	run(t, ctx, chromedp.Navigate(u+"/history"))
	require.Equal(t, e.count(t, "select count(*) from indexpilot.mutation_log"),
		eval[int](t, ctx, `document.querySelectorAll("#timeline tr[data-id]").length`))
	shot(t, ctx, dir, "history")
	// Filtered (the form's GET): one recommendation's rows, the form
	// showing the filter.
	run(t, ctx, chromedp.Navigate(u+"/history?stage=gatekeeper&recommendation="+top.ID[:8]))
	require.Equal(t, top.ID[:8], eval[string](t, ctx, `document.querySelector('form.filters input[name="recommendation"]').value`))
	require.Equal(t, "gatekeeper", eval[string](t, ctx, `document.querySelector('form.filters input[name="stage"]').value`))
	n := e.count(t, "select count(*) from indexpilot.mutation_log where stage = 'gatekeeper' and recommendation_id = $1", top.ID)
	require.NotZero(t, n)
	require.Less(t, n, e.count(t, "select count(*) from indexpilot.mutation_log"), "the filter leaves something out")
	require.Equal(t, n, eval[int](t, ctx, `document.querySelectorAll("#timeline tr[data-id]").length`))

	// Effect: a validated index's statements before and after.
	v := recs[2]
	e.db.Exec(t, `insert into indexpilot.validations (recommendation_id, target, schema_name, table_name, index_name, index_key, query_ids,
   build_started_at, built_at, state, verdict, reverted, evidence)
 values ('`+v.ID+`', 'main', 'public', '`+v.Index.Table+`', '`+v.IndexName+`', '`+v.Index.Key()+`', '{1}', now(), now(), 'done',
   'improved', false, '{"change_pct": 88.1, "plan_uses_index": true, "statements": [
     {"query_id": "1`+v.Index.Table+`", "before_calls": 450, "before_mean_ms": 1.906, "after_calls": 470, "after_mean_ms": 0.227}]}')`)
	run(t, ctx, chromedp.Navigate(u+"/effect"))
	require.Equal(t, e.count(t, "select count(*) from indexpilot.validations"),
		eval[int](t, ctx, `document.querySelectorAll("section.effect").length`))
	require.Equal(t, "improved", text(t, ctx, `section.effect[data-recommendation="`+v.ID+`"] .verdict strong`))
	require.Equal(t, 1, eval[int](t, ctx, `document.querySelectorAll("section.effect svg rect.after").length`))
	// The measured saving split by tenant, as the report reads it.
	rep, err := decisions.BuildReport(t.Context(), e.db.Pool, "", time.Time{})
	require.NoError(t, err)
	require.Len(t, rep.Validations, 1)
	require.NotEmpty(t, rep.Validations[0].Tenants)
	require.Equal(t, events.TenantSummary(rep.Validations[0].Tenants),
		text(t, ctx, `section.effect[data-recommendation="`+v.ID+`"] .tenant-summary`))
	shot(t, ctx, dir, "effect")

	// Sign in with the token, approve the best one.
	run(t, ctx, chromedp.Navigate(u+"/login"))
	shot(t, ctx, dir, "login")
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#bypass")),
		chromedp.Navigate(u+"/recommendations/"+top.ID),
		chromedp.SendKeys(chromedp.CSS(`form[action$="/approve"] input[name="reason"]`), "reviewed in the browser"),
		chromedp.Click(chromedp.CSS("#approve")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	)
	state := text(t, ctx, "#state")
	require.Equal(t, e.state(t, top.ID), state)
	require.NotEqual(t, "proposed", state)
	require.Equal(t, 1, e.count(t, `select count(*) from indexpilot.mutation_log where recommendation_id = $1
   and evidence->>'detail' = 'approved by dashboard session from 127.0.0.1: reviewed in the browser'`, top.ID))
	shot(t, ctx, dir, "approved")
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	require.NotContains(t, html, testToken)

	// The same database behind a read-only dashboard: no form, and a
	// forged post is refused.
	ro, err := New(Options{Config: withToken(e, ""), Control: e.db.Pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), States: testStates})
	require.NoError(t, err)
	roSrv := httptest.NewServer(ro)
	defer roSrv.Close()
	other := recs[1]
	run(t, ctx, chromedp.Navigate(roSrv.URL+"/recommendations/"+other.ID))
	require.Contains(t, text(t, ctx, "#cannot-act"), "Read-only")
	require.Equal(t, 0, eval[int](t, ctx, `document.querySelectorAll("form[method=post]").length`))
	status := eval[int](t, ctx, fmt.Sprintf(`fetch("/recommendations/%s/approve", {method: "POST", body: new URLSearchParams({reason: "x"})}).then(r => r.status)`,
		other.ID), chromedp.EvalAwaitPromise)
	require.Equal(t, 403, status)
	require.Equal(t, "proposed", e.state(t, other.ID))
	shot(t, ctx, dir, "read-only")
}

// withToken is e's configuration with another dashboard token.
func withToken(e *env, token string) config.Config {
	c := e.cfg
	c.Dashboard.Token = token
	return c
}
