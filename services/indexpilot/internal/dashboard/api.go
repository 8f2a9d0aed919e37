package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

func (s *Server) apiRecommendations(w http.ResponseWriter, r *http.Request) {
	f, ok := s.recFilter(w, r)
	if !ok {
		return
	}
	recs, err := decisions.Recommendations(r.Context(), s.pool, f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if recs == nil {
		recs = []decisions.Recommendation{}
	}
	writeJSON(w, http.StatusOK, recs)
}

// recFilter reads ?state= and ?target=, refusing an unknown state.
func (s *Server) recFilter(w http.ResponseWriter, r *http.Request) (decisions.Filter, bool) {
	f := decisions.Filter{State: r.URL.Query().Get("state"), Target: r.URL.Query().Get("target")}
	if f.State != "" && !slices.Contains(s.states, f.State) {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("unknown state %q", f.State))
		return f, false
	}
	return f, true
}

func (s *Server) apiRecommendation(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.oneRecommendation(w, r)
	if ok {
		writeJSON(w, http.StatusOK, rec)
	}
}

// oneRecommendation reads the recommendation of the {id} path value.
func (s *Server) oneRecommendation(w http.ResponseWriter, r *http.Request) (decisions.Recommendation, bool) {
	id := r.PathValue("id")
	if len(id) < 4 || !isHexID(id) {
		s.fail(w, r, http.StatusBadRequest, "the id is a recommendation id or a prefix of at least 4 characters")
		return decisions.Recommendation{}, false
	}
	rec, err := decisions.GetRecommendation(r.Context(), s.pool, id)
	switch {
	case errors.Is(err, decisions.ErrNotFound), errors.Is(err, gatekeeper.ErrNotFound), errors.Is(err, executor.ErrNotRestorable):
		s.fail(w, r, http.StatusNotFound, "no recommendation "+id)
	case errors.Is(err, decisions.ErrAmbiguous):
		s.fail(w, r, http.StatusBadRequest, err.Error())
	case err != nil:
		s.internal(w, r, err)
	default:
		return rec, true
	}
	return decisions.Recommendation{}, false
}

func isHexID(id string) bool {
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) apiTargets(w http.ResponseWriter, r *http.Request) {
	ts, err := decisions.TargetStatuses(r.Context(), s.pool, s.cfg, s.now())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (s *Server) apiBypass(w http.ResponseWriter, r *http.Request) {
	rows, err := decisions.LoadBypass(r.Context(), s.pool, s.cfg, s.now())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) historyFilter(r *http.Request) decisions.HistoryFilter {
	q := r.URL.Query()
	f := decisions.HistoryFilter{Target: q.Get("target"), Stage: q.Get("stage"), Action: q.Get("action"),
		RecommendationID: q.Get("recommendation")}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		f.Limit = min(n, 1000)
	}
	return f
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	h, err := decisions.History(r.Context(), s.pool, s.historyFilter(r))
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if h == nil {
		h = []decisions.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, h)
}

// Session is GET /api/v1/session: whether the server accepts changes and
// whether this request may make them.
type Session struct {
	ReadOnly      bool `json:"read_only"`
	Authenticated bool `json:"authenticated"`
}

func (s *Server) apiSession(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Session{ReadOnly: s.auth.readOnly(), Authenticated: s.auth.tokenOK(bearer(r))})
}

// apiAllowed answers a mutating API call that may not proceed: 403 on a
// read-only server, 401 without the right bearer token. It never says
// what was presented.
func (s *Server) apiAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.auth.readOnly() {
		s.fail(w, r, http.StatusForbidden, "read-only: no dashboard.token is configured")
		return false
	}
	if !s.auth.tokenOK(bearer(r)) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="indexpilot"`)
		s.fail(w, r, http.StatusUnauthorized, "a valid bearer token is required")
		return false
	}
	return true
}

// DecideRequest is the body of POST /api/v1/recommendations/{id}/approve|reject.
type DecideRequest struct {
	Reason string `json:"reason"`
}

// DecideResponse says what was recorded.
type DecideResponse struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func (s *Server) apiDecide(w http.ResponseWriter, r *http.Request) {
	if !s.apiAllowed(w, r) {
		return
	}
	var req DecideRequest
	if !decodeBody(w, r, s, &req) {
		return
	}
	rec, err := s.decide(r, r.PathValue("verb"), r.PathValue("id"), req.Reason, "api token")
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DecideResponse{ID: rec.ID, State: rec.State})
}

// decodeBody reads an optional JSON body into v.
func decodeBody(w http.ResponseWriter, r *http.Request, s *Server, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.fail(w, r, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// badRequest is an action refused for what was asked (shown to the user).
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func (s *Server) actionFailed(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	switch {
	case errors.As(err, &br):
		s.fail(w, r, http.StatusBadRequest, br.msg)
	case errors.Is(err, decisions.ErrNotFound), errors.Is(err, gatekeeper.ErrNotFound), errors.Is(err, executor.ErrNotRestorable):
		s.fail(w, r, http.StatusNotFound, err.Error())
	case isDatabaseError(err):
		s.internal(w, r, err)
	default:
		// The gatekeeper's refusals (wrong state, unknown id) are
		// operator-facing messages without secrets.
		s.log.Warn("dashboard action refused", "path", r.URL.Path, "error", err.Error())
		s.fail(w, r, http.StatusConflict, err.Error())
	}
}

// decide approves or rejects, as who signed in (how) from where, and
// returns the recommendation as it is now.
func (s *Server) decide(r *http.Request, verb, id, reason, how string) (decisions.Recommendation, error) {
	if verb != "approve" && verb != "reject" {
		return decisions.Recommendation{}, badRequest{"the action is approve or reject"}
	}
	if !isHexID(id) || len(id) < 4 {
		return decisions.Recommendation{}, badRequest{"the id is a recommendation id or a prefix of at least 4 characters"}
	}
	if verb == "reject" && reason == "" {
		return decisions.Recommendation{}, badRequest{"a reason is required to reject"}
	}
	full, err := decisions.Decide(r.Context(), s.pool, verb, id, actor(r, how), reason, s.now())
	if err != nil {
		return decisions.Recommendation{}, err
	}
	s.log.Info("dashboard decision", "verb", verb, "recommendation", full, "actor", actor(r, how))
	return decisions.GetRecommendation(r.Context(), s.pool, full)
}

// BypassRequest is the body of POST /api/v1/bypass (and of /bypass/stop and
// /bypass/resume, where level and disabled are implied).
type BypassRequest struct {
	Level    string `json:"level"`
	Name     string `json:"name,omitempty"`
	Disabled bool   `json:"disabled"`
	Reason   string `json:"reason"`
	// For is how long until the change recovers by itself ("15m"); only
	// for a disabling change.
	For string `json:"for,omitempty"`
}

// BypassResponse is the switch as recorded.
type BypassResponse struct {
	Level     string     `json:"level"`
	Name      string     `json:"name,omitempty"`
	Disabled  bool       `json:"disabled"`
	ChangeID  int64      `json:"change_id"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// StillDisabledByConfig: an enabling change leaves the switch
	// disabled by features.bypass in the configuration.
	StillDisabledByConfig bool `json:"still_disabled_by_config,omitempty"`
}

