package cli

import (
	"context"
	"net/http"
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
func runStage(ctx context.Context, cfg config.Config, name string) error {
	tel, err := adapters.Setup(ctx, cfg, name, adapters.SetupOptions{})
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel)
	start := map[string]stage.StartFunc{
		collector.Name: collector.Start, scorer.Name: scorer.Start, gatekeeper.Name: gatekeeper.Start,
		executor.Name: executor.Start, adapters.Name: adapters.Start,
	}[name]
	return stage.RunWith(ctx, cfg, name, start, stage.RunOptions{
		Handlers: map[string]http.Handler{"/metrics": tel.MetricsHandler()},
	})
}

// shutdownTelemetry flushes the spans and metrics still buffered.
func shutdownTelemetry(tel *adapters.Telemetry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx)
}
