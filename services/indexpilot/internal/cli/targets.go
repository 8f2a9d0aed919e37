package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/collector/appstats"
)

// reloadCmd asks running collectors to re-read their configuration. It
// validates this process's view of the configuration first, so that a
// broken file is reported here rather than only in the collector's log.
func reloadCmd(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	if err := noArgs("reload", args); err != nil {
		return err
	}
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := collector.RequestReload(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reload requested: running collectors re-read their configuration within %s (%d targets in this configuration)\n",
		cfg.Collector.ReloadCheckInterval, len(cfg.Targets))
	return nil
}

// targetFlag parses "--target NAME" for cmd and returns the configured
// target.
func targetFlag(cmd string, cfg config.Config, name string) (config.Target, error) {
	t, ok := cfg.Target(name)
	if !ok {
		return config.Target{}, fmt.Errorf("%s: no target named %q in the configuration", cmd, name)
	}
	return t, nil
}

// initTarget creates indexpilot.query_stats and its publication in a
// target (`indexpilot init --target NAME`).
func initTarget(ctx context.Context, cfg config.Config, name string, stdout io.Writer) error {
	t, err := targetFlag("init", cfg, name)
	if err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, t.DSN, "cli")
	if err != nil {
		return fmt.Errorf("target %s: %w", name, err)
	}
	defer pool.Close()
	logical, err := appstats.Install(ctx, pool)
	if err != nil {
		return fmt.Errorf("target %s: %w", name, err)
	}
	fmt.Fprintf(stdout, "target %s: indexpilot.query_stats and publication %s are ready\n", name, appstats.Publication)
	if logical {
		fmt.Fprintf(stdout, "target %s: wal_level is logical: the collector will stream the table by logical replication\n", name)
	} else {
		fmt.Fprintf(stdout, "target %s: wal_level is not logical: the collector will poll the table instead of streaming it (set wal_level = logical and restart the server to stream)\n", name)
	}
	return nil
}

// uninstallCmd drops a target's replication slot and publication
// (`indexpilot uninstall --target NAME`).
func uninstallCmd(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("uninstall", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("target", "", "target whose replication slot and publication to drop")
	if err := fs.Parse(args); err != nil {
		return usageError{"uninstall: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("uninstall: unexpected argument %q", fs.Arg(0))}
	}
	if *name == "" {
		return usageError{"uninstall: --target NAME is required"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	t, err := targetFlag("uninstall", cfg, *name)
	if err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, t.DSN, "cli")
	if err != nil {
		return fmt.Errorf("target %s: %w", *name, err)
	}
	defer pool.Close()
	dropped, err := appstats.Uninstall(ctx, pool, *name)
	if err != nil {
		return fmt.Errorf("target %s: %w", *name, err)
	}
	what := "no replication slot existed"
	if dropped {
		what = "replication slot dropped"
	}
	fmt.Fprintf(stdout, "target %s: %s; publication %s dropped; indexpilot.query_stats kept\n", *name, what, appstats.Publication)
	return nil
}

// printCollectorHealth writes the collector's per-target health: whether
// the last poll worked, when it was, the lag behind the interval and how
// app-fed statistics are read.
func printCollectorHealth(ctx context.Context, pool *pgxpool.Pool, cfg config.Config, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tHEALTH\tLAST POLL\tLAG\tPOLL DB TIME\tAPP STATS\tLAST ERROR")
	now := time.Now()
	for _, t := range cfg.Targets {
		var (
			healthy          bool
			lastPoll, lastOK *time.Time
			lastErr, mode    string
			failures         int
			intervalMs       int64
			dbMs             float64
			lagBytes         *int64
		)
		err := pool.QueryRow(ctx, `/* indexpilot:cli */
select healthy, last_poll_at, last_success_at, last_error, consecutive_failures, interval_ms, poll_db_ms,
       app_stats_mode, app_stats_lag_bytes
  from indexpilot.collector_targets where target = $1`, t.Name).
			Scan(&healthy, &lastPoll, &lastOK, &lastErr, &failures, &intervalMs, &dbMs, &mode, &lagBytes)
		if errors.Is(err, pgx.ErrNoRows) {
			fmt.Fprintf(tw, "%s\tunknown\tnever\t-\t-\t-\tno collector has polled it yet\n", t.Name)
			continue
		}
		if postgres.SQLState(err) == "42P01" {
			fmt.Fprintln(w, "collector health is not recorded yet: run indexpilot init to upgrade the schema")
			return nil
		}
		if err != nil {
			return fmt.Errorf("collector health of %s: %w", t.Name, err)
		}
		health := "ok"
		if !healthy {
			health = fmt.Sprintf("failing (%d in a row)", failures)
		}
		lp := "never"
		if lastPoll != nil {
			lp = lastPoll.UTC().Format(time.RFC3339)
		}
		// Lag: how far the last successful poll is behind the expected
		// rhythm (0 while polls come on time).
		lag := "-"
		if lastOK != nil {
			behind := now.Sub(*lastOK) - time.Duration(intervalMs)*time.Millisecond
			lag = max(behind, 0).Truncate(time.Second).String()
		}
		if mode == "" {
			mode = "-"
		}
		if lagBytes != nil {
			mode = fmt.Sprintf("%s (%s behind)", mode, humanBytes(*lagBytes))
		}
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f ms\t%s\t%s\n", t.Name, health, lp, lag, dbMs, mode, shorten(lastErr, 80))
	}
	return tw.Flush()
}
