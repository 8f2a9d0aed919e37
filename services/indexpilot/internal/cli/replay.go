package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// replay re-scores the retained workload (the query and table statistics
// events the scorer stored) with a chosen formula and window, and prints a
// report; with --emit it also publishes the candidates and removal
// proposals on the configured bus, where the gatekeeper treats them like
// any others (their ids carry the formula version).
// replayOptions are the flags of `indexpilot replay`.
type replayOptions struct {
	since, until, formula, target string
	json, emit                    bool
}

func replay(ctx context.Context, load func() (config.Config, error), o replayOptions, stdout, stderr io.Writer) error {
	since, until, formula, target, asJSON, emit := &o.since, &o.until, &o.formula, &o.target, &o.json, &o.emit
	var opts scorer.Options
	offsets, byOffset, err := scorer.ParseOffsets(*since)
	switch {
	case err != nil:
		return usageError{"replay: --since: " + err.Error()}
	case !byOffset:
		if opts.Since, err = parseSince(*since, time.Now()); err != nil {
			return usageError{"replay: --since: " + err.Error()}
		}
	}
	if *until != "" {
		if opts.Until, err = time.Parse(time.RFC3339, *until); err != nil {
			return usageError{fmt.Sprintf("replay: --until: %q is not an RFC 3339 time", *until)}
		}
	}
	if *formula != "" && !slices.Contains(config.ScorerFormulas, *formula) {
		return usageError{fmt.Sprintf("replay: --formula: unknown version %q (known: %s)", *formula, strings.Join(config.ScorerFormulas, ", "))}
	}
	opts.FormulaVersion = *formula
	cfg, err := load()
	if err != nil {
		return err
	}
	if *emit && cfg.Bus.Transport != config.TransportKafka {
		return usageError{"replay: --emit needs bus.transport kafka (the in-process bus has no consumer here)"}
	}
	if byOffset && cfg.Bus.Transport != config.TransportKafka {
		// A configuration mismatch, not a misuse of the flags: one line.
		return fmt.Errorf("replay: --since %s: offsets exist only on the kafka transport (bus.transport is %s)", *since, cfg.Bus.Transport)
	}
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = []config.Target{{Name: "main", DSN: cfg.DatabaseURL}}
	}
	if *target != "" {
		t, ok := cfg.Target(*target)
		if !ok {
			return usageError{fmt.Sprintf("replay: unknown target %q", *target)}
		}
		targets = []config.Target{t}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var b *bus.Bus
	if *emit {
		if b, err = bus.New(cfg.Bus, logger); err != nil {
			return err
		}
	} else {
		b = bus.NewMemory(logger)
	}
	defer func() { _ = b.Close() }()
	control, err := postgres.Connect(ctx, cfg.DatabaseURL, scorer.Name)
	if err != nil {
		return fmt.Errorf("control database: %w", err)
	}
	defer control.Close()
	tg := stage.NewTargets(targets, scorer.Name)
	defer tg.Close()
	s, err := scorer.New(stage.Deps{Config: cfg, Bus: b, Control: control, Targets: tg, Logger: logger})
	if err != nil {
		return err
	}
	if byOffset {
		// A plain partition consumer: no consumer group is joined and no
		// offset committed, so the running scorers are not disturbed.
		if opts.Retained, err = scorer.ReadRetained(ctx, cfg.Bus.Kafka, offsets); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	reports := make([]*scorer.Report, 0, len(targets))
	for _, t := range targets {
		r, err := s.Score(ctx, t.Name, opts)
		if err != nil {
			return fmt.Errorf("replay %s: %w", t.Name, err)
		}
		if *emit {
			if err := b.Publish(ctx, scorer.Name, "", r.Payloads()...); err != nil {
				return fmt.Errorf("replay %s: publish: %w", t.Name, err)
			}
		}
		reports = append(reports, r)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	if byOffset {
		fmt.Fprintf(stdout, "re-read from offset %s: %d query statistics, %d table statistics events\n",
			*since, len(opts.Retained.QueryStats), len(opts.Retained.TableStats))
	}
	printReplay(stdout, reports, *emit)
	return nil
}

// parseSince reads --since: "" (the configured window), an RFC 3339 time,
// or a duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", v)
	}
	return now.Add(-d), nil
}

