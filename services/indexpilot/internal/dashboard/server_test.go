package dashboard

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

func do(t *testing.T, c *http.Client, method, u, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAPIActionsNeedTheTokenAndAreLogged(t *testing.T) {
	e := newEnv(t, testToken)
	c := e.srv.Client()
	id := e.recID(0)
	approve := e.srv.URL + "/api/v1/recommendations/" + id + "/approve"
	logged := func() int {
		return e.count(t, "select count(*) from indexpilot.mutation_log where recommendation_id = $1 and evidence->>'detail' like 'approved by dashboard api token from 127.0.0.1: reviewed%'", id)
	}
	require.Equal(t, "proposed", e.state(t, id))

	// No token, then a wrong one: 401, nothing changed, nothing logged.
	for _, tok := range []string{"", "wrong-token-wrong-token-wrong"} {
		code, body := do(t, c, "POST", approve, tok, `{"reason":"x"}`)
		require.Equal(t, http.StatusUnauthorized, code, "token %q: %s", tok, body)
		require.NotContains(t, body, testToken)
		require.Equal(t, "proposed", e.state(t, id))
		require.Zero(t, logged())
		code, _ = do(t, c, "POST", e.srv.URL+"/api/v1/bypass/stop", tok, `{"reason":"x"}`)
		require.Equal(t, http.StatusUnauthorized, code)
	}
	require.Zero(t, e.count(t, "select count(*) from indexpilot.bypass_state"))

	// The right token: the state changes and mutation_log says who, from where.
	code, body := do(t, c, "POST", approve, testToken, `{"reason":"reviewed the plan"}`)
	require.Equal(t, http.StatusOK, code, body)
	var dr DecideResponse
	require.NoError(t, json.Unmarshal([]byte(body), &dr))
	require.Equal(t, id, dr.ID)
	require.NotEqual(t, "proposed", e.state(t, id))
	require.Equal(t, dr.State, e.state(t, id))
	require.Equal(t, 1, logged(), "one mutation_log row names the dashboard")
	var approvedBy string
	require.NoError(t, e.db.Pool.QueryRow(t.Context(), "select approved_by from indexpilot.recommendations where id = $1", id).Scan(&approvedBy))
	require.Equal(t, "dashboard api token from 127.0.0.1", approvedBy)

	// Reject needs a reason; with one, it is closed.
	rej := e.srv.URL + "/api/v1/recommendations/" + e.recID(1) + "/reject"
	code, _ = do(t, c, "POST", rej, testToken, ``)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "proposed", e.state(t, e.recID(1)))
	code, body = do(t, c, "POST", rej, testToken, `{"reason":"not on this table"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "rejected", e.state(t, e.recID(1)))

	// The Pareto chart marks the chosen set: filled points for the
	// recommendations still chosen, a hollow one for the rejected.
	code, body = do(t, c, "GET", e.srv.URL+"/recommendations", "", "")
	require.Equal(t, http.StatusOK, code)
	chosenN := e.count(t, "select count(*) from indexpilot.recommendations where state in ('proposed','approved','deferred','building','applied')")
	require.Equal(t, 2, chosenN)
	require.Equal(t, chosenN, strings.Count(body, `<circle class="chosen"`))
	require.Equal(t, 1, strings.Count(body, `<circle class="left-out"`))
	require.Regexp(t, `<a href="/recommendations/`+e.recID(1)+`"><circle class="left-out"`, body)

	// Emergency stop and resume, recorded with the actor.
	code, body = do(t, c, "POST", e.srv.URL+"/api/v1/bypass/stop", testToken, `{"reason":"incident 7","for":"15m"}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/bypass", "", "")
	require.Equal(t, http.StatusOK, code)
	var bp []decisions.BypassStatus
	require.NoError(t, json.Unmarshal([]byte(body), &bp))
	require.Equal(t, "emergency", bp[1].Level)
	require.False(t, bp[1].Enabled)
	require.Equal(t, "dashboard api token from 127.0.0.1", bp[1].Actor)
	code, _ = do(t, c, "POST", e.srv.URL+"/api/v1/bypass/resume", testToken, `{"reason":"resolved"}`)
	require.Equal(t, http.StatusOK, code)
	code, body = do(t, c, "POST", e.srv.URL+"/api/v1/bypass", testToken, `{"level":"stage","name":"executor","disabled":true,"reason":"replica lag"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 3, e.count(t, "select count(*) from indexpilot.mutation_log where stage = 'bypass' and evidence::text like '%dashboard api token%'"))

	// The token never shows: not in pages, not in API answers, not in
	// the server's log (which has a line per change, with the actor).
	for _, p := range []string{"/", "/recommendations", "/recommendations/" + id, "/history", "/api/v1/targets", "/api/v1/history"} {
		code, body := do(t, c, "GET", e.srv.URL+p, testToken, "")
		require.Equal(t, http.StatusOK, code, p)
		require.NotContains(t, body, testToken, p)
	}
	logs := e.logs.String()
	require.Contains(t, logs, "dashboard decision")
	require.Contains(t, logs, "actor=\"dashboard api token from 127.0.0.1\"")
	require.NotContains(t, logs, testToken)
}

func TestReadOnlyWithoutAToken(t *testing.T) {
	e := newEnv(t, "")
	c := e.srv.Client()
	id := e.recID(0)
	for _, tok := range []string{"", testToken} {
		code, body := do(t, c, "POST", e.srv.URL+"/api/v1/recommendations/"+id+"/approve", tok, "")
		require.Equal(t, http.StatusForbidden, code)
		require.Contains(t, body, "read-only")
	}
	require.Equal(t, "proposed", e.state(t, id))
	code, body := do(t, c, "GET", e.srv.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "read-only: no dashboard.token is configured")
	require.NotContains(t, body, `action="/bypass"`, "no form is offered")
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/session", "", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"read_only":true,"authenticated":false}`, body)
}

func TestAPIMatchesTheCLISchema(t *testing.T) {
	e := newEnv(t, "")
	c := e.srv.Client()
	code, body := do(t, c, "GET", e.srv.URL+"/api/v1/recommendations?state=proposed", "", "")
	require.Equal(t, http.StatusOK, code)
	var got []decisions.Recommendation
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&got), "the API's recommendations decode strictly into the CLI's struct")
	want, err := decisions.ListRecommendations(t.Context(), e.db.Pool, "proposed", "")
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].ID, got[i].ID)
		require.Equal(t, want[i].DDL, got[i].DDL)
		require.Equal(t, want[i].Evidence.Statements, got[i].Evidence.Statements)
	}
	code, _ = do(t, c, "GET", e.srv.URL+"/api/v1/recommendations?state=nope", "", "")
	require.Equal(t, http.StatusBadRequest, code)
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/recommendations/"+e.recID(2)[:8], "", "")
	require.Equal(t, http.StatusOK, code)
	var one decisions.Recommendation
	require.NoError(t, json.Unmarshal([]byte(body), &one))
	require.Equal(t, e.recID(2), one.ID)
	require.Equal(t, "orders", one.Index.Table)
	code, _ = do(t, c, "GET", e.srv.URL+"/api/v1/recommendations/ffffffff", "", "")
	require.Equal(t, http.StatusNotFound, code)
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/targets", "", "")
	require.Equal(t, http.StatusOK, code)
	var ts []decisions.TargetStatus
	require.NoError(t, json.Unmarshal([]byte(body), &ts))
	require.Equal(t, map[string]int64{"proposed": 3}, ts[0].Recommendations)
}

