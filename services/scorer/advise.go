package scorer

import (
	"context"
	"log/slog"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Advise runs one scoring pass (Score) over target on a workload read by
// the caller, with no control database and no bus (`indexpilot advise`):
// the statements and table statistics are exactly r's, the genome is the
// configured scorer.schema_config only, and no removal is proposed (that
// needs the index usage the pipeline stores). Nothing is written anywhere;
// in the target it only plans, with HypoPG's session-local hypothetical
// indexes when HypoPG is installed, else with the pg_stats model.
func Advise(ctx context.Context, cfg config.Config, targets *stage.Targets, target string, r *Retained, opts Options,
	logger *slog.Logger) (*Report, error) {
	s := &Scorer{
		deps:    stage.Deps{Config: cfg, Targets: targets, Logger: logger},
		bp:      bypass.NewState(cfg.Features.Bypass, nil),
		metrics: newInstruments(nil),
		dirty:   map[string]bool{}, removalsDirty: map[string]bool{}, sentRemovals: map[string]map[string]bool{},
	}
	opts.Retained = r
	return s.Score(ctx, target, opts)
}