func printReplay(w io.Writer, reports []*scorer.Report, emitted bool) {
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "target %s — formula %s, what-if %s, window %s .. %s\n", r.Target, r.FormulaVersion, r.WhatIfMethod,
			r.WindowStart.Format(time.RFC3339), r.WindowEnd.Format(time.RFC3339))
		if r.WindowEnd.IsZero() {
			fmt.Fprintln(w, "  no workload in the window")
		}
		fmt.Fprintf(w, "  statements %d (unparsed %d, not evaluable %d); candidates %d, proven %d, chosen %d; removals %d\n",
			r.Statements, r.Unparsed, r.NotEvaluable, r.Generated, r.Proven, len(r.Chosen), len(r.Removals))
		if len(r.Pricing) > 0 {
			methods := make([]string, 0, len(r.Pricing))
			for m, n := range r.Pricing {
				methods = append(methods, fmt.Sprintf("%s %d", m, n))
			}
			sort.Strings(methods)
			fmt.Fprintf(w, "  priced by %s; %d value-set plans\n", strings.Join(methods, ", "), r.ValuePlans)
		}
		if r.WorkloadCostBefore > 0 {
			fmt.Fprintf(w, "  workload plan cost %.0f -> %.0f (%.1f %%); chosen %s of a %s budget; %d what-if calls, %d cache hits, %s\n",
				r.WorkloadCostBefore, r.WorkloadCostAfter, 100*r.WorkloadCostAfter/r.WorkloadCostBefore,
				humanBytes(r.ChosenBytes), humanBytes(r.StorageBudgetBytes), r.WhatIfCalls, r.CacheHits, r.Duration.Round(time.Millisecond))
		}
		if n := len(r.Chosen) + len(r.Held) + len(r.Rejected); n > 0 {
			// The Pareto view: each candidate's read saving next to the WAL
			// it adds per write transaction, chosen, held or rejected.
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  INDEX	OUTCOME	BEST GAIN	SIZE	READ SAVING	WAL B/WRITE TXN	HOT LOST	WRITE	BUILD	NET BENEFIT	STATEMENTS")
			basis := ""
			r.EachCandidate(func(c *events.IndexCandidateScored, outcome string) {
				fmt.Fprintf(tw, "  %s (%s)\t%s\t%.1f %%\t%s\t%.0f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\n", c.Index.QualifiedTable(),
					strings.Join(c.Index.Columns, ", "), outcome, c.MaxImprovementPct, decisions.EstimatedSize(c.EstimatedSizeBytes), c.BenefitCost,
					c.WALBytesPerWriteTxn, c.HotUpdatesLost, c.WriteOverheadCost, c.BuildCost, c.NetBenefit, len(c.Statements))
				if basis == "" {
					basis = c.WALBasis
				}
			})
			_ = tw.Flush()
			if basis != "" {
				// One basis per run: the window's write transactions.
				fmt.Fprintf(w, "  WAL bytes %s\n", events.WALUnit(basis))
			}
			for _, c := range r.Held {
				fmt.Fprintf(w, "  held %s (%s): %s\n", c.Index.QualifiedTable(), strings.Join(c.Index.Columns, ", "), c.HeldDetail)
			}
		}
		for _, rm := range r.Removals {
			with := ""
			if rm.RedundantWith != "" {
				with = " (kept: " + rm.RedundantWith + ")"
			}
			fmt.Fprintf(w, "  remove %s.%s: %s%s, %s\n", rm.Schema, rm.IndexName, rm.Reason, with, humanBytes(rm.SizeBytes))
		}
	}
	if emitted {
		fmt.Fprintln(w, "published the candidates and removals")
	}
}
