package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// Explanation is `indexpilot explain <id> --json`.
type Explanation = decisions.Explanation

// explainCmd is `indexpilot explain <recommendation-id>`: why an index
// exists, from the statements to the validation, as the trace shows it.
func explainCmd(ctx context.Context, load func() (config.Config, error), id string, asJSON bool, stdout io.Writer) error {
	id = strings.ToLower(strings.TrimSpace(id))
	if len(id) < 4 {
		return usageError{"explain: give at least 4 characters of the recommendation id"}
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := decisions.CheckSchema(ctx, pool); err != nil {
		return err
	}
	x, err := decisions.Explain(ctx, pool, id)
	switch {
	case errors.Is(err, decisions.ErrNotFound):
		return fmt.Errorf("explain: no recommendation with id %q (indexpilot recommendations lists them)", id)
	case errors.Is(err, decisions.ErrAmbiguous):
		return fmt.Errorf("explain: the id prefix %q names several recommendations; give more of it", id)
	case err != nil:
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	}
	PrintExplanation(stdout, x)
	return nil
}

// PrintExplanation renders x: the statements, the candidate and its
// pricing, the decisions, the builds and the validation, in that order.
func PrintExplanation(w io.Writer, x Explanation) {
	r := x.Recommendation
	fmt.Fprintf(w, "recommendation %s: %s on %s (%s), %s (%s)\n", r.ID, r.IndexName, r.Index.QualifiedTable(),
		strings.Join(r.Index.Columns, ", "), r.State, r.Reason)
	if r.TraceID != "" {
		fmt.Fprintf(w, "trace %s\n", r.TraceID)
	}

	fmt.Fprintf(w, "\n1. statements (workload of target %s up to the candidate's window end %s)\n", r.Target, stamp(r.Evidence.WindowEnd))
	for _, s := range x.Statements {
		fmt.Fprintf(w, "  query id %s, %d calls weighed: %s\n", s.QueryID, s.Calls, shorten(s.Query, 100))
		fmt.Fprintf(w, "    %s retained, %d calls", plural(s.WindowCount, "window"), s.WindowCalls)
		if len(s.Windows) < int(s.WindowCount) {
			fmt.Fprintf(w, "; the newest %d:", len(s.Windows))
		}
		fmt.Fprintln(w)
		for _, win := range s.Windows {
			line := fmt.Sprintf("      %s .. %s  calls %d  total %.3f ms", stamp(win.Start), stamp(win.End), win.Calls, win.TotalExecTimeMs)
			if d := events.DescribeWindow(win.Source, win.Start, win.End); d != "" {
				line += "  (" + d + ")"
			}
			fmt.Fprintln(w, line)
		}
	}

	fmt.Fprintln(w, "\n2. candidate and pricing")
	PrintRecommendations(w, []Recommendation{r}, true)

	fmt.Fprintln(w, "\n3. decisions (gatekeeper)")
	if len(x.Decisions) == 0 {
		fmt.Fprintln(w, "  none recorded")
	}
	for _, d := range x.Decisions {
		fmt.Fprintf(w, "  %s  %s %s (%s)\n", stamp(d.At), d.Action, d.Outcome, d.Reason)
		if len(d.RulesPassed) > 0 {
			fmt.Fprintf(w, "    rules passed: %s\n", strings.Join(d.RulesPassed, ", "))
		}
		if d.Detail != "" {
			fmt.Fprintf(w, "    %s\n", d.Detail)
		}
	}

	fmt.Fprintln(w, "\n4. builds (executor)")
	if len(x.Builds) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, b := range x.Builds {
		line := fmt.Sprintf("  %s  %s %s", stamp(b.At), b.Outcome, b.IndexName)
		if b.DurationMs > 0 {
			line += fmt.Sprintf("  %s", ms(b.DurationMs))
		}
		if b.SizeBytes > 0 {
			line += "  " + humanBytes(b.SizeBytes)
		}
		if b.Reason != "" {
			line += "  " + b.Reason
		}
		if b.SQLState != "" {
			line += " (SQLSTATE " + b.SQLState + ")"
		}
		fmt.Fprintln(w, line)
	}

	fmt.Fprintln(w, "\n5. validation")
	v := x.Validation
	if v == nil {
		fmt.Fprintln(w, "  none")
		return
	}
	verdict, plan := verdictWords(*v)
	fmt.Fprintf(w, "  %s, change %+.1f %% (positive is faster), plan uses the index: %s, reverted: %v\n",
		verdict, v.ChangePct, plan, v.Reverted)
	if v.Reason != "" {
		fmt.Fprintf(w, "  %s\n", v.Reason)
	}
	if len(v.Statements) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  QUERY ID\tCALLS BEFORE\tMEAN BEFORE\tCALLS AFTER\tMEAN AFTER")
	for _, s := range v.Statements {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%s\n", s.QueryID, s.BeforeCalls, ms(s.BeforeMeanMs), s.AfterCalls, ms(s.AfterMeanMs))
	}
	_ = tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
