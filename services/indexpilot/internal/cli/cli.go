// Package cli is the indexpilot command line. Main returns the exit code:
// 0 on success, 1 when the command failed, 2 on a usage error. Every error
// is one line on stderr.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

const usage = `usage: indexpilot [--config FILE] <command> [flags]

commands:
  run               run all four stages in one process (the embedded default)
  init              create or upgrade the indexpilot schema in the control database
                    (--target NAME: create indexpilot.query_stats and its publication in a target)
  reload            make running collectors re-read their configuration (targets)
  uninstall         --target NAME: drop a target's replication slot and publication
  demo              build a demo database, show advisory recommendations, then apply them
  recommendations   list recommendations (--json, --state, --target)
  status            summary of recommendations, builds and workload per target
  report            what was recommended, built, validated (before/after), reverted, removed (--json, --target, --since)
  restore           recreate an index the executor removed: restore <removal-id>
  archive           move mutation_log rows older than --older-than (720h, 90d) to mutation_log_archive (--dry-run)
  bypass            show or set the 4-level bypass and the emergency stop (bypass show|set|stop|resume)
  approve|reject    approve or reject a recommendation by id (reject needs --reason)
  check-config      validate the configuration and print it with secrets redacted
  replay            re-score the retained workload (--since, --formula, --json, --emit)
  collector|scorer|gatekeeper|executor
                    run one stage on its own (use bus.transport: kafka)
  adapters          run the monitoring adapters on their own (Prometheus /metrics, DogStatsD, OTLP)

The configuration is indexpilot_config.yaml (or --config / INDEXPILOT_CONFIG),
then INDEXPILOT_* environment variables; INDEXPILOT_DATABASE_URL is the control
database.
`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs the command in args.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "indexpilot:", oneLine(err))
		fmt.Fprint(stderr, usage)
		return 2
	default:
		fmt.Fprintln(stderr, "indexpilot:", oneLine(err))
		return 1
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	global := flag.NewFlagSet("indexpilot", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	cfgPath := global.String("config", os.Getenv("INDEXPILOT_CONFIG"), "config file")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return err
		}
		return usageError{err.Error()}
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usageError{"no command given"}
	}
	cmd, cargs := rest[0], rest[1:]
	load := func() (config.Config, error) { return config.Load(*cfgPath, nil) }
	ctx = collector.WithConfigLoader(ctx, load)
	if cfg, err := load(); err == nil {
		// The configured mutation_logging switch, for the rows the CLI writes.
		ctx = stage.WithConfiguredLogging(ctx, cfg)
	}

	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "check-config":
		return checkConfig(load, cargs, stdout)
	case "init":
		return initCmd(ctx, load, cargs, stdout)
	case "run":
		return runAll(ctx, load, cargs, stderr)
	case "recommendations", "recs":
		return recommendations(ctx, load, cargs, stdout)
	case "status":
		return status(ctx, load, cargs, stdout)
	case "report":
		return reportCmd(ctx, load, cargs, stdout)
	case "restore":
		return restoreCmd(ctx, load, cargs, stdout)
	case "archive":
		return archiveCmd(ctx, load, cargs, stdout)
	case "bypass":
		return bypassCmd(ctx, load, cargs, stdout)
	case "approve", "reject":
		return approveCmd(ctx, load, cmd, cargs, stdout)
	case "reload":
		return reloadCmd(ctx, load, cargs, stdout)
	case "uninstall":
		return uninstallCmd(ctx, load, cargs, stdout)
	case "demo":
		return demoCmd(ctx, *cfgPath, cargs, stdout, stderr)
	case "replay":
		return replay(ctx, load, cargs, stdout, stderr)
	case "collector", "scorer", "gatekeeper", "executor", "adapters":
		if err := noArgs(cmd, cargs); err != nil {
			return err
		}
		cfg, err := load()
		if err != nil {
			return err
		}
		return runStage(ctx, cfg, cmd)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func noArgs(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{cmd + ": " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(0))}
	}
	return nil
}

func checkConfig(load func() (config.Config, error), args []string, stdout io.Writer) error {
	if err := noArgs("check-config", args); err != nil {
		return err
	}
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

func runAll(ctx context.Context, load func() (config.Config, error), args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mode := fs.String("mode", "", "override features.auto_indexer.mode (advisory or apply)")
	if err := fs.Parse(args); err != nil {
		return usageError{"run: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("run: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *mode != "" {
		cfg.Features.AutoIndexer.Mode = *mode
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
	return indexpilot.RunAll(ctx, cfg, logger, indexpilot.Options{
		Handlers: map[string]http.Handler{"/metrics": tel.MetricsHandler()},
	})
}