func (s *Server) apiBypassSet(w http.ResponseWriter, r *http.Request) {
	if !s.apiAllowed(w, r) {
		return
	}
	var req BypassRequest
	if !decodeBody(w, r, s, &req) {
		return
	}
	out, err := s.setBypass(r, r.PathValue("verb"), req, "api token")
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// setBypass applies a bypass change; verb "stop" and "resume" are the
// emergency stop, "" a change of the level the request names.
func (s *Server) setBypass(r *http.Request, verb string, req BypassRequest, how string) (BypassResponse, error) {
	switch verb {
	case "":
	case "stop", "resume":
		req.Level, req.Name, req.Disabled = string(bypass.LevelEmergency), "", verb == "stop"
	default:
		return BypassResponse{}, badRequest{"the bypass action is stop or resume"}
	}
	ch := bypass.Change{Level: bypass.Level(req.Level), Name: req.Name, Disabled: req.Disabled, Reason: req.Reason,
		Actor: actor(r, how)}
	if req.For != "" {
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 {
			return BypassResponse{}, badRequest{fmt.Sprintf("for: %q is not a positive duration (e.g. 15m)", req.For)}
		}
		ch.For = d
	}
	if err := ch.Validate(); err != nil {
		return BypassResponse{}, badRequest{err.Error()}
	}
	sw, still, err := decisions.SetBypass(r.Context(), s.cfg, s.pool, ch, s.now())
	if err != nil {
		return BypassResponse{}, err
	}
	s.log.Info("dashboard bypass change", "level", string(sw.Level), "name", sw.Name, "disabled", sw.Disabled, "actor", ch.Actor)
	return BypassResponse{Level: string(sw.Level), Name: sw.Name, Disabled: sw.Disabled, ChangeID: sw.ChangeID,
		ExpiresAt: sw.ExpiresAt, StillDisabledByConfig: still}, nil
}

// apiReport is GET /api/v1/report?target=T&since=168h: the report of
// `indexpilot report --json`.
func (s *Server) apiReport(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("since: %q is not a positive duration (e.g. 168h)", v))
			return
		}
		since = s.now().Add(-d)
	}
	rep, err := decisions.BuildReport(r.Context(), s.pool, r.URL.Query().Get("target"), since)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// isDatabaseError reports an error from the database or the connection
// (as opposed to a refusal the gatekeeper or the bypass explains): its text
// stays in the server's log.
func isDatabaseError(err error) bool {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	return errors.As(err, &pgErr) || errors.As(err, &connErr) || pgconn.Timeout(err) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (s *Server) apiRestore(w http.ResponseWriter, r *http.Request) {
	if !s.apiAllowed(w, r) {
		return
	}
	res, err := s.restore(r, r.PathValue("id"), "api token")
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// restore recreates the index a removal dropped, as who (how) from where.
func (s *Server) restore(r *http.Request, id, how string) (executor.RestoreResult, error) {
	if len(id) < 4 || !isHexID(id) {
		return executor.RestoreResult{}, badRequest{"the id is a removal id or a prefix of at least 4 characters"}
	}
	res, err := decisions.Restore(r.Context(), s.cfg, s.pool, id, actor(r, how))
	if err != nil {
		return res, err
	}
	s.log.Info("dashboard restore", "removal", res.RemovalID, "index", res.IndexName, "actor", actor(r, how))
	return res, nil
}
