package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/bytesize"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	ReadOnly bool
	SignedIn bool
	CSRF     string
	Flash    string
	Data     any
}

func (s *Server) page(r *http.Request, title, nav string, data any) page {
	sess := s.auth.session(r, s.now())
	return page{Title: title, Nav: nav, ReadOnly: s.auth.readOnly(), SignedIn: sess != "", CSRF: s.auth.csrf(sess),
		Flash: r.URL.Query().Get("done"), Data: data}
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"bytes":   bytesize.Human,
		"estsize": decisions.EstimatedSize,
		"time":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"ptime":   func(t *time.Time) string { return fmtPtrTime(t) },
		"short":   func(id string) string { return id[:min(8, len(id))] },
		"ms":      func(v int64) string { return (time.Duration(v) * time.Millisecond).Truncate(time.Second).String() },
		"num":     func(v float64) string { return fmt.Sprintf("%.2f", v) },
		"pct":     func(v float64) string { return fmt.Sprintf("%.1f%%", v) },
		"join":    strings.Join,
		"recsURL": recsURL,
		"chosen":  chosen,
		"deref":   func(p *float64) float64 { return *p },
		// tenants is the one-line split the CLI prints ("72 % of the
		// saving goes to tenant 17; ..."), tenantChart its bars.
		"tenants":     events.TenantSummary,
		"tenantChart": tenantChart,
		"hour":        func(t time.Time) string { return t.UTC().Format("Mon 2006-01-02 15:04 UTC") },
		"seconds":     func(s float64) string { return (time.Duration(s * float64(time.Second))).Round(time.Second).String() },
		"progress": func(p decisions.BuildProgress) template.HTML {
			v, unit, ok := p.Percent()
			if !ok {
				return "-"
			}
			return template.HTML(fmt.Sprintf(`<progress max="100" value="%.0f"></progress> %.0f%% of %s`, v, v, unit))
		},
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "recommendations", "recommendation", "history", "login", "effect"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard templates: %w", err)
		}
		out[name] = t
	}
	return out, nil
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

func fmtPtrTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func recsURL(target, state string) string {
	v := url.Values{}
	if target != "" {
		v.Set("target", target)
	}
	if state != "" {
		v.Set("state", state)
	}
	if len(v) == 0 {
		return "/recommendations"
	}
	return "/recommendations?" + v.Encode()
}

// chosen reports whether a recommendation in state is in the set the
// selection chose (and the gatekeeper did not close).
func chosen(state string) bool {
	switch state {
	case "proposed", "approved", "deferred", "building", "applied":
		return true
	}
	return false
}

// overview is the Overview page's data.
type overview struct {
	Targets   []decisions.TargetStatus
	Bypass    []decisions.BypassStatus
	Emergency decisions.BypassStatus
	Levels    []string
	Names     []string
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	ts, err := decisions.TargetStatuses(r.Context(), s.pool, s.cfg, s.now())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	bp, err := decisions.LoadBypass(r.Context(), s.pool, s.cfg, s.now())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	o := overview{Targets: ts, Bypass: bp, Names: append(slices.Clone(config.BypassStages), config.BypassFeatures...)}
	for _, b := range bp {
		if b.Level == string(bypass.LevelEmergency) {
			o.Emergency = b
		}
	}
	for _, l := range bypass.Levels {
		o.Levels = append(o.Levels, string(l))
	}
	s.render(w, r, "overview", s.page(r, "Overview", "overview", o))
}

// recView is a recommendation with the numbers its pages show, read from
// the scorer's evidence (events.IndexCandidateScored): the read saving
// (benefit_cost) and, beside it, the write side (write_overhead_cost and
// wal_bytes_per_write_txn).
type recView struct {
	decisions.Recommendation
	// ReadSaving is the calls-weighted plan-cost saving over the scoring
	// window (evidence benefit_cost).
	ReadSaving float64
	// WriteCost is what the index's maintenance costs the workload's
	// writes over the window, in the same units (write_overhead_cost).
	WriteCost float64
	// WALPerWriteTxn is the estimated WAL bytes the index adds per write
	// transaction (wal_bytes_per_write_txn); nil where the formula has no
	// write model (v1).
	WALPerWriteTxn *float64
	// WALUnit says what WALPerWriteTxn is counted per (wal_basis, in
	// words): write transactions or, without the server's transaction
	// counter, write statements.
	WALUnit    string
	Statements []events.StatementEvidence
	// Extra are evidence fields this page has no place for, by JSON name.
	Extra [][2]string
}

