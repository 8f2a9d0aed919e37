package stage

import (
	"context"
	"slices"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
)

// MetadataBypassed reports whether the startup bypass is configured
// (features.bypass.startup): the process must not touch the metadata
// schema in the control database at all.
func (d Deps) MetadataBypassed() bool { return d.Config.Features.Bypass.Startup }

// WithoutMetadata lists the stages that can run without the metadata
// schema: the collector polls its targets and publishes with no control
// database (no health rows, reload requests or app-stats watermarks).
var WithoutMetadata = map[string]bool{"collector": true}

// Launch starts stage name on d; every runner (Run and the all-in-one
// process) starts stages through it. It puts the configured
// mutation_logging switch in ctx for metadata.AppendLog. Under the startup
// bypass no stage touches the metadata schema: a stage of WithoutMetadata
// runs without the control pool, every other stage is not started — it
// says so in one log line, reports ready and stays idle until ctx ends.
func Launch(ctx context.Context, name string, start StartFunc, d Deps) error {
	ctx = WithConfiguredLogging(ctx, d.Config)
	if !d.MetadataBypassed() {
		return start(ctx, d)
	}
	if WithoutMetadata[name] {
		d.Logger.Warn("startup bypass set: running without the metadata schema (no health rows, reload requests or watermarks kept)")
		d.Control = nil
		return start(ctx, d)
	}
	d.Logger.Warn("startup bypass set: this stage needs the metadata schema and stays idle until the process is restarted without it")
	d.Ready()
	<-ctx.Done()
	return nil
}

// WithConfiguredLogging returns ctx carrying whether cfg leaves the
// mutation_logging feature on (metadata.WithLogging); the run-time switch
// is checked by metadata.AppendLog itself.
func WithConfiguredLogging(ctx context.Context, cfg config.Config) context.Context {
	return metadata.WithLogging(ctx, !slices.Contains(cfg.Features.Bypass.Features, config.FeatureMutationLogging))
}
