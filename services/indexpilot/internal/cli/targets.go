package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/collector/appstats"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// reloadCmd asks running collectors to re-read their configuration. It
// validates this process's view of the configuration first, so that a
// broken file is reported here rather than only in the collector's log.
func reloadCmd(ctx context.Context, load func() (config.Config, error), stdout io.Writer) error {
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
func uninstallCmd(ctx context.Context, load func() (config.Config, error), target string, stdout io.Writer) error {
	name := &target
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
	hs, err := decisions.CollectorHealths(ctx, pool, cfg, time.Now())
	if errors.Is(err, decisions.ErrNoCollectorTable) {
		fmt.Fprintln(w, err.Error())
		return nil
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tHEALTH\tLAST POLL\tLAG\tPOLL DB TIME\tAPP STATS\tLAST ERROR")
	for i, t := range cfg.Targets {
		h := hs[i]
		if h == nil {
			fmt.Fprintf(tw, "%s\tunknown\tnever\t-\t-\t-\tno collector has polled it yet\n", t.Name)
			continue
		}
		health := "ok"
		if !h.Healthy {
			health = fmt.Sprintf("failing (%d in a row)", h.ConsecutiveFailures)
		}
		lp := "never"
		if h.LastPollAt != nil {
			lp = h.LastPollAt.UTC().Format(time.RFC3339)
		}
		lag := "-"
		if h.LastSuccessAt != nil {
			lag = (time.Duration(h.LagMs) * time.Millisecond).Truncate(time.Second).String()
		}
		mode := h.AppStatsMode
		if mode == "" {
			mode = "-"
		}
		if h.AppStatsLagBytes != nil {
			mode = fmt.Sprintf("%s (%s behind)", mode, humanBytes(*h.AppStatsLagBytes))
		}
		lastErr := h.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f ms\t%s\t%s\n", t.Name, health, lp, lag, h.PollDBMs, mode, shorten(lastErr, 80))
	}
	return tw.Flush()
}
