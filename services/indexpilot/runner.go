// Package indexpilot composes the four stages into the all-in-one process:
// one control pool, one bus (the in-process one by default) and the stages
// as goroutines, started consumers first so that nothing published is lost.
package indexpilot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// Stages lists the stages in the order the all-in-one process starts them:
// consumers before producers.
var Stages = []struct {
	Name  string
	Start stage.StartFunc
}{
	{"executor", executor.Start},
	{"gatekeeper", gatekeeper.Start},
	{"scorer", scorer.Start},
	{"collector", collector.Start},
}

// Options tune RunAll.
type Options struct {
	// Ready, when set, is called once every stage is running.
	Ready func()
	// Handlers are served next to /healthz and /readyz on adapters.listen
	// (the CLI adds /metrics).
	Handlers map[string]http.Handler
	// Serve, when set, is started once the control schema is migrated,
	// with the control pool; the function it returns stops it. The CLI
	// starts the dashboard with it (dashboard.listen).
	Serve func(ctx context.Context, control *pgxpool.Pool) (stop func(), err error)
}

// RunAll runs every stage in this process until ctx ends or a stage fails.
// It applies the control schema's migrations first (idempotent), unless
// the startup bypass (features.bypass.startup) is set.
func RunAll(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) error {
	b, err := bus.New(cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	postgres.Configure(cfg.Connections, logger)
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, "indexpilot")
	if err != nil {
		return fmt.Errorf("control database: %w", err)
	}
	defer pool.Close()
	// The startup bypass: run without touching the metadata schema (no
	// migration; the stages then read no bypass_state either).
	if bypass.NewState(cfg.Features.Bypass, nil).StartupBypassed() {
		logger.Warn("startup bypass set: the metadata schema is not migrated")
	} else if _, err := metadata.Migrate(ctx, pool); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var health *stage.Health
	if cfg.Adapters.Listen != "" {
		health = stage.NewHealth(pool)
		srv, err := stage.Serve(ctx, cfg.Adapters.Listen, health.Mux(opts.Handlers), logger)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if opts.Serve != nil {
		stop, err := opts.Serve(ctx, pool)
		if err != nil {
			return err
		}
		defer stop()
	}
	type named = struct {
		Name  string
		Start stage.StartFunc
	}
	list := Stages
	if cfg.Adapters.Enabled() {
		// The monitoring consumers start first, like every consumer.
		list = append([]named{{adapters.Name, adapters.Start}}, Stages...)
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(list))
	for _, s := range list {
		ready := make(chan struct{})
		var once sync.Once
		targets := stage.NewTargets(cfg.Targets, s.Name)
		d := stage.Deps{
			Config: cfg, Bus: b, Control: pool, Targets: targets,
			Logger:  logger.With("stage", s.Name),
			OnReady: func() { once.Do(func() { close(ready) }) },
		}
		wg.Add(1)
		go func(name string, start stage.StartFunc) {
			defer wg.Done()
			defer targets.Close()
			if err := stage.Launch(ctx, name, start, d); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}(s.Name, s.Start)
		select {
		case <-ready:
		case err := <-errs:
			cancel()
			wg.Wait()
			return err
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-time.After(time.Minute):
			cancel()
			wg.Wait()
			return fmt.Errorf("stage %s did not start within a minute", s.Name)
		}
	}
	if health != nil {
		health.SetReady(true)
	}
	logger.Info("all stages running", "transport", b.Transport(), "mode", cfg.Features.AutoIndexer.Mode, "targets", len(cfg.Targets))
	if opts.Ready != nil {
		opts.Ready()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
