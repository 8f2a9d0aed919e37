package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
)

// restoreCmd is `indexpilot restore <removal-id>`: recreate an index the
// executor removed, from its recorded definition, concurrently.
func restoreCmd(ctx context.Context, load func() (config.Config, error), id string, asJSON bool, stdout io.Writer) error {
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	targets := stage.NewTargets(cfg.Targets, "cli")
	defer targets.Close()
	res, err := executor.Restore(ctx, pool, targets, cfg.Executor, id)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.AlreadyExisted {
		fmt.Fprintf(stdout, "index %s already exists on %s; removal %s marked restored\n", res.IndexName, res.Target, res.RemovalID[:8])
		return nil
	}
	fmt.Fprintf(stdout, "restored %s on %s: %s\n", res.IndexName, res.Target, res.DDL)
	return nil
}
