package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// Report is `indexpilot report --json` (and GET /api/v1/report).
type Report = decisions.Report

// ReportBuild is one build outcome from mutation_log.
type ReportBuild = decisions.ReportBuild

// ReportVerdict is one validation with its numbers.
type ReportVerdict = decisions.ReportVerdict

// ReportRemoval is one approved removal.
type ReportRemoval = decisions.ReportRemoval

// BuildReport reads the report from the control database; target "" means
// every target, since the zero time means everything.
var BuildReport = decisions.BuildReport

// PrintReport renders r as Markdown.
func PrintReport(w io.Writer, r Report) {
	fmt.Fprintf(w, "# IndexPilot report\n\nGenerated %s", r.GeneratedAt.Format(time.RFC3339))
	if r.Target != "" {
		fmt.Fprintf(w, " for target `%s`", r.Target)
	}
	fmt.Fprint(w, ".\n\n## Recommendations\n\n")
	if len(r.Recommendations) == 0 {
		fmt.Fprint(w, "None.\n")
	} else {
		states := make([]string, 0, len(r.Recommendations))
		for s := range r.Recommendations {
			states = append(states, s)
		}
		sort.Strings(states)
		fmt.Fprint(w, "| state | count |\n|---|---:|\n")
		for _, s := range states {
			fmt.Fprintf(w, "| %s | %d |\n", s, r.Recommendations[s])
		}
	}

	if len(r.Tenants) > 0 {
		fmt.Fprint(w, "\n### Benefit by tenant\n\n| recommendation | target | index | table | state | tenants |\n|---|---|---|---|---|---|\n")
		for _, x := range r.Tenants {
			fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s | %s |\n", x.RecommendationID[:min(8, len(x.RecommendationID))], x.Target, x.IndexName, x.Table, x.State,
				md(events.TenantSummary(x.Tenants)))
		}
	}

	fmt.Fprint(w, "\n## Builds\n\n")
	if len(r.Builds) == 0 {
		fmt.Fprint(w, "None.\n")
	} else {
		fmt.Fprint(w, "| when | target | index | table | outcome | duration | size | detail |\n|---|---|---|---|---|---:|---:|---|\n")
		for _, b := range r.Builds {
			detail := b.Reason
			if b.SQLState != "" {
				detail = strings.TrimSpace(detail + " (SQLSTATE " + b.SQLState + ")")
			}
			fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s | %s | %s | %s |\n", b.At.UTC().Format(time.RFC3339), b.Target,
				b.IndexName, b.Table, b.Outcome, ms(b.DurationMs), sizeOrDash(b.SizeBytes), md(detail))
		}
	}

	fmt.Fprint(w, "\n## Validations\n\n")
	if len(r.Validations) == 0 {
		fmt.Fprint(w, "None.\n")
	}
	for _, v := range r.Validations {
		verdict, plan := verdictWords(v)
		fmt.Fprintf(w, "### `%s` on %s (%s)\n\nVerdict: **%s**, change %+.1f %% (positive is faster), plan uses the index: %s, reverted: %v.",
			v.IndexName, v.Table, v.Target, verdict, v.ChangePct, plan, v.Reverted)
		if v.Reason != "" {
			fmt.Fprintf(w, " %s.", md(v.Reason))
		}
		if len(v.Tenants) > 0 {
			fmt.Fprintf(w, " By tenant (measured saving, estimated split): %s.", md(events.TenantSummary(v.Tenants)))
		}
		fmt.Fprint(w, "\n\n")
		if len(v.Statements) > 0 {
			fmt.Fprint(w, "| query id | calls before | mean before | calls after | mean after | plan uses index |\n|---|---:|---:|---:|---:|---|\n")
			for _, s := range v.Statements {
				p := "unknown"
				if s.PlanUsesIndex != nil {
					p = map[bool]string{true: "yes", false: "no"}[*s.PlanUsesIndex]
				}
				fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %s |\n", s.QueryID, s.BeforeCalls, ms(s.BeforeMeanMs),
					s.AfterCalls, ms(s.AfterMeanMs), p)
			}
			fmt.Fprintln(w)
		}
	}

	fmt.Fprint(w, "\n## Removals\n\n")
	if len(r.Removals) == 0 {
		fmt.Fprint(w, "None.\n")
		return
	}
	fmt.Fprint(w, "| id | target | index | state | reason | definition |\n|---|---|---|---|---|---|\n")
	for _, x := range r.Removals {
		state := x.State
		if x.LastError != "" && x.State == "failed" {
			state += ": " + x.LastError
		}
		fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s | `%s` |\n", x.ID[:8], x.Target, x.IndexName, md(state), md(x.Reason),
			md(x.Definition))
	}
}

// verdictWords names a validation's verdict ("pending (state)" before
// it has one) and whether the plans use the index (yes, no, unknown).
func verdictWords(v ReportVerdict) (verdict, plan string) {
	verdict = v.Verdict
	if verdict == "" {
		verdict = "pending (" + v.State + ")"
	}
	plan = "unknown"
	if v.PlanUsesIndex != nil {
		plan = map[bool]string{true: "yes", false: "no"}[*v.PlanUsesIndex]
	}
	return verdict, plan
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f ms", v)
}

func sizeOrDash(n int64) string {
	if n == 0 {
		return "-"
	}
	return humanBytes(n)
}

// md keeps a value on one Markdown table row.
func md(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// reportOptions are the flags of `indexpilot report`.
type reportOptions struct {
	json   bool
	target string
	since  time.Duration
}

func reportCmd(ctx context.Context, load func() (config.Config, error), o reportOptions, stdout io.Writer) error {
	if o.since < 0 {
		return usageError{"report: --since must not be negative"}
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	from := time.Time{}
	if o.since > 0 {
		from = time.Now().Add(-o.since)
	}
	r, err := BuildReport(ctx, pool, o.target, from)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	PrintReport(stdout, r)
	return nil
}

// printBuildProgress lists the builds running now with the progress their
// executor last recorded from pg_stat_progress_create_index.
func printBuildProgress(ctx context.Context, q postgres.Querier, w io.Writer) error {
	list, err := decisions.RunningBuilds(ctx, q)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nbuilds running:")
	for _, r := range list {
		line := fmt.Sprintf("  %s %s (attempt %d, %s)", r.Target, r.IndexName, r.Attempts, r.ClaimedBy)
		if p := r.Progress; p != nil {
			pct := "-"
			if v, unit, ok := p.Percent(); ok {
				pct = fmt.Sprintf("%.0f%% of %s", v, unit)
			}
			line += fmt.Sprintf(": %s on %s, %s", p.Phase, p.Table, pct)
			if p.Partitions > 0 {
				line += fmt.Sprintf(", %d partitions done", p.Partitions)
			}
			if p.CPUPercent != nil {
				line += fmt.Sprintf(", cpu %.0f%%", *p.CPUPercent)
			}
		}
		fmt.Fprintln(w, line)
	}
	return nil
}
