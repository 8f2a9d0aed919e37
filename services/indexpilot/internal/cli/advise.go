package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// adviseOptions are the flags of `indexpilot advise`.
type adviseOptions struct {
	url, formula  string
	json, verbose bool
}

// Advice is `indexpilot advise --json`: what the scorer recommends from the
// history a database's pg_stat_statements holds, and that window.
type Advice struct {
	Database string `json:"database"`
	// WindowSource is history:stats_since, history:stats_reset or
	// history:unknown; WindowStart is absent when unknown.
	WindowSource string     `json:"window_source"`
	WindowStart  *time.Time `json:"window_start,omitempty"`
	WindowEnd    time.Time  `json:"window_end"`
	// StatementsRead is the database's statements with calls in
	// pg_stat_statements; Statements those with at least scorer.min_calls,
	// which were scored.
	StatementsRead  int              `json:"statements_read"`
	Statements      int              `json:"statements"`
	Unparsed        int              `json:"unparsed"`
	NotEvaluable    int              `json:"not_evaluable"`
	Candidates      int              `json:"candidates"`
	WhatIfMethod    string           `json:"what_if_method"`
	FormulaVersion  string           `json:"formula_version"`
	Recommendations []Recommendation `json:"recommendations"`
	Notes           []string         `json:"notes,omitempty"`
}

// adviseCmd is `indexpilot advise [DATABASE-URL]`: read the database's
// pg_stat_statements history, score it with the pipeline's scorer, print
// the recommendations with their evidence, and exit. No control database;
// nothing is created in the database but HypoPG's session-local
// hypothetical indexes.
func adviseCmd(ctx context.Context, cfgPath string, o adviseOptions, stdout, stderr io.Writer) error {
	if o.url == "" {
		o.url = os.Getenv("INDEXPILOT_DATABASE_URL")
	}
	if o.url == "" {
		return usageError{"advise: no database URL: give one (indexpilot advise postgres://user@host/db) or set INDEXPILOT_DATABASE_URL"}
	}
	if o.formula != "" && !slices.Contains(config.ScorerFormulas, o.formula) {
		return usageError{fmt.Sprintf("advise: --formula: unknown version %q (known: %s)", o.formula, strings.Join(config.ScorerFormulas, ", "))}
	}
	pc, err := pgx.ParseConfig(o.url)
	if err != nil {
		return usageError{"advise: the database URL is not a valid connection string (details withheld, it may hold a password)"}
	}
	name := pc.Database
	if name == "" {
		name = "database"
	}
	// The configuration's scorer settings apply; the database given is the
	// one target (and stands in for the control database nobody uses).
	cfg, err := config.Load(cfgPath, append(os.Environ(), "INDEXPILOT_DATABASE_URL="+o.url))
	if err != nil {
		return err
	}
	cfg.Targets = []config.Target{{Name: name, DSN: o.url}}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	targets := stage.NewTargets(cfg.Targets, "advise")
	defer targets.Close()
	pool, err := targets.Pool(ctx, name)
	if err != nil {
		return fmt.Errorf("advise: %w", err)
	}
	h, err := collector.ReadHistory(ctx, pool, name, time.Now())
	if err != nil {
		return fmt.Errorf("advise: database %s: %w", name, err)
	}
	if len(h.QueryStats) == 0 {
		return fmt.Errorf("advise: no history: pg_stat_statements holds no statement of database %s yet "+
			"(run the workload first; a role without pg_read_all_stats sees only its own statements)", name)
	}
	rep, err := scorer.Advise(ctx, cfg, targets, name, &scorer.Retained{QueryStats: h.QueryStats},
		scorer.Options{FormulaVersion: o.formula}, logger)
	if err != nil {
		return fmt.Errorf("advise: %w", err)
	}
	adv := advice(name, h, rep, cfg)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(adv)
	}
	PrintAdvice(stdout, adv)
	return nil
}

