package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Health is one process's liveness and readiness, served as /healthz and
// /readyz. Liveness is the process answering; readiness is the stage (or
// every stage of the all-in-one process) consuming its topics and the
// control database answering a ping.
type Health struct {
	ready   atomic.Bool
	control *pgxpool.Pool
}

// NewHealth returns a Health that is not ready yet. control may be nil (no
// database check).
func NewHealth(control *pgxpool.Pool) *Health { return &Health{control: control} }

// SetReady marks the process ready (or not).
func (h *Health) SetReady(ok bool) { h.ready.Store(ok) }

// Ready reports whether the process is ready, and why not.
func (h *Health) Ready(ctx context.Context) (bool, string) {
	if !h.ready.Load() {
		return false, "starting"
	}
	if h.control != nil {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := h.control.Ping(ctx); err != nil {
			return false, "control database unreachable"
		}
	}
	return true, ""
}

// Mux serves /healthz and /readyz, plus extra (path → handler, e.g.
// "/metrics").
func (h *Health) Mux(extra map[string]http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := h.Ready(r.Context()); !ok {
			writeStatus(w, http.StatusServiceUnavailable, "not ready", why)
			return
		}
		writeStatus(w, http.StatusOK, "ready", "")
	})
	for path, handler := range extra {
		mux.Handle(path, handler)
	}
	return mux
}

func writeStatus(w http.ResponseWriter, code int, status, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]string{"status": status}
	if reason != "" {
		body["reason"] = reason
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Server is a running HTTP listener.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Serve listens on addr (bound before it returns, so a port in use is an
// error here) and serves handler until ctx ends or Close is called.
func Serve(ctx context.Context, addr string, handler http.Handler, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second},
		addr: ln.Addr(),
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil && logger != nil {
			logger.Error("http listener stopped", "addr", s.addr.String(), "error", err.Error())
		}
		s.done <- err
	}()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	if logger != nil {
		logger.Info("http listener started", "addr", s.addr.String())
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server (in-flight requests get a few seconds).
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
