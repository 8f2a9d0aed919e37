// Package dashboard is IndexPilot's web dashboard and its JSON API
// (/api/v1/). It reads the control database through package decisions, the
// same structs and queries as the CLI's --json output, and acts through
// the same code as the CLI (gatekeeper approve/reject, bypass.Set).
//
// Pages are rendered on the server (html/template, SVG charts) and need no
// JavaScript to read; the assets are embedded in the binary. Changes need
// the bearer token of dashboard.token: API calls send it in an
// Authorization header, a browser signs in once with it and then posts
// CSRF-protected forms. With no token configured everything is read-only.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options are what the server needs.
type Options struct {
	Config  config.Config
	Control *pgxpool.Pool
	Logger  *slog.Logger
	// States are the recommendation states the filters offer.
	States []string
	// Now is the clock (nil means time.Now).
	Now func() time.Time
}

// Server serves the pages and the API.
type Server struct {
	cfg    config.Config
	pool   *pgxpool.Pool
	log    *slog.Logger
	states []string
	now    func() time.Time
	auth   auth
	pages  map[string]*template.Template
	mux    *http.ServeMux
}

// New builds the server; it rejects a missing pool or logger.
func New(o Options) (*Server, error) {
	if o.Control == nil || o.Logger == nil {
		return nil, errors.New("dashboard: a control pool and a logger are required")
	}
	s := &Server{cfg: o.Config, pool: o.Control, log: o.Logger, states: o.States, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if o.Config.Dashboard.Token != "" {
		s.auth.key = []byte(o.Config.Dashboard.Token)
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	m.HandleFunc("GET /readyz", s.ready)
	m.HandleFunc("GET /{$}", s.overviewPage)
	m.HandleFunc("GET /recommendations", s.recommendationsPage)
	m.HandleFunc("GET /recommendations/{id}", s.recommendationPage)
	m.HandleFunc("GET /history", s.historyPage)
	m.HandleFunc("GET /effect", s.effectPage)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.logout)
	m.HandleFunc("POST /recommendations/{id}/{verb}", s.decideForm)
	m.HandleFunc("POST /bypass", s.bypassForm)
	m.HandleFunc("POST /removals/{id}/restore", s.restoreForm)

	m.HandleFunc("GET /api/v1/recommendations", s.apiRecommendations)
	m.HandleFunc("GET /api/v1/recommendations/{id}", s.apiRecommendation)
	m.HandleFunc("GET /api/v1/targets", s.apiTargets)
	m.HandleFunc("GET /api/v1/bypass", s.apiBypass)
	m.HandleFunc("GET /api/v1/history", s.apiHistory)
	m.HandleFunc("GET /api/v1/report", s.apiReport)
	m.HandleFunc("GET /api/v1/session", s.apiSession)
	m.HandleFunc("POST /api/v1/recommendations/{id}/{verb}", s.apiDecide)
	m.HandleFunc("POST /api/v1/removals/{id}/restore", s.apiRestore)
	m.HandleFunc("POST /api/v1/bypass", s.apiBypassSet)
	m.HandleFunc("POST /api/v1/bypass/{verb}", s.apiBypassSet)
	s.mux = m
}

// Serve listens on cfg.Dashboard.Address() (loopback unless a host is
// named) and serves until ctx ends.
func Serve(ctx context.Context, o Options) (*stage.Server, error) {
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	srv, err := stage.Serve(ctx, o.Config.Dashboard.Address(), s, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	mode := "read-only (no dashboard.token)"
	if !s.auth.readOnly() {
		mode = "changes need the token"
	}
	o.Logger.Info("dashboard serving", "url", "http://"+srv.Addr().String()+"/", "mode", mode)
	return srv, nil
}

// writeJSON writes v as indented JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError is the body of every API error.
type apiError struct {
	Error string `json:"error"`
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, code, apiError{Error: msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// internal logs err (which carries no secret: the queries' errors name no
// DSN) and answers 500 without details.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	s.fail(w, r, http.StatusInternalServerError, "internal error: see the server's log")
}

// ready answers 200 while the control database answers, 503 otherwise
// (a probe behind a load balancer or Kubernetes).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if err := s.pool.Ping(r.Context()); err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "control database unreachable")
		return
	}
	fmt.Fprintln(w, "ready")
}
