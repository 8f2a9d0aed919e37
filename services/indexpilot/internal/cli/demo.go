package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/indexpilot"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// demoDatabase is the database the demo creates and replaces.
const demoDatabase = "indexpilot_demo"

// demoSeed fixes the workload's arguments so that before and after run the
// very same queries.
const demoSeed = 20261125

// demoCPUWait bounds how long the apply phase waits for builds the CPU
// throttle deferred.
const demoCPUWait = 150 * time.Second

// On the demo's own cluster IndexPilot connects as demoRole, the
// least-privilege role setup-role creates; the demo tables belong to
// demoOwner, the application's role, which demoRole joins (--owner).
const (
	demoRole  = "indexpilot"
	demoOwner = "app_owner"
)

// demoOptions are the flags of `indexpilot demo`.
type demoOptions struct {
	keep, verbose bool
	rows          string
	per           int

	// For tests: dir is the throwaway cluster's directory (default
	// <tmp>/indexpilot-demo); started is called once it runs.
	dir     string
	started func(*demo.Cluster)
}

func demoCmd(ctx context.Context, cfgPath string, o demoOptions, stdout, stderr io.Writer) error {
	o.keep = o.keep || os.Getenv("INDEXPILOT_DEMO_KEEP") != ""
	keep, rows, per, verbose := &o.keep, &o.rows, &o.per, &o.verbose
	scale := demo.DefaultScale
	switch *rows {
	case "default":
	case "small":
		scale = demo.SmallScale
	default:
		return usageError{fmt.Sprintf("demo: --rows %q is not small or default", *rows)}
	}
	if *per < 10 {
		return usageError{"demo: --per-statement must be at least 10"}
	}
	step := func(f string, a ...any) { fmt.Fprintf(stdout, "\n==> "+f+"\n", a...) }

	// 1. A server: the one INDEXPILOT_DATABASE_URL names (left configured
	// as it is), or a throwaway cluster of our own.
	adminURL := os.Getenv("INDEXPILOT_DATABASE_URL")
	var cluster *demo.Cluster
	if adminURL == "" {
		dir := o.dir
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "indexpilot-demo")
		}
		step("starting a throwaway PostgreSQL cluster in %s", dir)
		var err error
		cluster, err = demo.StartCluster(ctx, dir, stdout)
		if err != nil {
			return err
		}
		if o.started != nil {
			o.started(cluster)
		}
		if *keep {
			cluster.KeepDir = true
			fmt.Fprintf(stdout, "--keep: the cluster stays up after the demo: psql %q\n", cluster.URL(demoDatabase))
		} else {
			defer func() {
				if err := cluster.Stop(context.Background()); err != nil {
					fmt.Fprintln(stderr, "indexpilot: stop demo cluster:", oneLine(err))
				}
			}()
		}
		adminURL = cluster.URL("postgres")
	} else {
		step("using the server INDEXPILOT_DATABASE_URL names (its configuration is not changed)")
	}
	dbURL, err := demo.CreateDatabase(ctx, adminURL, demoDatabase)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return errors.New("connect to the demo database: invalid connection string")
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "/* indexpilot:demo */ drop schema if exists indexpilot cascade"); err != nil {
		return fmt.Errorf("reset the demo's indexpilot schema: %w", err)
	}

	step("loading the demo schema (%d tenants, %d organizations, %d contacts, %d interactions; primary keys only)",
		scale.Tenants, scale.Organizations, scale.Contacts, scale.Interactions)
	if err := demo.LoadSchema(ctx, pool, scale, stdout); err != nil {
		return err
	}
	stmts := demo.Workload(scale)

	// IndexPilot's own connections (target and control database): on the
	// demo's cluster, the least-privilege role, made by setup-role's own
	// code; on a server of yours, the URL's role (the demo creates no
	// role there).
	ipURL := dbURL
	if cluster != nil {
		step("least privilege: IndexPilot connects as role %s, created as `indexpilot setup-role --owner %s --control-schema` does; the demo tables belong to %s (the application)",
			demoRole, demoOwner, demoOwner)
		if err := demo.OwnTables(ctx, pool, demoOwner); err != nil {
			return err
		}
		ro, roleStmts, err := planSetupRole(cfgPath, setupRoleOptions{url: dbURL, role: demoRole, owners: []string{demoOwner},
			schemas: []string{"public"}, control: true}, false)
		if err != nil {
			return err
		}
		if _, err := applySetupRole(ctx, ro, roleStmts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "    role %s: login, not a superuser, pg_monitor, connection limit %d, member of %s, SELECT on public, owner of schema indexpilot\n",
			demoRole, ro.connLimit, demoOwner)
		ipURL = cluster.URLAs(demoRole, demoDatabase)
	}

	step("measuring the workload before any index: %d runs of each of %d statements", *per, len(stmts))
	before, err := demo.Measure(ctx, pool, stmts, *per, demoSeed)
	if err != nil {
		return err
	}

	cfg, err := config.Load(cfgPath, append(os.Environ(), "INDEXPILOT_DATABASE_URL="+dbURL))
	if err != nil {
		return err
	}
	cfg.DatabaseURL = ipURL
	cfg.Targets = []config.Target{{Name: "demo", DSN: ipURL}}
	cfg.Bus = config.Bus{Transport: config.TransportMemory}
	cfg.Collector.Interval = time.Second
	cfg.Scorer.Interval = time.Second
	cfg.Executor.PollInterval = 250 * time.Millisecond
	// The demo database is a few tens of MB, so the default budgets (10 %
	// of the database) would cut the set short; a real database is not.
	cfg.Scorer.StorageBudgetMB = 512
	cfg.Gatekeeper.Storage.MaxMB = 512
	cfg.Gatekeeper.Storage.MaxPctOfDatabase = 0
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	logger := telemetry.NewLogger(config.Log{Level: "info", Format: "text"}, logOut, "")

	// 2. Advisory.
	step("phase 1: the pipeline in advisory mode (records recommendations, builds nothing); storage budget %d MB for this small database", cfg.Scorer.StorageBudgetMB)
	cfg.Features.AutoIndexer.Mode = config.ModeAdvisory
	if err := demoPhase(ctx, cfg, logger, pool, stmts, *per, stdout, func(ctx context.Context) (bool, string, error) {
		var n int
		err := pool.QueryRow(ctx, "/* indexpilot:demo */ select count(*) from indexpilot.recommendations").Scan(&n)
		return n > 0, fmt.Sprintf("%d recommendations", n), err
	}); err != nil {
		return err
	}
	recs, err := ListRecommendations(ctx, pool, "", "")
	if err != nil {
		return err
	}
	step("advisory recommendations, with the planner's evidence")
	PrintRecommendations(stdout, recs, true)
	if len(recs) == 0 {
		return errors.New("demo: the pipeline made no recommendation")
	}

	// 3. Apply. The CPU throttle (gatekeeper.cpu, on by default) defers
	// builds while the database host is busy, as it is while the workload
	// runs; those recommendations are built once CPU stays below the
	// threshold for the cooldown, so the demo waits for them, within
	// demoCPUWait.
	step("phase 2: the pipeline in apply mode (builds the recommendations with CREATE INDEX CONCURRENTLY; CPU throttle: %s, %.0f%%, cooldown %s)",
		cfg.Gatekeeper.CPU.Source, cfg.Gatekeeper.CPU.ThresholdPct, cfg.Gatekeeper.CPU.Cooldown)
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	var cpuSince time.Time
	var stillDeferred int
	if err := demoPhase(ctx, cfg, logger, pool, stmts, *per, stdout, func(ctx context.Context) (bool, string, error) {
		if cpuSince.IsZero() {
			cpuSince = time.Now()
		}
		var open, deferred, applied, failed int
		var why string
		err := pool.QueryRow(ctx, `/* indexpilot:demo */
select count(*) filter (where state in ('proposed','approved','building')),
       count(*) filter (where state = 'deferred' and reason like 'cpu%'),
       count(*) filter (where state = 'applied'), count(*) filter (where state = 'failed'),
       coalesce(max(detail) filter (where state = 'deferred' and reason like 'cpu%'), '')
  from indexpilot.recommendations`).Scan(&open, &deferred, &applied, &failed, &why)
		if err != nil {
			return false, "", err
		}
		stillDeferred = deferred
		// Give up waiting for the CPU after demoCPUWait; the rest are
		// reported below and stay deferred.
		waited := deferred == 0 || time.Since(cpuSince) >= demoCPUWait
		status := fmt.Sprintf("%d applied, %d failed, %d in progress", applied, failed, open)
		switch {
		case deferred > 0 && !waited:
			status += fmt.Sprintf(", %d deferred by the CPU throttle (%s)", deferred, why)
		case deferred > 0:
			status += fmt.Sprintf(", %d still deferred by the CPU throttle", deferred)
		}
		return open == 0 && waited, status, nil
	}); err != nil {
		return err
	}
	if stillDeferred > 0 {
		fmt.Fprintf(stdout, "    %d recommendations are still deferred after %s: the database host stayed above %.0f%% CPU. "+
			"They are kept, not dropped: a running pipeline builds them once CPU stays below it for %s. "+
			"To see them built now, run the demo on a quieter host or with INDEXPILOT_GATEKEEPER_CPU_SOURCE=none.\n",
			stillDeferred, demoCPUWait, cfg.Gatekeeper.CPU.ThresholdPct, cfg.Gatekeeper.CPU.Cooldown)
	}
	step("indexes built")
	if err := printBuilt(ctx, pool, stdout); err != nil {
		return err
	}

	step("measuring the same workload again: the same %d runs of each statement with the same arguments", *per)
	after, err := demo.Measure(ctx, pool, stmts, *per, demoSeed)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if stillDeferred > 0 {
		fmt.Fprintf(stdout, "(%d recommendations were not built, deferred by the CPU throttle: their statements cannot be faster yet.)\n", stillDeferred)
	}
	demo.FormatComparison(stdout, before, after)
	fmt.Fprintln(stdout, "\n(contact_by_id is served by its primary key: it is the control and should not change.)")
	return nil
}

