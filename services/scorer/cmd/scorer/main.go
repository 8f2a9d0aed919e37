// Command scorer runs IndexPilot's scorer stage on its own.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/scorer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(os.Getenv("INDEXPILOT_CONFIG"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scorer:", err)
		os.Exit(2)
	}
	if err := scorer.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "scorer:", err)
		os.Exit(1)
	}
}
