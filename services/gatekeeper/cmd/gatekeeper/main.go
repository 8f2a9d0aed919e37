// Command gatekeeper runs IndexPilot's gatekeeper stage on its own.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(os.Getenv("INDEXPILOT_CONFIG"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatekeeper:", err)
		os.Exit(2)
	}
	if err := gatekeeper.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gatekeeper:", err)
		os.Exit(1)
	}
}
