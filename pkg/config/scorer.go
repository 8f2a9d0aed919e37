package config

import (
	"slices"
	"time"
)

// ScorerFormulas are the scoring formulas the scorer implements, oldest
// first. "v1" is the foundation's: calls-weighted plan-cost saving only.
// "v2" also charges write overhead and an amortized build cost, and applies
// the storage budget, the per-table cap and the regression guard. A replay
// can re-score the same workload with either (indexpilot replay --formula).
var ScorerFormulas = []string{"v1", "v2"}

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
	// MaxIndexesPerTable caps the candidates chosen per table and run.
	MaxIndexesPerTable int `yaml:"max_indexes_per_table"`
	// MinCalls ignores statements called fewer times in the window.
	MinCalls int64 `yaml:"min_calls"`
	// FormulaVersion selects the scoring formula (one of ScorerFormulas)
	// and tags every candidate; change it to re-score a replay.
	FormulaVersion string `yaml:"formula_version"`
	// StorageBudgetPct caps the estimated size of the indexes chosen in one
	// run as a percentage of the target database's size (default 10).
	StorageBudgetPct float64 `yaml:"storage_budget_pct"`
	// StorageBudgetMB, when above 0, is an absolute cap in MiB used instead
	// of StorageBudgetPct.
	StorageBudgetMB int64 `yaml:"storage_budget_mb"`
	// MaxRegressionPct is the regression guard: a candidate that raises
	// any statement's plan cost by more than this percentage is never
	// chosen (default 10).
	MaxRegressionPct float64 `yaml:"max_regression_pct"`
	// BuildAmortization is the period over which an index's build cost is
	// spread; the part charged to one scoring window is window/period.
	BuildAmortization time.Duration `yaml:"build_amortization"`
	// UnusedRetention is how long an index must go without a scan before
	// a removal is proposed (default 35 days).
	UnusedRetention time.Duration `yaml:"unused_retention"`
	// RemoveUserIndexes also proposes removing unused indexes IndexPilot
	// did not create (default false: only ip_ indexes).
	RemoveUserIndexes bool `yaml:"remove_user_indexes"`
	// SchemaConfig is the path of schema_config.yaml (genome overrides and
	// the tenant column); "" for none.
	SchemaConfig string `yaml:"schema_config"`
}

func defaultScorer() Scorer {
	return Scorer{
		Interval: time.Minute, Window: 24 * time.Hour, MaxColumns: 3, MaxNewIndexes: 10,
		MaxIndexesPerTable: 3, MinCalls: 1, FormulaVersion: "v2",
		StorageBudgetPct: 10, MaxRegressionPct: 10, BuildAmortization: 7 * 24 * time.Hour,
		UnusedRetention: 35 * 24 * time.Hour,
	}
}

func (s Scorer) validate(add func(string, ...any)) {
	positive(add, "scorer.interval", s.Interval)
	positive(add, "scorer.window", s.Window)
	positive(add, "scorer.build_amortization", s.BuildAmortization)
	positive(add, "scorer.unused_retention", s.UnusedRetention)
	if s.MaxColumns < 1 || s.MaxColumns > 32 {
		add("scorer.max_columns: %d is not in [1, 32]", s.MaxColumns)
	}
	if s.MaxNewIndexes < 1 {
		add("scorer.max_new_indexes: %d must be at least 1", s.MaxNewIndexes)
	}
	if s.MaxIndexesPerTable < 1 {
		add("scorer.max_indexes_per_table: %d must be at least 1", s.MaxIndexesPerTable)
	}
	if s.FormulaVersion == "" {
		add("scorer.formula_version: empty")
	} else if !slices.Contains(ScorerFormulas, s.FormulaVersion) {
		add("scorer.formula_version: %q is not one of %v", s.FormulaVersion, ScorerFormulas)
	}
	if s.StorageBudgetPct <= 0 || s.StorageBudgetPct > 100 {
		add("scorer.storage_budget_pct: %g is not in (0, 100]", s.StorageBudgetPct)
	}
	if s.StorageBudgetMB < 0 {
		add("scorer.storage_budget_mb: %d is negative", s.StorageBudgetMB)
	}
	if s.MaxRegressionPct < 0 {
		add("scorer.max_regression_pct: %g is negative", s.MaxRegressionPct)
	}
}
