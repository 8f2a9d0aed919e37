package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// approveCmd runs `indexpilot approve|reject <id> [--reason R]`.
func approveCmd(ctx context.Context, load func() (config.Config, error), cmd, id, reason string, stdout io.Writer) error {
	if cmd == "reject" && reason == "" {
		return usageError{"reject: --reason is required"}
	}
	if reason == "" {
		reason = "approved from the command line"
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	full, err := decisions.Decide(ctx, pool, cmd, id, actor(), reason, time.Now())
	if err != nil {
		return err
	}
	if cmd == "approve" {
		fmt.Fprintf(stdout, "approved %s: the gatekeeper builds it once its remaining rules pass (mode, emergency stop, window, CPU, rate limits)\n", full)
		return nil
	}
	fmt.Fprintf(stdout, "rejected %s\n", full)
	return nil
}

// printWhy explains, under the recommendations table, why each deferred,
// waiting, held or rejected recommendation is where it is, and for those
// the scorer held back or rejected what an operator can do about it
// (decisions.NextStep, the dashboard's sentence too).
func printWhy(w io.Writer, recs []Recommendation) {
	first := true
	for _, r := range recs {
		if r.Detail == "" || (r.State != "deferred" && r.State != "proposed" && r.State != "rejected" && r.State != "superseded" && r.State != "held") {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nwhy:")
			first = false
		}
		fmt.Fprintf(w, "  %s  %s (%s): %s\n", r.ID[:8], r.State, r.Reason, r.Detail)
		if r.NextStep != "" {
			fmt.Fprintf(w, "            next step: %s\n", r.NextStep)
		}
	}
}
