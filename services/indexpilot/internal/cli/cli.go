// Package cli is the indexpilot command line. Main returns the exit code:
// 0 on success (and for help), 1 when the command failed, 2 on a usage
// error. Every error is one line on stderr.
//
// The commands are a cobra tree (commands.go): each command declares its
// purpose, flags and an example once, and `COMMAND --help`, `-h`,
// `indexpilot help COMMAND` and the shell completion all come from that.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/indexpilot"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/dashboard"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
	"github.com/jackc/pgx/v5/pgxpool"
)

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// app is what every command shares: the context, the output and the
// global --config flag.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer
	cfgPath        string
}

// configPath is --config, else INDEXPILOT_CONFIG (else config.Load looks
// for indexpilot_config.yaml).
func (a *app) configPath() string {
	if a.cfgPath != "" {
		return a.cfgPath
	}
	return os.Getenv("INDEXPILOT_CONFIG")
}

// load reads the configuration: the file, then INDEXPILOT_* variables.
func (a *app) load() (config.Config, error) { return config.Load(a.configPath(), nil) }

// prepare runs before every command (not for help): the collector's
// configuration loader and the configured mutation_logging switch for the
// rows the CLI writes.
func (a *app) prepare() {
	a.ctx = collector.WithConfigLoader(a.ctx, a.load)
	if cfg, err := a.load(); err == nil {
		a.ctx = stage.WithConfiguredLogging(a.ctx, cfg)
	}
}

// Main runs the command in args.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr}
	root := newRoot(a)
	root.SetArgs(longFlags(root, args))
	err := root.ExecuteContext(ctx)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "indexpilot:", oneLine(err))
		return 2
	default:
		fmt.Fprintln(stderr, "indexpilot:", oneLine(err))
		return 1
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func checkConfig(load func() (config.Config, error), stdout io.Writer) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	b, err := cfg.Redacted().YAML()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "# configuration is valid; effective settings (secrets redacted):")
	_, err = stdout.Write(b)
	return err
}

func runAll(ctx context.Context, load func() (config.Config, error), mode string, stderr io.Writer) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	if mode != "" {
		cfg.Features.AutoIndexer.Mode = mode
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	logger := telemetry.NewLogger(cfg.Log, stderr, "")
	tel, err := adapters.Setup(ctx, cfg, "indexpilot", adapters.SetupOptions{})
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel)
	opts := indexpilot.Options{Handlers: map[string]http.Handler{"/metrics": tel.MetricsHandler()}}
	if cfg.Dashboard.Listen != "" {
		opts.Serve = func(ctx context.Context, pool *pgxpool.Pool) (func(), error) {
			srv, err := dashboard.Serve(ctx, dashboard.Options{Config: cfg, Control: pool, Logger: logger.With("stage", "dashboard"),
				States: stateNames()})
			if err != nil {
				return nil, err
			}
			return srv.Close, nil
		}
	}
	return indexpilot.RunAll(ctx, cfg, logger, opts)
}

// dashboardCmd is `indexpilot dashboard`: the dashboard and its API on
// their own, reading the control database (the distributed shape).
func dashboardCmd(ctx context.Context, load func() (config.Config, error), listen string, stderr io.Writer) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	if listen != "" {
		cfg.Dashboard.Listen = listen
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	logger := telemetry.NewLogger(cfg.Log, stderr, "dashboard")
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, "dashboard")
	if err != nil {
		return fmt.Errorf("control database: %w", err)
	}
	defer pool.Close()
	if err := decisions.CheckSchema(ctx, pool); err != nil {
		return err
	}
	srv, err := dashboard.Serve(ctx, dashboard.Options{Config: cfg, Control: pool, Logger: logger, States: stateNames()})
	if err != nil {
		return err
	}
	<-ctx.Done()
	srv.Close()
	return nil
}
