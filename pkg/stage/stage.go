// Package stage is what the four stages share at run time: their
// dependencies, opened once by Open for a stage on its own or by the
// all-in-one runner for all of them, and the target registry.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Deps is what a stage's Start needs. Every field is required except
// OnReady and Now.
type Deps struct {
	Config  config.Config
	Bus     *bus.Bus
	Control *pgxpool.Pool
	Targets *Targets
	Logger  *slog.Logger
	// OnReady, when set, is called once the stage consumes its topics (or,
	// for a producer, is about to produce). The all-in-one runner starts
	// producers only after consumers are ready, since the memory bus keeps
	// nothing for absent subscribers.
	OnReady func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Check rejects missing dependencies.
func (d Deps) Check() error {
	switch {
	case d.Bus == nil:
		return errors.New("stage deps: nil bus")
	case d.Control == nil:
		return errors.New("stage deps: nil control pool")
	case d.Targets == nil:
		return errors.New("stage deps: nil targets")
	case d.Logger == nil:
		return errors.New("stage deps: nil logger")
	}
	return nil
}

// Clock returns d.Now or time.Now.
func (d Deps) Clock() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Ready calls OnReady if set.
func (d Deps) Ready() {
	if d.OnReady != nil {
		d.OnReady()
	}
}

// Open builds the dependencies of one stage from cfg: logger, bus and the
// control pool. close releases them.
func Open(ctx context.Context, cfg config.Config, name string) (Deps, func(), error) {
	logger := telemetry.NewLogger(cfg.Log, os.Stderr, name)
	postgres.Configure(cfg.Connections, logger)
	b, err := bus.New(cfg.Bus, logger)
	if err != nil {
		return Deps{}, nil, err
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, name)
	if err != nil {
		_ = b.Close()
		return Deps{}, nil, fmt.Errorf("control database: %w", err)
	}
	targets := NewTargets(cfg.Targets, name)
	closeFn := func() {
		targets.Close()
		pool.Close()
		_ = b.Close()
	}
	return Deps{Config: cfg, Bus: b, Control: pool, Targets: targets, Logger: logger}, closeFn, nil
}

// Targets opens and caches one pool per target, lazily, so that an
// unreachable target costs nothing until it is used and never blocks the
// others. The pools come from the process's server registry
// (postgres.Servers): they hold connections only within the budget of
// their server (connections.per_server), shared with every other target
// and stage of the process on that server, and none while idle.
type Targets struct {
	mu    sync.Mutex
	stage string
	list  []config.Target
	pools map[string]*pgxpool.Pool
}

// NewTargets registers the targets; stage names the application_name.
func NewTargets(list []config.Target, stage string) *Targets {
	return &Targets{stage: stage, list: append([]config.Target(nil), list...), pools: map[string]*pgxpool.Pool{}}
}

// Names lists the target names in config order.
func (t *Targets) Names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, len(t.list))
	for i, x := range t.list {
		out[i] = x.Name
	}
	return out
}

// ErrUnknownTarget is returned by Pool for a name not in the config.
var ErrUnknownTarget = errors.New("unknown target")

// Pool returns the pool of target name, connecting on first use.
func (t *Targets) Pool(ctx context.Context, name string) (*pgxpool.Pool, error) {
	t.mu.Lock()
	if p, ok := t.pools[name]; ok {
		t.mu.Unlock()
		return p, nil
	}
	var dsn string
	for _, x := range t.list {
		if x.Name == name {
			dsn = x.DSN
		}
	}
	t.mu.Unlock()
	if dsn == "" {
		return nil, fmt.Errorf("%w %q", ErrUnknownTarget, name)
	}
	p, err := postgres.Servers().Open(ctx, dsn, t.stage)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.pools[name]; ok {
		postgres.Servers().Close(p)
		return old, nil
	}
	t.pools[name] = p
	return p, nil
}

// Close closes every pool opened.
func (t *Targets) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n, p := range t.pools {
		postgres.Servers().Close(p)
		delete(t.pools, n)
	}
}

// StartFunc is a stage's Start.
type StartFunc func(ctx context.Context, d Deps) error

// Run opens the dependencies of stage name from cfg, runs start on them
// until ctx ends and releases them. Every stage's Run is this. When
// adapters.listen is set it also serves /healthz and /readyz there.
func Run(ctx context.Context, cfg config.Config, name string, start StartFunc) error {
	return RunWith(ctx, cfg, name, start, RunOptions{})
}

// RunOptions add to what Run does.
type RunOptions struct {
	// Handlers are served next to /healthz and /readyz on adapters.listen
	// (e.g. "/metrics").
	Handlers map[string]http.Handler
	// Listening, when set, is called with the listener's address once it
	// is bound.
	Listening func(net.Addr)
}

// RunWith is Run with options.
func RunWith(ctx context.Context, cfg config.Config, name string, start StartFunc, opts RunOptions) error {
	d, closeFn, err := Open(ctx, cfg, name)
	if err != nil {
		return err
	}
	defer closeFn()
	if cfg.Adapters.Listen != "" {
		h := NewHealth(d.Control)
		srv, err := Serve(ctx, cfg.Adapters.Listen, h.Mux(opts.Handlers), d.Logger)
		if err != nil {
			return err
		}
		defer srv.Close()
		if opts.Listening != nil {
			opts.Listening(srv.Addr())
		}
		prev := d.OnReady
		d.OnReady = func() {
			h.SetReady(true)
			if prev != nil {
				prev()
			}
		}
	}
	return Launch(ctx, name, start, d)
}

// RunTelemetry is RunWith for a process that runs stage name on its own:
// it first installs the process's OpenTelemetry SDK (telemetry.Setup, the
// one every IndexPilot process uses: a Prometheus reader, plus OTLP/HTTP
// metrics and traces when adapters.otlp says so), serves /metrics next to
// /healthz and /readyz on adapters.listen, and flushes the SDK on return.
// The SDK is installed before the bus is opened, so the bus's and the
// stage's own instruments record into it.
func RunTelemetry(ctx context.Context, cfg config.Config, name string, start StartFunc, opts RunOptions) error {
	sdk, err := telemetry.Setup(ctx, cfg, name, telemetry.SetupOptions{})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sdk.Shutdown(sctx)
	}()
	handlers := map[string]http.Handler{"/metrics": sdk.MetricsHandler()}
	for path, h := range opts.Handlers {
		handlers[path] = h
	}
	opts.Handlers = handlers
	return RunWith(ctx, cfg, name, start, opts)
}

// Main is the whole of a stage binary's main: it loads the configuration
// (INDEXPILOT_CONFIG, else indexpilot_config.yaml if present, then the
// environment), runs the stage with its telemetry (RunTelemetry: /metrics
// on adapters.listen, OTLP metrics and spans when adapters.otlp is on)
// until SIGINT or SIGTERM and returns the exit code, printing any error as
// one line.
func Main(name string, start StartFunc) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(os.Getenv("INDEXPILOT_CONFIG"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 2
	}
	if err := RunTelemetry(ctx, cfg, name, start, RunOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}
