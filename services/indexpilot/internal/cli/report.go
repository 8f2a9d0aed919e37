package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Report is `indexpilot report --json`: what was recommended, built,
// validated (with before/after numbers), reverted and removed.
type Report struct {
	GeneratedAt     time.Time        `json:"generated_at"`
	Target          string           `json:"target,omitempty"`
	Recommendations map[string]int64 `json:"recommendations"`
	Builds          []ReportBuild    `json:"builds"`
	Validations     []ReportVerdict  `json:"validations"`
	Removals        []ReportRemoval  `json:"removals"`
}

// ReportBuild is one build outcome from mutation_log.
type ReportBuild struct {
	At         time.Time `json:"at"`
	Target     string    `json:"target"`
	IndexName  string    `json:"index_name"`
	Table      string    `json:"table"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	DurationMs float64   `json:"duration_ms,omitempty"`
	SizeBytes  int64     `json:"size_bytes,omitempty"`
	SQLState   string    `json:"sqlstate,omitempty"`
}

// ReportVerdict is one validation with its numbers.
type ReportVerdict struct {
	Target           string                      `json:"target"`
	RecommendationID string                      `json:"recommendation_id"`
	IndexName        string                      `json:"index_name"`
	Table            string                      `json:"table"`
	State            string                      `json:"state"`
	Verdict          string                      `json:"verdict,omitempty"`
	ChangePct        float64                     `json:"change_pct"`
	PlanUsesIndex    *bool                       `json:"plan_uses_index,omitempty"`
	Reverted         bool                        `json:"reverted"`
	Reason           string                      `json:"reason,omitempty"`
	BuiltAt          time.Time                   `json:"built_at"`
	Statements       []events.ValidatedStatement `json:"statements"`
}

// ReportRemoval is one approved removal.
type ReportRemoval struct {
	ID         string     `json:"id"`
	Target     string     `json:"target"`
	IndexName  string     `json:"index_name"`
	Table      string     `json:"table,omitempty"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	Definition string     `json:"definition,omitempty"`
	DroppedAt  *time.Time `json:"dropped_at,omitempty"`
	RestoredAt *time.Time `json:"restored_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// BuildReport reads the report from the control database; target "" means
// every target, since the zero time means everything.
func BuildReport(ctx context.Context, q postgres.Querier, target string, since time.Time) (Report, error) {
	r := Report{GeneratedAt: time.Now().UTC(), Target: target, Recommendations: map[string]int64{},
		Builds: []ReportBuild{}, Validations: []ReportVerdict{}, Removals: []ReportRemoval{}}
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select state, count(*) from indexpilot.recommendations where ($1 = '' or target = $1) group by state`, target)
	if err != nil {
		return r, fmt.Errorf("read recommendations: %w", err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return r, fmt.Errorf("read recommendations: %w", err)
		}
		r.Recommendations[s] = n
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("read recommendations: %w", err)
	}

	rows, err = q.Query(ctx, `/* indexpilot:cli */
select occurred_at, coalesce(target, ''), coalesce(index_name, ''), coalesce(schema_name || '.' || table_name, ''), outcome,
       coalesce(reason, ''), coalesce((evidence->>'duration_ms')::float8, 0), coalesce((evidence->>'size_bytes')::bigint, 0),
       coalesce(evidence->>'sqlstate', '')
  from indexpilot.mutation_log_all
 where stage = 'executor' and action = 'build' and ($1 = '' or target = $1) and occurred_at >= $2
 order by id`, target, since)
	if err != nil {
		return r, fmt.Errorf("read builds: %w", err)
	}
	r.Builds, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportBuild, error) {
		var b ReportBuild
		err := row.Scan(&b.At, &b.Target, &b.IndexName, &b.Table, &b.Outcome, &b.Reason, &b.DurationMs, &b.SizeBytes, &b.SQLState)
		return b, err
	})
	if err != nil {
		return r, fmt.Errorf("read builds: %w", err)
	}

	rows, err = q.Query(ctx, `/* indexpilot:cli */
select target, recommendation_id::text, index_name, schema_name || '.' || table_name, state, coalesce(verdict, ''),
       reverted, built_at, evidence
  from indexpilot.validations
 where ($1 = '' or target = $1) and updated_at >= $2
 order by built_at, index_name`, target, since)
	if err != nil {
		return r, fmt.Errorf("read validations: %w", err)
	}
	r.Validations, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportVerdict, error) {
		var v ReportVerdict
		var ev struct {
			ChangePct     float64                     `json:"change_pct"`
			PlanUsesIndex *bool                       `json:"plan_uses_index"`
			Reason        string                      `json:"reason"`
			Statements    []events.ValidatedStatement `json:"statements"`
		}
		if err := row.Scan(&v.Target, &v.RecommendationID, &v.IndexName, &v.Table, &v.State, &v.Verdict, &v.Reverted,
			&v.BuiltAt, &ev); err != nil {
			return v, err
		}
		v.ChangePct, v.PlanUsesIndex, v.Reason, v.Statements = ev.ChangePct, ev.PlanUsesIndex, ev.Reason, ev.Statements
		if v.Statements == nil {
			v.Statements = []events.ValidatedStatement{}
		}
		return v, nil
	})
	if err != nil {
		return r, fmt.Errorf("read validations: %w", err)
	}

	rows, err = q.Query(ctx, `/* indexpilot:cli */
select id::text, target, index_name, coalesce(schema_name || '.' || table_name, ''), state, reason,
       coalesce(definition, ''), dropped_at, restored_at, coalesce(last_error, '')
  from indexpilot.removals
 where ($1 = '' or target = $1) and updated_at >= $2
 order by created_at, id`, target, since)
	if err != nil {
		return r, fmt.Errorf("read removals: %w", err)
	}
	r.Removals, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportRemoval, error) {
		var x ReportRemoval
		err := row.Scan(&x.ID, &x.Target, &x.IndexName, &x.Table, &x.State, &x.Reason, &x.Definition, &x.DroppedAt,
			&x.RestoredAt, &x.LastError)
		return x, err
	})
	if err != nil {
		return r, fmt.Errorf("read removals: %w", err)
	}
	return r, nil
}

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
		verdict := v.Verdict
		if verdict == "" {
			verdict = "pending (" + v.State + ")"
		}
		plan := "unknown"
		if v.PlanUsesIndex != nil {
			plan = map[bool]string{true: "yes", false: "no"}[*v.PlanUsesIndex]
		}
		fmt.Fprintf(w, "### `%s` on %s (%s)\n\nVerdict: **%s**, change %+.1f %% (positive is faster), plan uses the index: %s, reverted: %v.",
			v.IndexName, v.Table, v.Target, verdict, v.ChangePct, plan, v.Reverted)
		if v.Reason != "" {
			fmt.Fprintf(w, " %s.", md(v.Reason))
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

func reportCmd(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON instead of Markdown")
	target := fs.String("target", "", "only this target")
	since := fs.Duration("since", 0, "only what happened in this last duration (e.g. 168h); 0 means everything")
	if err := fs.Parse(args); err != nil {
		return usageError{"report: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("report: unexpected argument %q", fs.Arg(0))}
	}
	if *since < 0 {
		return usageError{"report: --since must not be negative"}
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	from := time.Time{}
	if *since > 0 {
		from = time.Now().Add(-*since)
	}
	r, err := BuildReport(ctx, pool, *target, from)
	if err != nil {
		return err
	}
	if *asJSON {
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
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select target, index_name, coalesce(claimed_by, ''), attempts, progress
  from indexpilot.builds where state = 'running' order by target, index_name`)
	if err != nil {
		return fmt.Errorf("read running builds: %w", err)
	}
	type running struct {
		target, index, by string
		attempts          int
		p                 *struct {
			Table       string   `json:"table"`
			Phase       string   `json:"phase"`
			BlocksDone  int64    `json:"blocks_done"`
			BlocksTotal int64    `json:"blocks_total"`
			TuplesDone  int64    `json:"tuples_done"`
			TuplesTotal int64    `json:"tuples_total"`
			CPUPercent  *float64 `json:"cpu_pct"`
		}
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (running, error) {
		var r running
		err := row.Scan(&r.target, &r.index, &r.by, &r.attempts, &r.p)
		return r, err
	})
	if err != nil {
		return fmt.Errorf("read running builds: %w", err)
	}
	if len(list) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nbuilds running:")
	for _, r := range list {
		line := fmt.Sprintf("  %s %s (attempt %d, %s)", r.target, r.index, r.attempts, r.by)
		if r.p != nil {
			pct := "-"
			switch {
			case r.p.BlocksTotal > 0:
				pct = fmt.Sprintf("%.0f%% of blocks", 100*float64(r.p.BlocksDone)/float64(r.p.BlocksTotal))
			case r.p.TuplesTotal > 0:
				pct = fmt.Sprintf("%.0f%% of tuples", 100*float64(r.p.TuplesDone)/float64(r.p.TuplesTotal))
			}
			line += fmt.Sprintf(": %s on %s, %s", r.p.Phase, r.p.Table, pct)
			if r.p.CPUPercent != nil {
				line += fmt.Sprintf(", cpu %.0f%%", *r.p.CPUPercent)
			}
		}
		fmt.Fprintln(w, line)
	}
	return nil
}