// shownEvidence are the candidate evidence fields the pages show in their
// own place; any other non-empty field is listed in Extra.
var shownEvidence = map[string]bool{"target": true, "candidate_id": true, "index": true, "formula_version": true,
	"what_if_method": true, "window_end": true, "max_improvement_pct": true, "estimated_size_bytes": true,
	"statements": true, "benefit_cost": true, "write_overhead_cost": true, "wal_bytes_per_write_txn": true, "wal_basis": true, "wal_image_bytes_per_write_txn": true,
	"hot_updates_lost": true, "held_reason": true, "held_detail": true, "rejected_reason": true, "rejected_detail": true,
	"notes": true, "build_cost": true, "net_benefit": true, "time_saved_ms_per_hour": true, "forecast": true, "tenants": true}

// hasWriteModel reports whether formula version fv prices the write side
// (WAL per write transaction); v1 does not.
func hasWriteModel(fv string) bool { return fv != "" && fv != "v1" }

func view(rec decisions.Recommendation) recView {
	ev := rec.Evidence
	v := recView{Recommendation: rec, ReadSaving: ev.BenefitCost, WriteCost: ev.WriteOverheadCost, Statements: ev.Statements}
	if hasWriteModel(ev.FormulaVersion) {
		wal := ev.WALBytesPerWriteTxn
		v.WALPerWriteTxn, v.WALUnit = &wal, events.WALUnit(ev.WALBasis)
	}
	raw, _ := json.Marshal(ev)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	for _, k := range sortedKeys(m) {
		if !shownEvidence[k] {
			v.Extra = append(v.Extra, [2]string{k, strings.Trim(string(m[k]), `"`)})
		}
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// recList is the Recommendations page's data.
type recList struct {
	Filter  decisions.Filter
	Targets []string
	States  []string
	Recs    []recView
	Charts  []chart
}

func (s *Server) recommendationsPage(w http.ResponseWriter, r *http.Request) {
	f, ok := s.recFilter(w, r)
	if !ok {
		return
	}
	recs, err := decisions.Recommendations(r.Context(), s.pool, f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := recList{Filter: f, States: s.states}
	for _, t := range s.cfg.Targets {
		d.Targets = append(d.Targets, t.Name)
	}
	byTarget := map[string][]recView{}
	for _, rec := range recs {
		v := view(rec)
		d.Recs = append(d.Recs, v)
		byTarget[rec.Target] = append(byTarget[rec.Target], v)
	}
	if f.State == "" {
		// The chart needs every candidate of a target, not a filtered few.
		for _, t := range sortedKeys(byTarget) {
			if c, ok := paretoChart(t, byTarget[t]); ok {
				d.Charts = append(d.Charts, c)
			}
		}
	}
	s.render(w, r, "recommendations", s.page(r, "Recommendations", "recommendations", d))
}

// recDetail is the page of one recommendation.
type recDetail struct {
	Rec     recView
	History []decisions.HistoryEntry
	CanAct  bool
}

func (s *Server) recommendationPage(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.oneRecommendation(w, r)
	if !ok {
		return
	}
	h, err := decisions.History(r.Context(), s.pool, decisions.HistoryFilter{RecommendationID: rec.ID})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	// A held one can be approved anyway (the scorer's hold is overridden,
	// the gatekeeper's rules still apply) or rejected.
	d := recDetail{Rec: view(rec), History: h,
		CanAct: rec.State == "proposed" || rec.State == "deferred" || rec.State == "approved" || rec.State == "superseded" || rec.State == "held"}
	s.render(w, r, "recommendation", s.page(r, rec.IndexName, "recommendations", d))
}

type historyPage struct {
	Filter  decisions.HistoryFilter
	Entries []decisions.HistoryEntry
}

func (s *Server) historyPage(w http.ResponseWriter, r *http.Request) {
	f := s.historyFilter(r)
	h, err := decisions.History(r.Context(), s.pool, f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.render(w, r, "history", s.page(r, "History", "history", historyPage{Filter: f, Entries: h}))
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", s.page(r, "Sign in", "login", r.URL.Query().Get("error")))
}

// login checks the token of the sign-in form and sets the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.auth.readOnly() {
		s.fail(w, r, http.StatusForbidden, "read-only: no dashboard.token is configured")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameHost(o, r.Host) {
		s.fail(w, r, http.StatusForbidden, "cross-origin sign-in refused")
		return
	}
	if !s.auth.tokenOK(r.PostFormValue("token")) {
		s.log.Warn("dashboard sign-in refused", "from", actor(r, "sign-in"))
		http.Redirect(w, r, "/login?error=the+token+is+not+valid", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.auth.newSession(s.now()), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
		MaxAge: int(sessionTTL.Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// formAllowed answers a form post that may not proceed.
func (s *Server) formAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.auth.readOnly() {
		s.fail(w, r, http.StatusForbidden, "read-only: no dashboard.token is configured")
		return false
	}
	sess := s.auth.session(r, s.now())
	if sess == "" {
		s.fail(w, r, http.StatusUnauthorized, "sign in with the dashboard token first (/login)")
		return false
	}
	if !s.auth.csrfOK(r, sess) {
		s.fail(w, r, http.StatusForbidden, "the form's CSRF token is missing or wrong: reload the page")
		return false
	}
	return true
}

func (s *Server) decideForm(w http.ResponseWriter, r *http.Request) {
	if !s.formAllowed(w, r) {
		return
	}
	rec, err := s.decide(r, r.PathValue("verb"), r.PathValue("id"), r.PostFormValue("reason"), "session")
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/recommendations/"+rec.ID+"?done="+url.QueryEscape(rec.State), http.StatusSeeOther)
}

func (s *Server) bypassForm(w http.ResponseWriter, r *http.Request) {
	if !s.formAllowed(w, r) {
		return
	}
	req := BypassRequest{Level: r.PostFormValue("level"), Name: r.PostFormValue("name"),
		Disabled: r.PostFormValue("action") == "disable", Reason: r.PostFormValue("reason"), For: r.PostFormValue("for")}
	verb := r.PostFormValue("verb") // stop | resume | "" (a switch)
	if (req.Level != string(bypass.LevelStage) && req.Level != string(bypass.LevelFeature)) || verb != "" {
		req.Name = ""
	}
	out, err := s.setBypass(r, verb, req, "session")
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	state := "enabled"
	if out.Disabled {
		state = "disabled"
	}
	http.Redirect(w, r, "/?done="+url.QueryEscape(strings.TrimSpace(out.Level+" "+out.Name)+" "+state), http.StatusSeeOther)
}

// effectRow is one validated index on the Effect page.
type effectRow struct {
	decisions.ReportVerdict
	Chart template.HTML
	// Plans says whether the statements' plans use the index: "use",
	// "do not use", or "" when unknown.
	Plans string
}

type effectPage struct {
	Target   string
	Rows     []effectRow
	Removals []decisions.ReportRemoval
}

// effectPage shows, for each validated index, the mean time of the
// statements it targeted before and after, and the verdict.
func (s *Server) effectPage(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("target")
	rep, err := decisions.BuildReport(r.Context(), s.pool, target, time.Time{})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := effectPage{Target: target, Removals: rep.Removals}
	for _, v := range rep.Validations {
		c, _ := effectChart(v)
		row := effectRow{ReportVerdict: v, Chart: c}
		if v.PlanUsesIndex != nil {
			row.Plans = map[bool]string{true: "use", false: "do not use"}[*v.PlanUsesIndex]
		}
		d.Rows = append(d.Rows, row)
	}
	s.render(w, r, "effect", s.page(r, "Effect", "effect", d))
}

func (s *Server) restoreForm(w http.ResponseWriter, r *http.Request) {
	if !s.formAllowed(w, r) {
		return
	}
	res, err := s.restore(r, r.PathValue("id"), "session")
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/effect?done="+url.QueryEscape("restored "+res.IndexName), http.StatusSeeOther)
}
