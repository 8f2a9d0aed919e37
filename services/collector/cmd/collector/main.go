// Command collector runs the collector stage on its own: it polls the
// configured targets' statistics and publishes them on the bus.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/collector"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(os.Getenv("INDEXPILOT_CONFIG"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "collector:", err)
		return 1
	}
	if err := collector.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "collector:", err)
		return 1
	}
	return 0
}
