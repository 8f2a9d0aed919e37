package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// approveCmd runs `indexpilot approve|reject <id> [--reason R]`.
func approveCmd(ctx context.Context, load func() (config.Config, error), cmd string, args []string, stdout io.Writer) error {
	var id string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reason := fs.String("reason", "", "why (recorded in mutation_log; required for reject)")
	if err := fs.Parse(args); err != nil {
		return usageError{cmd + ": " + err.Error()}
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(0))}
	}
	if id == "" {
		return usageError{cmd + ": missing recommendation id"}
	}
	if cmd == "reject" && *reason == "" {
		return usageError{"reject: --reason is required"}
	}
	if *reason == "" {
		*reason = "approved from the command line"
	}
	_, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cmd == "approve" {
		full, err := gatekeeper.Approve(ctx, pool, id, actor(), *reason, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "approved %s: the gatekeeper builds it once its remaining rules pass (mode, emergency stop, window, CPU, rate limits)\n", full)
		return nil
	}
	full, err := gatekeeper.Reject(ctx, pool, id, actor(), *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rejected %s\n", full)
	return nil
}

// printWhy explains, under the recommendations table, why each deferred,
// waiting or rejected recommendation is where it is.
func printWhy(w io.Writer, recs []Recommendation) {
	first := true
	for _, r := range recs {
		if r.Detail == "" || (r.State != "deferred" && r.State != "proposed" && r.State != "rejected" && r.State != "superseded") {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nwhy:")
			first = false
		}
		fmt.Fprintf(w, "  %s  %s (%s): %s\n", r.ID[:8], r.State, r.Reason, r.Detail)
	}
}