// demoPhase runs the pipeline until done reports true: it waits for the
// collector's first poll, drives the workload so the next poll sees
// deltas, and shows progress while the stages work.
func demoPhase(ctx context.Context, cfg config.Config, logger *slog.Logger, pool *pgxpool.Pool, stmts []demo.Statement, per int,
	out io.Writer, done func(context.Context) (bool, string, error)) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	started := time.Now()
	go func() {
		errc <- indexpilot.RunAll(pctx, cfg, logger, indexpilot.Options{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-errc:
		return fmt.Errorf("start pipeline: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the collector's first poll (it publishes the history
	// pg_stat_statements already holds, not the drive below); table
	// statistics reaching the scorer show that it happened.
	if err := waitFor(ctx, errc, 30*time.Second, out, "collector baseline", func(ctx context.Context) (bool, string, error) {
		var n int
		err := pool.QueryRow(ctx, "/* indexpilot:demo */ select count(*) from indexpilot.table_stats where observed_at >= $1", started).Scan(&n)
		return n > 0, "", err
	}); err != nil {
		return err
	}
	if err := demo.Drive(ctx, pool, stmts, per, demoSeed, out); err != nil {
		return err
	}
	if err := waitFor(ctx, errc, 3*time.Minute, out, "pipeline", done); err != nil {
		return err
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

// waitFor polls cond every half second, printing its status when it
// changes, until it holds (then a settle period passes without change) or
// the timeout.
func waitFor(ctx context.Context, errc chan error, timeout time.Duration, out io.Writer, what string,
	cond func(context.Context) (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	last, stableSince := "", time.Time{}
	for {
		ok, status, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if status != last {
			if status != "" {
				fmt.Fprintf(out, "    %s: %s\n", what, status)
			}
			last, stableSince = status, time.Now()
		}
		// Settle: more scoring rounds may still add to the result.
		if ok && time.Since(stableSince) >= 3*time.Second {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not finish within %s (last: %s)", what, timeout, orDash(last))
		}
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("pipeline stopped early: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printBuilt(ctx context.Context, pool *pgxpool.Pool, out io.Writer) error {
	rows, err := pool.Query(ctx, `/* indexpilot:demo */
select r.index_name, r.state, coalesce(pg_get_indexdef(i.oid), ''), coalesce(x.indisvalid, false), coalesce(pg_relation_size(i.oid), 0)
  from indexpilot.recommendations r
  left join pg_class i on i.relname = r.index_name
       and i.relnamespace = (select oid from pg_namespace where nspname = r.schema_name)
  left join pg_index x on x.indexrelid = i.oid
 order by r.table_name, r.index_name`)
	if err != nil {
		return fmt.Errorf("list built indexes: %w", err)
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tVALID\tSIZE\tDEFINITION")
	for rows.Next() {
		var name, state, def string
		var valid bool
		var size int64
		if err := rows.Scan(&name, &state, &def, &valid, &size); err != nil {
			return err
		}
		if def == "" {
			def = name + " (not built)"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", state, valid, humanBytes(size), strings.TrimSpace(def))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}
