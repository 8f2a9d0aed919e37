package cli

import (
	"context"
	"time"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// runStage runs one stage (or the adapters) on its own with the process's
// telemetry: OTLP traces and metrics when configured, and /metrics next to
// /healthz and /readyz on adapters.listen.
// It is what the stand-alone stage binaries run (stage.RunTelemetry).
func runStage(ctx context.Context, cfg config.Config, name string) error {
	start := map[string]stage.StartFunc{
		collector.Name: collector.Start, scorer.Name: scorer.Start, gatekeeper.Name: gatekeeper.Start,
		executor.Name: executor.Start, adapters.Name: adapters.Start,
	}[name]
	return stage.RunTelemetry(ctx, cfg, name, start, stage.RunOptions{})
}

// shutdownTelemetry flushes the spans and metrics still buffered.
func shutdownTelemetry(tel *adapters.Telemetry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx)
}