// advice turns a scoring report over a history into what advise prints.
func advice(name string, h *collector.History, rep *scorer.Report, cfg config.Config) Advice {
	a := Advice{
		Database: name, WindowSource: h.Source, WindowEnd: h.At.UTC(), StatementsRead: len(h.QueryStats),
		Statements: rep.Statements, Unparsed: rep.Unparsed, NotEvaluable: rep.NotEvaluable, Candidates: rep.Generated,
		WhatIfMethod: rep.WhatIfMethod, FormulaVersion: rep.FormulaVersion, Recommendations: []Recommendation{},
	}
	if !h.Since.IsZero() {
		s := h.Since.UTC()
		a.WindowStart = &s
	}
	for _, c := range rep.Chosen {
		r := Recommendation{
			ID: c.CandidateID, Target: name, State: "advised", Reason: "not_recorded", IndexName: indexdef.Name(c.Index),
			Index: c.Index, MaxImprovementPct: c.MaxImprovementPct, EstimatedSizeBytes: c.EstimatedSizeBytes,
			FormulaVersion: c.FormulaVersion, Evidence: *c, CreatedAt: a.WindowEnd, UpdatedAt: a.WindowEnd,
		}
		r.DDL = ddlFor(r)
		a.Recommendations = append(a.Recommendations, r)
	}
	if rep.WhatIfMethod == scorer.WhatIfStats {
		a.Notes = append(a.Notes, "HypoPG is not installed in this database: the cost with each index comes from the pg_stats model "+
			"(docs/scorer.md). For the planner's own costs: CREATE EXTENSION hypopg (Debian: postgresql-NN-hypopg; no restart needed)")
	}
	a.Notes = append(a.Notes, "writes are not charged: the table counters since their reset include whatever loaded the tables; "+
		"indexpilot run measures the write overhead between its polls")
	if held := rep.Proven - len(rep.Chosen); held > 0 {
		a.Notes = append(a.Notes, fmt.Sprintf("%d more candidates cut some statement's cost but were not chosen: the storage budget "+
			"(%s: scorer.storage_budget_mb, else scorer.storage_budget_pct of the database but at least scorer.storage_budget_min_mb), "+
			"the caps per run and table, "+
			"or their net benefit; --verbose logs why each was left out", held, humanBytes(rep.StorageBudgetBytes)))
	}
	if rep.Statements < a.StatementsRead {
		a.Notes = append(a.Notes, fmt.Sprintf("%d statements ran fewer than scorer.min_calls = %d times and were not scored",
			a.StatementsRead-rep.Statements, cfg.Scorer.MinCalls))
	}
	return a
}

// PrintAdvice renders an Advice: the window, then the recommendations as
// `recommendations --evidence` prints them.
func PrintAdvice(w io.Writer, a Advice) {
	fmt.Fprintf(w, "database %s: %s; %d statements with calls, %d scored (unparsed %d, not evaluable %d), %d candidates\n",
		a.Database, describeWindow(a), a.StatementsRead, a.Statements, a.Unparsed, a.NotEvaluable, a.Candidates)
	fmt.Fprintf(w, "what-if: %s, formula %s\n\n", a.WhatIfMethod, a.FormulaVersion)
	PrintRecommendations(w, a.Recommendations, true)
	for _, n := range a.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
	fmt.Fprintln(w, "\nNothing was created in the database (HypoPG's hypothetical indexes end with the session) and nothing was recorded.")
	if len(a.Recommendations) > 0 {
		fmt.Fprintln(w, "To build them: run each DDL above, or let IndexPilot watch the database: indexpilot init, then indexpilot run.")
	}
}

// describeWindow is "history since 2026-11-02 10:00 UTC, 35 days" or
// "history, window unknown".
func describeWindow(a Advice) string {
	if a.WindowStart == nil {
		return "history, window unknown (weighted by calls and time alone)"
	}
	return fmt.Sprintf("history since %s, %s", a.WindowStart.Format("2006-01-02 15:04 MST"), humanDuration(a.WindowEnd.Sub(*a.WindowStart)))
}

// humanDuration is a window's length in the largest fitting unit.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(math.Round(d.Hours()/24)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(math.Round(d.Hours())))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(math.Round(d.Minutes())))
	}
	return d.Round(time.Second).String()
}
