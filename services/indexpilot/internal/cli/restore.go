package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
)

// restoreCmd is `indexpilot restore <removal-id>`: recreate an index the
// executor removed, from its recorded definition, concurrently.
func restoreCmd(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{"restore: " + err.Error()}
	}
	if fs.NArg() != 1 {
		return usageError{"restore: want exactly one removal id (or a unique prefix of it)"}
	}
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	targets := stage.NewTargets(cfg.Targets, "cli")
	defer targets.Close()
	res, err := executor.Restore(ctx, pool, targets, cfg.Executor, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.AlreadyExisted {
		fmt.Fprintf(stdout, "index %s already exists on %s; removal %s marked restored\n", res.IndexName, res.Target, res.RemovalID[:8])
		return nil
	}
	fmt.Fprintf(stdout, "restored %s on %s: %s\n", res.IndexName, res.Target, res.DDL)
	return nil
}
