package config

import "time"

// Scorer settings.
type Scorer struct {
	// Interval is how often the workload of a changed target is re-scored.
	Interval time.Duration `yaml:"interval"`
	// Window is how far back the workload reaches.
	Window time.Duration `yaml:"window"`
	// MaxColumns caps the width of multi-column candidates.
	MaxColumns int `yaml:"max_columns"`
	// MaxNewIndexes caps the candidates chosen per target and run.
	MaxNewIndexes int `yaml:"max_new_indexes"`
	// MinCalls ignores statements called fewer times in the window.
	MinCalls int64 `yaml:"min_calls"`
	// FormulaVersion tags every candidate; change it to re-score a replay.
	FormulaVersion string `yaml:"formula_version"`
}

func defaultScorer() Scorer {
	return Scorer{
		Interval: time.Minute, Window: 24 * time.Hour, MaxColumns: 3, MaxNewIndexes: 10,
		MinCalls: 1, FormulaVersion: "v1",
	}
}

func (s Scorer) validate(add func(string, ...any)) {
	positive(add, "scorer.interval", s.Interval)
	positive(add, "scorer.window", s.Window)
	if s.MaxColumns < 1 || s.MaxColumns > 32 {
		add("scorer.max_columns: %d is not in [1, 32]", s.MaxColumns)
	}
	if s.MaxNewIndexes < 1 {
		add("scorer.max_new_indexes: %d must be at least 1", s.MaxNewIndexes)
	}
	if s.FormulaVersion == "" {
		add("scorer.formula_version: empty")
	}
}
