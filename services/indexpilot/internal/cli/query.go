package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

func connect(ctx context.Context, load func() (config.Config, error)) (config.Config, *pgxpool.Pool, error) {
	cfg, err := load()
	if err != nil {
		return cfg, nil, err
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, "cli")
	if err != nil {
		return cfg, nil, fmt.Errorf("control database: %w", err)
	}
	return cfg, pool, nil
}

func initCmd(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	target := fs.String("target", "", "also create indexpilot.query_stats and its publication in this target")
	if err := fs.Parse(args); err != nil {
		return usageError{"init: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("init: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	// The startup bypass forbids touching the metadata schema: refuse
	// before connecting. (--target only installs the app-stats table in a
	// target, never the metadata schema, so it still runs.)
	if *target == "" && bypass.NewState(cfg.Features.Bypass, nil).StartupBypassed() {
		return errors.New("init: the startup bypass is set (features.bypass.startup): the metadata schema was left untouched")
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, "cli")
	if err != nil {
		return fmt.Errorf("control database: %w", err)
	}
	defer pool.Close()
	if *target != "" {
		return initTarget(ctx, cfg, *target, stdout)
	}
	res, err := metadata.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	for _, m := range res.Applied {
		fmt.Fprintf(stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	fmt.Fprintf(stdout, "schema %s is at version %d (%d migrations applied now)\n", metadata.Schema, res.Current, len(res.Applied))
	return nil
}

// Recommendation is one row of `indexpilot recommendations --json`.
type Recommendation struct {
	ID                 string                      `json:"id"`
	Target             string                      `json:"target"`
	State              string                      `json:"state"`
	Reason             string                      `json:"reason"`
	Detail             string                      `json:"detail,omitempty"`
	IndexName          string                      `json:"index_name"`
	Index              events.IndexSpec            `json:"index"`
	DDL                string                      `json:"ddl"`
	MaxImprovementPct  float64                     `json:"max_improvement_pct"`
	EstimatedSizeBytes int64                       `json:"estimated_size_bytes"`
	FormulaVersion     string                      `json:"formula_version"`
	Evidence           events.IndexCandidateScored `json:"evidence"`
	CreatedAt          time.Time                   `json:"created_at"`
	UpdatedAt          time.Time                   `json:"updated_at"`
}

var validStates = map[string]bool{"proposed": true, "approved": true, "deferred": true, "building": true,
	"applied": true, "failed": true, "rejected": true, "reverted": true, "superseded": true}

// ListRecommendations reads recommendations, newest first, optionally
// filtered by state and target.
func ListRecommendations(ctx context.Context, q postgres.Querier, state, target string) ([]Recommendation, error) {
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select r.id::text, r.target, r.state, r.reason, coalesce(r.detail, ''), r.index_name, r.index_spec, r.max_improvement_pct,
       r.estimated_size_bytes, r.formula_version, r.evidence, r.created_at, r.updated_at
  from indexpilot.recommendations r
 where ($1 = '' or r.state = $1) and ($2 = '' or r.target = $2)
 order by r.max_improvement_pct desc, r.index_key`, state, target)
	if err != nil {
		return nil, fmt.Errorf("list recommendations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recommendation, error) {
		var r Recommendation
		err := row.Scan(&r.ID, &r.Target, &r.State, &r.Reason, &r.Detail, &r.IndexName, &r.Index, &r.MaxImprovementPct,
			&r.EstimatedSizeBytes, &r.FormulaVersion, &r.Evidence, &r.CreatedAt, &r.UpdatedAt)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list recommendations: %w", err)
	}
	for i := range out {
		out[i].DDL = ddlFor(out[i])
	}
	return out, nil
}

func recommendations(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("recommendations", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	state := fs.String("state", "", "only this state")
	target := fs.String("target", "", "only this target")
	evidence := fs.Bool("evidence", false, "print each recommendation's per-statement evidence")
	if err := fs.Parse(args); err != nil {
		return usageError{"recommendations: " + err.Error()}
	}
	if *state != "" && !validStates[*state] {
		return usageError{fmt.Sprintf("recommendations: unknown state %q", *state)}
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	recs, err := ListRecommendations(ctx, pool, *state, *target)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if recs == nil {
			recs = []Recommendation{}
		}
		return enc.Encode(recs)
	}
	PrintRecommendations(stdout, recs, *evidence)
	return nil
}

// PrintRecommendations renders recommendations as a table, and with
// evidence each one's statements and plan costs.
func PrintRecommendations(w io.Writer, recs []Recommendation, evidence bool) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no recommendations")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTARGET\tSTATE\tTABLE\tCOLUMNS\tBEST GAIN\tEST SIZE\tINDEX\tREASON")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\t%s\t%s\t%s\n", r.ID[:8], r.Target, r.State, r.Index.QualifiedTable(),
			strings.Join(r.Index.Columns, ", "), r.MaxImprovementPct, humanBytes(r.EstimatedSizeBytes), r.IndexName, r.Reason)
	}
	_ = tw.Flush()
	printWhy(w, recs)
	if !evidence {
		return
	}
	for _, r := range recs {
		fmt.Fprintf(w, "\n%s  %s (%s, what-if: %s, formula %s)\n  %s\n", r.ID[:8], r.IndexName, r.State,
			r.Evidence.WhatIfMethod, r.FormulaVersion, r.DDL)
		for _, s := range r.Evidence.Statements {
			fmt.Fprintf(w, "  - calls %-6d mean %7.3f ms  plan cost %10.2f -> %9.2f  (-%.1f%%)  %s\n",
				s.Calls, s.MeanExecTimeMs, s.CostBefore, s.CostAfter, s.ImprovementPct, shorten(s.Query, 90))
		}
	}
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func status(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	if err := noArgs("status", args); err != nil {
		return err
	}
	if cfg, err := load(); err == nil && bypass.NewState(cfg.Features.Bypass, nil).StartupBypassed() {
		// The startup bypass: nothing, status included, reads the metadata schema.
		fmt.Fprintln(stdout, "startup bypass is on (features.bypass.startup): the metadata schema is left untouched; "+
			"the collector runs without it and the other stages are idle")
		return nil
	}
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSTATEMENTS\tLAST WINDOW\tRECOMMENDATIONS\tBUILDS PENDING")
	for _, t := range cfg.Targets {
		var stmts int64
		var last *time.Time
		var recs string
		var pending int64
		err := pool.QueryRow(ctx, `/* indexpilot:cli */
select (select count(distinct query_id) from indexpilot.workload_stats where target = $1),
       (select max(window_end) from indexpilot.workload_stats where target = $1),
       coalesce((select string_agg(state || '=' || n, ' ' order by state)
                   from (select state, count(*) n from indexpilot.recommendations where target = $1 group by state) s), '-'),
       (select count(*) from indexpilot.builds where target = $1 and state in ('pending','running'))`, t.Name).
			Scan(&stmts, &last, &recs, &pending)
		if err != nil {
			return fmt.Errorf("status of %s: %w", t.Name, err)
		}
		lw := "never"
		if last != nil {
			lw = last.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", t.Name, stmts, lw, recs, pending)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printBuildProgress(ctx, pool, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\ncollector:")
	return printCollectorHealth(ctx, pool, cfg, stdout)
}

func ddlFor(r Recommendation) string {
	return indexdef.CreateSQL(r.Index, r.IndexName, true)
}