func TestBrowserFormsNeedSignInAndCSRF(t *testing.T) {
	e := newEnv(t, testToken)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	id := e.recID(0)
	post := func(path string, form url.Values) int {
		resp, err := c.PostForm(e.srv.URL+path, form)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Not signed in.
	require.Equal(t, http.StatusUnauthorized, post("/recommendations/"+id+"/approve", url.Values{"reason": {"x"}}))
	// A wrong token does not sign in.
	require.Equal(t, http.StatusSeeOther, post("/login", url.Values{"token": {"nope-nope-nope-nope"}}))
	require.Equal(t, http.StatusUnauthorized, post("/recommendations/"+id+"/approve", url.Values{"reason": {"x"}}))
	// Signed in, but without the form's CSRF token.
	require.Equal(t, http.StatusSeeOther, post("/login", url.Values{"token": {testToken}}))
	for _, ck := range jar.Cookies(mustURL(t, e.srv.URL)) {
		require.NotContains(t, ck.Value, testToken)
	}
	require.Equal(t, http.StatusForbidden, post("/recommendations/"+id+"/approve", url.Values{"reason": {"x"}}))
	require.Equal(t, "proposed", e.state(t, id))
	// With the CSRF token of the page.
	resp, err := c.Get(e.srv.URL + "/recommendations/" + id)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	require.NotNil(t, m, "the page of a signed-in user has forms")
	require.Equal(t, http.StatusSeeOther, post("/recommendations/"+id+"/approve", url.Values{"reason": {"ok"}, "csrf": {string(m[1])}}))
	require.NotEqual(t, "proposed", e.state(t, id))
	require.Equal(t, 1, e.count(t, "select count(*) from indexpilot.mutation_log where recommendation_id = $1 and evidence->>'detail' like '%dashboard session from%'", id))
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestEffectPageAndReportAPI(t *testing.T) {
	e := newEnv(t, "")
	c := e.srv.Client()
	id := e.recID(0)
	spec := e.recs[0].Index
	e.db.Exec(t, `insert into indexpilot.validations (recommendation_id, target, schema_name, table_name, index_name, index_key, query_ids,
   build_started_at, built_at, state, verdict, reverted, evidence)
 values ('`+id+`', 'main', 'public', 'contacts', 'ip_contacts_email_x', '`+spec.Key()+`', '{1contacts,12}', now(), now(), 'done',
   'improved', false, '{"change_pct": 97.5, "plan_uses_index": true, "statements": [
     {"query_id": "1contacts", "before_calls": 1200, "before_mean_ms": 3.61, "after_calls": 1250, "after_mean_ms": 0.09},
     {"query_id": "12", "before_calls": 80, "before_mean_ms": 12.5, "after_calls": 90, "after_mean_ms": 0.4}]}')`)

	code, body := do(t, c, "GET", e.srv.URL+"/effect", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `data-recommendation="`+id+`"`)
	require.Contains(t, body, "Verdict: <strong class=\"state improved\">improved</strong>, change 97.5%, the plans use the index")
	require.Equal(t, 2, strings.Count(body, `<rect class="before"`))
	require.Contains(t, body, "3.610 ms before")
	require.Contains(t, body, "0.090 ms after")

	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/report", "", "")
	require.Equal(t, http.StatusOK, code)
	var rep decisions.Report
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "the API's report decodes strictly into the CLI's struct")
	require.Len(t, rep.Validations, 1)
	require.Equal(t, "improved", rep.Validations[0].Verdict)
	require.Len(t, rep.Validations[0].Statements, 2)

	// The measured saving split by tenant: the email lookup's saving
	// (1250 calls × 3.52 ms) by its statement's shares, the other
	// statement's (90 × 12.1 ms), which has no split, unattributed.
	vt := rep.Validations[0].Tenants
	require.Len(t, vt, 4)
	lookup, other := 1250*(3.61-0.09), 90*(12.5-0.4)
	require.Equal(t, events.TenantShare{Tenant: "17", Share: math.Round(10000*0.72*lookup/(lookup+other)) / 10000, Source: "estimated:app_stats"}, vt[0])
	require.Equal(t, events.TenantUnattributed, vt[3].Bucket)
	require.InDelta(t, other/(lookup+other), vt[3].Share, 0.0001)
	summary := events.TenantSummary(vt)
	require.True(t, strings.HasPrefix(summary, "57.7 % of the saving goes to tenant 17; tenant 3 16 %"), summary)
	code, body = do(t, c, "GET", e.srv.URL+"/effect", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `By tenant (measured saving, estimated split): <span class="tenant-summary">`+template.HTMLEscapeString(summary)+`</span>`)
	require.Equal(t, 4, strings.Count(body, `data-share="`))
	code, _ = do(t, c, "GET", e.srv.URL+"/api/v1/report?since=yesterday", "", "")
	require.Equal(t, http.StatusBadRequest, code)
}

func TestRestoreNeedsTheTokenAndRecordsWho(t *testing.T) {
	e := newEnv(t, testToken)
	c := e.srv.Client()
	def := "CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)"
	removalID := events.RemovalID("main", "public", "contacts_email_idx", def)
	e.db.Exec(t, `insert into indexpilot.removals (id, target, schema_name, table_name, index_name, definition, reason, state, dropped_at)
 values ('`+removalID+`', 'main', 'public', 'contacts', 'contacts_email_idx', '`+def+`', 'unused', 'done', now())`)
	restore := e.srv.URL + "/api/v1/removals/" + removalID[:8] + "/restore"
	exists := func() int {
		return e.count(t, "select count(*) from pg_indexes where schemaname = 'public' and indexname = 'contacts_email_idx'")
	}

	code, _ := do(t, c, "POST", restore, "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = do(t, c, "POST", restore, "wrong-token-wrong-token", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Zero(t, exists())

	code, body := do(t, c, "POST", restore, testToken, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 1, exists())
	require.Equal(t, 1, e.count(t, `select count(*) from indexpilot.mutation_log where stage = 'dashboard' and action = 'restore_request'
   and outcome = 'restored' and reason = 'requested by dashboard api token from 127.0.0.1' and evidence->>'removal_id' = $1`, removalID))

	// The Effect page lists it as restored.
	code, body = do(t, c, "GET", e.srv.URL+"/effect", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<tr data-id="`+removalID+`"><td>contacts_email_idx</td>`)
	code, _ = do(t, c, "POST", e.srv.URL+"/api/v1/removals/ffffffff/restore", testToken, "")
	require.Equal(t, http.StatusNotFound, code)
}

// History reads the archive too: rows `indexpilot archive` moved out of
// mutation_log still show, marked archived, newest first with the rest.
func TestHistoryIncludesArchivedRows(t *testing.T) {
	e := newEnv(t, "")
	c := e.srv.Client()
	total := e.count(t, "select count(*) from indexpilot.mutation_log")
	require.NotZero(t, total)
	// Age the first recommendation's rows and archive them.
	id := e.recID(0)
	e.db.Exec(t, `update indexpilot.mutation_log set occurred_at = now() - interval '100 days' where recommendation_id = '`+id+`'`)
	moved, err := metadata.ArchiveLog(t.Context(), e.db.Pool, time.Now().Add(-90*24*time.Hour), 100, false)
	require.NoError(t, err)
	require.NotZero(t, moved)
	require.Equal(t, int(moved), e.count(t, "select count(*) from indexpilot.mutation_log_archive"))

	code, body := do(t, c, "GET", e.srv.URL+"/api/v1/history", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var h []decisions.HistoryEntry
	require.NoError(t, json.Unmarshal([]byte(body), &h))
	require.Len(t, h, total, "live and archived rows together")
	var archived int
	for i, r := range h {
		if i > 0 {
			require.Less(t, r.ID, h[i-1].ID, "newest first across both tables")
		}
		if r.Archived {
			archived++
			require.Equal(t, id, r.RecommendationID)
		}
	}
	require.Equal(t, int(moved), archived)

	// The recommendation's own page and a filter find them as well.
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/history?recommendation="+id[:8], "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &h))
	require.Len(t, h, int(moved))
	code, body = do(t, c, "GET", e.srv.URL+"/recommendations/"+id, "", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, int(moved), strings.Count(body, `data-archived="true"`))
	// limit applies to the merged history.
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/history?limit=1", "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &h))
	require.Len(t, h, 1)
}

// The overview and /api/v1/targets show every stage's health per target:
// the gatekeeper's heartbeat (its Handle recorded the candidates), the
// scorer's lag from workload it has not scored, the executor's failure
// and the build that waits for it.
func TestStagesHealthPerTarget(t *testing.T) {
	e := newEnv(t, "")
	c := e.srv.Client()
	// Workload stored 10 minutes ago that no scorer has scored; a build due
	// 3 minutes ago that no executor claimed; the executor's last claim
	// pass failed.
	e.db.Exec(t, `insert into indexpilot.workload_stats (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows)
 values ('main', 'q1', now() - interval '10 minutes', now() - interval '11 minutes', 'select 1', 5, 1.5, 5)`)
	e.db.Exec(t, `insert into indexpilot.builds (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, not_before)
 select id, target, index_spec, index_name, gen_random_uuid(), candidate_id, now() - interval '3 minutes'
   from indexpilot.recommendations where id = '`+e.recID(0)+`'`)
	h := metadata.NewStageHealth(e.db.Pool, slog.New(slog.NewTextHandler(io.Discard, nil)), "executor")
	h.Beat(t.Context(), "", time.Now(), time.Second, nil, errors.New("claim build: connection refused"))

	code, body := do(t, c, "GET", e.srv.URL+"/api/v1/targets", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var ts []decisions.TargetStatus
	require.NoError(t, json.Unmarshal([]byte(body), &ts))
	require.Len(t, ts, 1)
	st := map[string]decisions.StageStatus{}
	var order []string
	for _, s := range ts[0].Stages {
		st[s.Stage] = s
		order = append(order, s.Stage)
	}
	require.Equal(t, []string{"collector", "scorer", "gatekeeper", "executor"}, order)
	require.Equal(t, "never", st["collector"].State, "no collector ran")

	require.Equal(t, "never", st["scorer"].State)
	require.Greater(t, st["scorer"].LagMs, (9 * time.Minute).Milliseconds(), "the unscored window waits since 10 minutes")
	require.Less(t, st["scorer"].LagMs, (11 * time.Minute).Milliseconds())

	gk := st["gatekeeper"]
	require.Equal(t, "ok", gk.State, "the gatekeeper's Handle beat for the target")
	require.NotNil(t, gk.LastActivityAt)
	require.WithinDuration(t, time.Now(), *gk.LastActivityAt, time.Minute)
	require.Equal(t, *gk.LastActivityAt, *gk.LastSuccessAt)

	ex := st["executor"]
	require.Equal(t, "failing", ex.State)
	require.Equal(t, 1, ex.ConsecutiveFailures)
	require.Equal(t, "claim build: connection refused", ex.LastError)
	require.Greater(t, ex.LagMs, (2 * time.Minute).Milliseconds(), "the build due 3 minutes ago")

	// A recovery: failures back to 0, the last error kept with its time.
	h.Beat(t.Context(), "", time.Now(), time.Second, nil, nil)
	code, body = do(t, c, "GET", e.srv.URL+"/api/v1/targets", "", "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &ts))
	ex = ts[0].Stages[3]
	require.Equal(t, "ok", ex.State)
	require.Zero(t, ex.ConsecutiveFailures)
	require.Equal(t, "claim build: connection refused", ex.LastError)

	// The page shows the same.
	code, body = do(t, c, "GET", e.srv.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	for _, s := range []string{"collector", "scorer", "gatekeeper", "executor"} {
		require.Contains(t, body, `<tr data-stage="`+s+`">`)
	}
	require.Contains(t, body, "claim build: connection refused")
	require.Contains(t, body, decisions.LagOfScorer)
}

// The recommendation's page and the API show what the evidence holds of
// issue 14: the split of the benefit by tenant (the index's and each
// statement's, in the one line the CLI prints), the forecast of a
// recurring peak, and the trace the gatekeeper kept.
func TestRecommendationShowsTenantsForecastAndTrace(t *testing.T) {
	e := newEnv(t, "")
	c := e.srv.Client()

	// The trace: the gatekeeper kept the candidate's span as trace_parent.
	var tp string
	require.NoError(t, e.db.Pool.QueryRow(t.Context(), "select trace_parent from indexpilot.recommendations where id = $1", e.recID(0)).Scan(&tp))
	require.Contains(t, tp, testTraceID.String())
	code, body := do(t, c, "GET", e.srv.URL+"/api/v1/recommendations/"+e.recID(0), "", "")
	require.Equal(t, http.StatusOK, code, body)
	var rec decisions.Recommendation
	require.NoError(t, json.Unmarshal([]byte(body), &rec))
	require.Equal(t, testTraceID.String(), rec.TraceID)
	require.Contains(t, body, `"trace_id": "`+testTraceID.String()+`"`)
	require.Equal(t, emailTenants, rec.Evidence.Tenants, "one statement: the index's split is the statement's")
	require.Equal(t, emailTenants, rec.Evidence.Statements[0].Tenants)

	code, body = do(t, c, "GET", e.srv.URL+"/recommendations/"+e.recID(0), "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<code id="trace-id">`+testTraceID.String()+`</code>`)
	summary := events.TenantSummary(rec.Evidence.Tenants)
	require.Equal(t, "72 % of the saving goes to tenant 17; tenant 3 20 %, other tenants 8 % (from app_stats)", summary)
	require.Contains(t, body, `<p id="tenant-summary">`+template.HTMLEscapeString(summary)+`</p>`)
	require.Contains(t, body, `<td class="tenants">`+template.HTMLEscapeString(summary)+`</td>`)
	require.Equal(t, 3, strings.Count(body, `data-share="`), "one bar per share")
	require.Contains(t, body, `<rect class="tenant" data-share="0.7200"`)
	require.Contains(t, body, `<rect class="bucket" data-share="0.0800"`)
	require.NotContains(t, body, `id="forecast"`, "no peak, no forecast")

	// The forecast of the tenant's listing, with the read of the row.
	listing, err := decisions.GetRecommendation(t.Context(), e.db.Pool, e.recID(1))
	require.NoError(t, err)
	f := listing.Evidence.Forecast
	require.NotNil(t, f)
	require.Empty(t, listing.TraceID)
	code, body = do(t, c, "GET", e.srv.URL+"/recommendations/"+e.recID(1), "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<p id="forecast-summary">`+template.HTMLEscapeString(f.Summary())+`</p>`)
	require.Contains(t, f.Summary(), "weekly peak expected Mon 02:00 UTC, build by 01:20 (confidence 1.00 over 5 weeks)")
	require.Contains(t, body, `<dd id="forecast-build-from">`+f.BuildFrom.UTC().Format("Mon 2006-01-02 15:04 UTC")+`</dd>`)
	require.Contains(t, body, f.DropDetail)
	require.Contains(t, body, `<dd id="trace">not recorded</dd>`)
	require.Contains(t, body, template.HTMLEscapeString("90 % of the saving goes to tenant 7; tenant 12 10 % (from qualstats)"))
	require.NotContains(t, body, `<dt>forecast</dt>`, "the forecast has its own section, not the raw field list")

	// No split: no section, "-" per statement.
	code, body = do(t, c, "GET", e.srv.URL+"/recommendations/"+e.recID(2), "", "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, `id="tenants"`)
	require.Contains(t, body, `<td class="tenants">-</td>`)
}

// The overview lists the builds running now with the progress their
// executor recorded (executor.Progress in builds.progress).
func TestOverviewShowsBuildsInProgress(t *testing.T) {
	e := newEnv(t, "")
	cpu := 35.0
	observed := time.Now().UTC().Truncate(time.Second)
	p, err := json.Marshal(executor.Progress{Target: "main", Index: "ip_contacts_email_x", Table: "public.contacts",
		Phase: "building index: scanning table", BlocksDone: 400, BlocksTotal: 1000, TuplesDone: 2000, TuplesTotal: 0,
		Partitions: 2, CPUPercent: &cpu, ObservedAt: observed})
	require.NoError(t, err)
	e.db.Exec(t, `insert into indexpilot.builds (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id,
   state, attempts, claimed_by, lease_until, progress)
 select id, target, index_spec, index_name, gen_random_uuid(), candidate_id, 'running', 1, 'executor host-a/42', now() + interval '1 minute', '`+string(p)+`'
   from indexpilot.recommendations where id = '`+e.recID(0)+`'`)
	var index string
	require.NoError(t, e.db.Pool.QueryRow(t.Context(), "select index_name from indexpilot.builds where state = 'running'").Scan(&index))

	code, body := do(t, e.srv.Client(), "GET", e.srv.URL+"/api/v1/targets", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var ts []decisions.TargetStatus
	require.NoError(t, json.Unmarshal([]byte(body), &ts))
	require.Len(t, ts[0].Builds, 1)
	b := ts[0].Builds[0]
	require.Equal(t, index, b.IndexName)
	require.NotNil(t, b.Progress)
	require.Equal(t, int64(2), b.Progress.Partitions)
	require.True(t, observed.Equal(b.Progress.ObservedAt))

	code, body = do(t, e.srv.Client(), "GET", e.srv.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<tr class="build" data-index="`+index+`">`)
	require.Contains(t, body, `<td class="phase">building index: scanning table on public.contacts</td>`)
	require.Contains(t, body, `<progress max="100" value="40"></progress> 40% of blocks, 2 partitions done, cpu 35.0%`)
	require.Contains(t, body, "(as of "+observed.Format("2006-01-02 15:04:05Z")+")")
	require.Contains(t, body, "executor host-a/42")
}
