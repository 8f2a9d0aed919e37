package adapters

import (
	"context"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Telemetry is a process's OpenTelemetry SDK (telemetry.SDK): the one
// set-up every IndexPilot process shares lives in pkg/telemetry.
type Telemetry = telemetry.SDK

// SetupOptions tune Setup (telemetry.SetupOptions).
type SetupOptions = telemetry.SetupOptions

// Setup is telemetry.Setup: the SDK of process service from cfg.Adapters,
// installed as the global providers unless opts.NoGlobal.
func Setup(ctx context.Context, cfg config.Config, service string, opts SetupOptions) (*Telemetry, error) {
	return telemetry.Setup(ctx, cfg, service, opts)
}
