package config

// Features holds the feature switches.
type Features struct {
	AutoIndexer AutoIndexer `yaml:"auto_indexer"`
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

func defaultFeatures() Features {
	return Features{AutoIndexer: AutoIndexer{Mode: ModeAdvisory, MinImprovementPct: 20}}
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
}
