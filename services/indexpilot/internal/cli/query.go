package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/bytesize"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
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

func initCmd(ctx context.Context, load func() (config.Config, error), target string, stdout io.Writer) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	// The startup bypass forbids touching the metadata schema: refuse
	// before connecting. (--target only installs the app-stats table in a
	// target, never the metadata schema, so it still runs.)
	if target == "" && bypass.NewState(cfg.Features.Bypass, nil).StartupBypassed() {
		return errors.New("init: the startup bypass is set (features.bypass.startup): the metadata schema was left untouched")
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, "cli")
	if err != nil {
		return fmt.Errorf("control database: %w", err)
	}
	defer pool.Close()
	if target != "" {
		return initTarget(ctx, cfg, target, stdout)
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

// Recommendation is one row of `indexpilot recommendations --json` (the
// dashboard's API serves the same struct).
type Recommendation = decisions.Recommendation

var validStates = map[string]bool{"proposed": true, "approved": true, "deferred": true, "building": true,
	"applied": true, "failed": true, "rejected": true, "reverted": true, "superseded": true, "held": true, "removed": true}

// ListRecommendations reads recommendations, best first, optionally
// filtered by state and target.
var ListRecommendations = decisions.ListRecommendations

// recOptions are the flags of `indexpilot recommendations`.
type recOptions struct {
	json, evidence bool
	state, target  string
}

func recommendations(ctx context.Context, load func() (config.Config, error), o recOptions, stdout io.Writer) error {
	if o.state != "" && !validStates[o.state] {
		return usageError{fmt.Sprintf("recommendations: unknown state %q (valid: %s)", o.state, strings.Join(stateNames(), ", "))}
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	recs, err := ListRecommendations(ctx, pool, o.state, o.target)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if recs == nil {
			recs = []Recommendation{}
		}
		return enc.Encode(recs)
	}
	PrintRecommendations(stdout, recs, o.evidence)
	return nil
}

func stateNames() []string {
	out := make([]string, 0, len(validStates))
	for s := range validStates {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
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
			strings.Join(r.Index.Columns, ", "), r.MaxImprovementPct, decisions.EstimatedSize(r.EstimatedSizeBytes), r.IndexName, r.Reason)
	}
	_ = tw.Flush()
	printWhy(w, recs)
	if !evidence {
		return
	}
	for _, r := range recs {
		fmt.Fprintf(w, "\n%s  %s (%s, what-if: %s, formula %s)\n  %s\n", r.ID[:8], r.IndexName, r.State,
			r.Evidence.WhatIfMethod, r.FormulaVersion, r.DDL)
		if r.FormulaVersion != "v1" {
			images := ""
			if r.Evidence.WALImageBytesPerWriteTxn > 0 {
				images = fmt.Sprintf(", %.1f of them full-page images", r.Evidence.WALImageBytesPerWriteTxn)
			}
			fmt.Fprintf(w, "  read saving %.0f  vs  write %.0f (%.1f WAL bytes %s%s, %.0f HOT updates lost) + build %.0f  = net %.0f\n",
				r.Evidence.BenefitCost, r.Evidence.WriteOverheadCost, r.Evidence.WALBytesPerWriteTxn,
				events.WALUnit(r.Evidence.WALBasis), images, r.Evidence.HotUpdatesLost,
				r.Evidence.BuildCost, r.Evidence.NetBenefit)
		}
		if r.Evidence.HeldReason != "" {
			fmt.Fprintf(w, "  held (%s): %s\n", r.Evidence.HeldReason, r.Evidence.HeldDetail)
		}
		if f := r.Evidence.Forecast; f != nil {
			fmt.Fprintf(w, "  forecast: %s; build estimated %s, approved from %s\n", f.Summary(),
				(time.Duration(f.BuildSeconds) * time.Second).String(), f.BuildFrom.UTC().Format("Mon 15:04 UTC"))
			if f.DropAfter != nil {
				fmt.Fprintf(w, "  forecast: drop after the peak proposed: %s\n", f.DropDetail)
			}
		}
		if len(r.Evidence.Tenants) > 0 {
			fmt.Fprintf(w, "  tenants: %s\n", events.TenantSummary(r.Evidence.Tenants))
		}
		for _, s := range r.Evidence.Statements {
			priced := s.PricingMethod
			if priced == "" {
				priced = "-"
			} else if s.ValueSets > 0 {
				priced = fmt.Sprintf("%s×%d", priced, s.ValueSets)
			}
			fmt.Fprintf(w, "  - calls %-6d mean %7.3f ms  plan cost %10.2f -> %9.2f  (-%.1f%%)  priced %-18s  %s\n",
				s.Calls, s.MeanExecTimeMs, s.CostBefore, s.CostAfter, s.ImprovementPct, priced, shorten(s.Query, 90))
			if s.Window != "" {
				fmt.Fprintf(w, "    window: %s\n", s.Window)
			}
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

func humanBytes(n int64) string { return bytesize.Human(n) }

// status prints each target's status; asJSON prints the structs of
// GET /api/v1/targets (decisions.TargetStatus) instead of the tables.
func status(ctx context.Context, load func() (config.Config, error), asJSON bool, stdout io.Writer) error {
	if cfg, err := load(); err == nil && bypass.NewState(cfg.Features.Bypass, nil).StartupBypassed() {
		if asJSON {
			return errors.New("status: startup bypass is on (features.bypass.startup): nothing reads the metadata schema")
		}
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
	now := time.Now()
	sts, err := decisions.TargetStatuses(ctx, pool, cfg, now)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sts)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSTATEMENTS\tLAST WINDOW\tHISTORY\tRECOMMENDATIONS\tBUILDS PENDING")
	for _, t := range sts {
		recs := "-"
		if len(t.Recommendations) > 0 {
			var parts []string
			for _, st := range slices.Sorted(maps.Keys(t.Recommendations)) {
				parts = append(parts, fmt.Sprintf("%s=%d", st, t.Recommendations[st]))
			}
			recs = strings.Join(parts, " ")
		}
		lw := "never"
		if t.LastWindow != nil {
			lw = t.LastWindow.UTC().Format(time.RFC3339)
		}
		hist := "-"
		if t.History != "" {
			hist = t.History
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\n", t.Target, t.Statements, lw, hist, recs, t.BuildsPending)
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

func ddlFor(r Recommendation) string { return decisions.DDL(r) }
