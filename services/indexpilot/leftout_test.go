package indexpilot_test

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/bytesize"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/cli"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/dashboard"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestLeftOutCandidatesShowTheirNumbers: one scoring run holds a candidate
// back for the storage budget and rejects another whose write cost
// outweighs its read saving; the gatekeeper records both (the stages' own
// code paths, fed the workload through the scorer's handlers). What a user
// reads then — `indexpilot explain`, `indexpilot recommendations
// --evidence`, the dashboard's list and page — gives each one's reason,
// its numbers (the size against the budget; the WAL bytes per write
// transaction against the read saving) and what can be done about it, in
// the same sentences (package decisions), and the held one can be
// approved anyway from its page.
func TestLeftOutCandidatesShowTheirNumbers(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "hypopg")
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	// owner is never updated and nearly unique: its index (a few MiB)
	// does not fit a 1 MiB budget. Every UPDATE sets status, HOT today.
	db.Exec(t,
		`create table public.tickets (id bigint primary key, owner int not null, status int not null, closed_at timestamptz, body text)
		   with (fillfactor = 90)`,
		`insert into public.tickets select g, g % 100000, g % 50, null, md5(g::text) from generate_series(1, 200000) g`,
		`analyze public.tickets`,
	)
	const token = "s3cret-dashboard-token-for-tests"
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeAdvisory
	cfg.Scorer.StorageBudgetMB = 1
	cfg.Dashboard.Token = token
	require.NoError(t, cfg.Validate())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	t.Cleanup(func() { _ = b.Close() })
	targets := stage.NewTargets(cfg.Targets, "test")
	t.Cleanup(targets.Close)
	deps := stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: targets, Logger: logger}

	// The scorer: the window's statements and the table's write counters
	// through its handlers, then one run.
	s, err := scorer.New(deps)
	require.NoError(t, err)
	end := time.Now().UTC().Truncate(time.Minute)
	for i, q := range []struct {
		query string
		calls int64
	}{
		{"SELECT id FROM tickets WHERE owner = $1", 50},
		{"SELECT id FROM tickets WHERE status = $1 AND owner > $2", 50},
		{"UPDATE tickets SET status = $1, closed_at = $2 WHERE id = $3", 100000},
		{"INSERT INTO tickets (id, owner, status, body) VALUES ($1, $2, $3, $4)", 1000},
	} {
		qs := &events.QueryStatObserved{Target: "main", QueryID: strconv.Itoa(i + 1), Query: q.query, WindowStart: end.Add(-time.Minute),
			WindowEnd: end, Calls: q.calls, TotalExecTimeMs: float64(q.calls) * 3, MeanExecTimeMs: 3, Rows: q.calls}
		env, err := events.Wrap(qs, "collector", "", end)
		require.NoError(t, err)
		_, err = s.HandleQueryStat(ctx, env, qs)
		require.NoError(t, err)
	}
	for i, c := range [][3]int64{{0, 0, 0}, {1000, 100000, 95000}} {
		ts := &events.TableStatObserved{Target: "main", Schema: "public", Table: "tickets",
			ObservedAt: end.Add(-time.Hour + time.Duration(i)*30*time.Minute), Inserts: c[0], Updates: c[1], HotUpdates: c[2], LiveRows: 200000}
		env, err := events.Wrap(ts, "collector", "", ts.ObservedAt)
		require.NoError(t, err)
		_, err = s.HandleTableStat(ctx, env, ts)
		require.NoError(t, err)
	}
	rep, err := s.Score(ctx, "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), rep.StorageBudgetBytes)
	var held, rejected *events.IndexCandidateScored
	for _, c := range rep.Held {
		if c.HeldReason == string(events.ReasonHeldStorageBudget) && held == nil {
			held = c
		}
	}
	for _, c := range rep.Rejected {
		if c.RejectedReason == string(events.ReasonWriteOverhead) && rejected == nil {
			rejected = c
		}
	}
	require.NotNil(t, held, "no candidate held by the 1 MiB budget: held %d, chosen %d", len(rep.Held), len(rep.Chosen))
	require.NotNil(t, rejected, "no candidate rejected for its write cost: rejected %d", len(rep.Rejected))
	require.Greater(t, held.EstimatedSizeBytes, rep.StorageBudgetBytes)
	require.Positive(t, rejected.WALBytesPerWriteTxn)
	require.Positive(t, rejected.BenefitCost)

	// The gatekeeper records what the run publishes.
	g, err := gatekeeper.New(deps, gatekeeper.Options{Bypass: bypass.NewState(cfg.Features.Bypass, nil)})
	require.NoError(t, err)
	for _, c := range rep.Candidates() {
		env, err := events.Wrap(c, "scorer", "", end)
		require.NoError(t, err)
		_, err = g.Handle(ctx, env, c)
		require.NoError(t, err)
	}
	heldRec, err := decisions.GetRecommendation(ctx, db.Pool, events.RecommendationID("main", held.Index))
	require.NoError(t, err)
	rejRec, err := decisions.GetRecommendation(ctx, db.Pool, events.RecommendationID("main", rejected.Index))
	require.NoError(t, err)
	require.Equal(t, "held", heldRec.State)
	require.Equal(t, "storage_budget", heldRec.Reason)
	require.Equal(t, "rejected", rejRec.State)
	require.Equal(t, string(events.ReasonWriteOverhead), rejRec.Reason)

	// The recorded sentences carry the numbers of the evidence: the size
	// against the budget; the read saving against the write cost and the
	// WAL bytes per write transaction.
	// Sizes in the units the tables below show them in.
	m := regexp.MustCompile(`estimated size (.+) does not fit the storage budget: .+ of (.+) already used`).FindStringSubmatch(heldRec.Detail)
	require.NotNil(t, m, "held detail: %q", heldRec.Detail)
	require.Equal(t, bytesize.Human(held.EstimatedSizeBytes), m[1])
	require.Equal(t, "1.0 MiB", m[2], "the budget of 1 MiB")
	m = regexp.MustCompile(`its read saving (\d+) .*below its write cost (\d+) \(([\d.]+) WAL bytes ` + regexp.QuoteMeta(events.WALUnit(rejected.WALBasis))).FindStringSubmatch(rejRec.Detail)
	require.NotNil(t, m, "rejected detail: %q", rejRec.Detail)
	// The same figures as the evidence line below, digit for digit.
	for i, want := range []string{fmt.Sprintf("%.0f", rejected.BenefitCost), fmt.Sprintf("%.0f", rejected.WriteOverheadCost),
		fmt.Sprintf("%.1f", rejected.WALBytesPerWriteTxn)} {
		require.Equal(t, want, m[i+1], "number %d of %q", i+1, rejRec.Detail)
	}
	heldStep := "approve it anyway (indexpilot approve " + heldRec.ID[:8] + ", or Approve on its dashboard page), or raise the storage budget (scorer.storage_budget_mb"
	require.Contains(t, heldRec.NextStep, heldStep)
	require.Contains(t, rejRec.NextStep, "a run in which its read saving outweighs its charges reopens it")
	// The evidence line of both (recommendations --evidence, explain).
	pareto := func(c *events.IndexCandidateScored) string {
		s := fmt.Sprintf("read saving %.0f  vs  write %.0f (%.1f WAL bytes %s", c.BenefitCost, c.WriteOverheadCost, c.WALBytesPerWriteTxn,
			events.WALUnit(c.WALBasis))
		if c.WALImageBytesPerWriteTxn > 0 {
			s += fmt.Sprintf(", %.1f of them full-page images", c.WALImageBytesPerWriteTxn)
		}
		return s
	}
	require.Positive(t, rejected.WALImageBytesPerWriteTxn, "the rejected index's leaves are written: its WAL has full-page images")

	// The CLI.
	t.Setenv("INDEXPILOT_DATABASE_URL", db.URL)
	t.Setenv("INDEXPILOT_CONFIG", "")
	runCLI := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		require.Equal(t, 0, cli.Main(ctx, args, &out, &errb), "%v: %s", args, errb.String())
		return out.String()
	}
	why := func(r decisions.Recommendation) string {
		return fmt.Sprintf("  %s  %s (%s): %s\n", r.ID[:8], r.State, r.Reason, r.Detail)
	}
	next := func(r decisions.Recommendation) string { return "            next step: " + r.NextStep + "\n" }
	out := runCLI("explain", heldRec.ID[:8])
	for _, want := range []string{"recommendation " + heldRec.ID + ": " + heldRec.IndexName, ", held (storage_budget)\n",
		why(heldRec), next(heldRec), pareto(held), "held (storage_budget): " + held.HeldDetail,
		"recommend held (storage_budget)"} {
		require.Contains(t, out, want, "indexpilot explain %s:\n%s", heldRec.ID[:8], out)
	}
	out = runCLI("explain", rejRec.ID[:8])
	for _, want := range []string{", rejected (write_overhead_exceeded)\n", why(rejRec), next(rejRec), pareto(rejected)} {
		require.Contains(t, out, want, "indexpilot explain %s:\n%s", rejRec.ID[:8], out)
	}
	out = runCLI("recommendations", "--evidence")
	for _, want := range []string{why(heldRec), next(heldRec), why(rejRec), next(rejRec), pareto(held), pareto(rejected)} {
		require.Contains(t, out, want, "indexpilot recommendations --evidence:\n%s", out)
	}
	row := regexp.MustCompile(`(?m)^` + heldRec.ID[:8] + `\s+main\s+held\s+public\.tickets\s.*` +
		regexp.QuoteMeta(bytesize.Human(held.EstimatedSizeBytes)) + `\s+` + heldRec.IndexName + `\s+storage_budget$`)
	require.Regexp(t, row, out, "the held row with its size and reason")
	row = regexp.MustCompile(`(?m)^` + rejRec.ID[:8] + `\s+main\s+rejected\s+public\.tickets\s.*\s-\s+` + rejRec.IndexName + `\s+write_overhead_exceeded$`)
	require.Regexp(t, row, out, "the rejected row: its size not estimated, not 0 B")

	// The dashboard: the list and each one's page (server-side HTML).
	srv, err := dashboard.New(dashboard.Options{Config: cfg, Control: db.Pool, Logger: logger,
		States: []string{"held", "proposed", "rejected"}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) string {
		t.Helper()
		resp, err := c.Get(hs.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, body)
		return string(body)
	}
	esc := template.HTMLEscapeString
	listRow := func(page string, r decisions.Recommendation) string {
		start := strings.Index(page, `<tr data-id="`+r.ID+`" data-state="`+r.State+`">`)
		require.NotEqual(t, -1, start, "no %s row of %s in the list", r.State, r.ID)
		return page[start : start+strings.Index(page[start:], "</tr>")]
	}
	reasonCell := func(r decisions.Recommendation) string {
		return `<td class="reason">` + esc(r.Reason+": "+r.Detail) + `<br><small class="next-step">Next step: ` + esc(r.NextStep) + `</small></td>`
	}
	list := get("/recommendations")
	hr := listRow(list, heldRec)
	require.Contains(t, hr, `<td class="size">`+bytesize.Human(held.EstimatedSizeBytes)+`</td>`)
	require.Contains(t, hr, reasonCell(heldRec), "the held row:\n%s", hr)
	rr := listRow(list, rejRec)
	require.Contains(t, rr, fmt.Sprintf(`<td class="read-saving">%.2f</td>`, rejected.BenefitCost))
	require.Contains(t, rr, fmt.Sprintf(`<td class="wal" title="%s">%.2f B</td>`, esc(events.WALUnit(rejected.WALBasis)), rejected.WALBytesPerWriteTxn))
	require.Contains(t, rr, reasonCell(rejRec), "the rejected row:\n%s", rr)
	require.Contains(t, rr, `<td class="size">-</td>`, "the scorer does not size a rejected candidate")

	page := get("/recommendations/" + heldRec.ID)
	require.Contains(t, page, `<span class="state held" id="state">held</span>`)
	require.Contains(t, page, `<p class="reason" id="reason">Reason: `+esc("storage_budget: "+heldRec.Detail)+`</p>`)
	require.Contains(t, page, `<p class="reason" id="next-step">Next step: `+esc(heldRec.NextStep)+`</p>`)
	require.Contains(t, page, `<dd id="size">`+bytesize.Human(held.EstimatedSizeBytes)+`</dd>`)
	require.NotContains(t, page, `id="held"`, "the held paragraph would repeat the reason")
	require.Contains(t, page, `id="cannot-act"`, "a held one can be acted on once signed in")
	page = get("/recommendations/" + rejRec.ID)
	require.Contains(t, page, `<p class="reason" id="reason">Reason: `+esc(string(events.ReasonWriteOverhead)+": "+rejRec.Detail)+`</p>`)
	require.Contains(t, page, `<p class="reason" id="next-step">Next step: `+esc(rejRec.NextStep)+`</p>`)
	require.Contains(t, page, fmt.Sprintf(`<dd id="wal">%.2f bytes <small id="wal-basis">%s</small></dd>`, rejected.WALBytesPerWriteTxn,
		esc(events.WALUnit(rejected.WALBasis))))
	require.Equal(t, events.WALPerWriteStatement, rejected.WALBasis, "the test's samples carry no server transaction counter")
	require.Contains(t, page, fmt.Sprintf(`<dd id="read-saving">%.2f plan-cost units per window</dd>`, rejected.BenefitCost))
	require.NotContains(t, page, `id="approve"`)

	// Approve the held one anyway, from its page.
	resp, err := c.PostForm(hs.URL+"/login", url.Values{"token": {token}})
	require.NoError(t, err)
	resp.Body.Close()
	page = get("/recommendations/" + heldRec.ID)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, csrf, "a signed-in user gets the held one's forms")
	require.Contains(t, page, `<button id="approve">Approve</button>`)
	resp, err = c.PostForm(hs.URL+"/recommendations/"+heldRec.ID+"/approve", url.Values{"reason": {"worth its size"}, "csrf": {csrf[1]}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	after, err := decisions.GetRecommendation(ctx, db.Pool, heldRec.ID)
	require.NoError(t, err)
	require.Equal(t, "deferred", after.State, "approved: the gatekeeper's next recheck applies its own rules")
	require.Equal(t, string(events.ReasonOperatorApproved), after.Reason)
	require.Empty(t, after.NextStep)
}
