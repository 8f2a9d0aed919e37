package config

import (
	"strings"
	"time"
)

// Features holds the feature switches.
type Features struct {
	AutoIndexer  AutoIndexer  `yaml:"auto_indexer"`
	IndexRemoval IndexRemoval `yaml:"index_removal"`
	// Bypass is the configured part of the 4-level bypass (feature, stage,
	// system, startup); run-time changes are layered over it by pkg/bypass.
	Bypass Bypass `yaml:"bypass"`
}

// AutoIndexer governs index creation.
type AutoIndexer struct {
	// Mode is "advisory" (record recommendations, run no DDL; the default)
	// or "apply" (build approved indexes).
	Mode string `yaml:"mode"`
	// MinImprovementPct is the plan-cost cut a candidate must give at least
	// one statement to be proposed.
	MinImprovementPct float64 `yaml:"min_improvement_pct"`
}

// IndexRemoval governs dropping indexes the scorer proposes to remove. Its
// mode is separate from creation's and advisory by default.
type IndexRemoval struct {
	// Mode is "advisory" (record, drop nothing; the default) or "apply".
	Mode string `yaml:"mode"`
}

// Bypass feature names (level "feature").
const (
	FeatureAutoIndexing     = "auto_indexing"
	FeatureIndexRemoval     = "index_removal"
	FeatureStatsCollection  = "stats_collection"
	FeatureExpressionChecks = "expression_checks"
	FeatureMutationLogging  = "mutation_logging"
)

// BypassFeatures lists the feature names the bypass knows.
var BypassFeatures = []string{FeatureAutoIndexing, FeatureIndexRemoval, FeatureStatsCollection,
	FeatureExpressionChecks, FeatureMutationLogging}

// BypassStages lists the stage names the bypass can pause.
var BypassStages = []string{"collector", "scorer", "gatekeeper", "executor"}

// Bypass is the bypass as configured (file, then INDEXPILOT_FEATURES_BYPASS_*
// variables). Any level that disables wins, here or at run time.
type Bypass struct {
	// Features lists disabled features (INDEXPILOT_FEATURES_BYPASS_FEATURES=
	// auto_indexing,index_removal).
	Features []string `yaml:"features"`
	// Stages lists paused stages.
	Stages []string `yaml:"stages"`
	// System turns everything off: no DDL, no what-if load on targets.
	System bool `yaml:"system"`
	// Startup starts the process without touching the metadata schema (no
	// migration, no bypass_state read).
	Startup bool `yaml:"startup"`
	// Reason is shown by `indexpilot bypass show` for the configured levels.
	Reason string `yaml:"reason"`
	// RefreshInterval is how often a running instance re-reads the
	// persisted bypass state, in case it missed a control event, and ends
	// expired emergency stops.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
}

func defaultFeatures() Features {
	return Features{
		AutoIndexer:  AutoIndexer{Mode: ModeAdvisory, MinImprovementPct: 20},
		IndexRemoval: IndexRemoval{Mode: ModeAdvisory},
		Bypass:       Bypass{RefreshInterval: 5 * time.Second},
	}
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

func (f Features) validate(add func(string, ...any)) {
	switch f.AutoIndexer.Mode {
	case ModeAdvisory, ModeApply:
	default:
		add("features.auto_indexer.mode: %q is not advisory or apply", f.AutoIndexer.Mode)
	}
	if p := f.AutoIndexer.MinImprovementPct; p <= 0 || p > 100 {
		add("features.auto_indexer.min_improvement_pct: %v is not in (0, 100]", p)
	}
	switch f.IndexRemoval.Mode {
	case ModeAdvisory, ModeApply:
	default:
		add("features.index_removal.mode: %q is not advisory or apply", f.IndexRemoval.Mode)
	}
	for _, n := range f.Bypass.Features {
		if !oneOf(n, BypassFeatures) {
			add("features.bypass.features: %q is not one of %s", n, strings.Join(BypassFeatures, ", "))
		}
	}
	for _, n := range f.Bypass.Stages {
		if !oneOf(n, BypassStages) {
			add("features.bypass.stages: %q is not one of %s", n, strings.Join(BypassStages, ", "))
		}
	}
	positive(add, "features.bypass.refresh_interval", f.Bypass.RefreshInterval)
}
