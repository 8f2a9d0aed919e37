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
	// TriggerDebounce: new statement deltas of a target also score it, this
	// long after the first of them arrived (so one poll's deltas are
	// scored together), without waiting for Interval. 0 scores on the
	// interval only; a debounce not shorter than Interval changes nothing.
	TriggerDebounce time.Duration `yaml:"trigger_debounce"`
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
	// StorageBudgetMinMB is the floor of the percentage budget in MiB
	// (default 256): a small database's budget is never below it, so a
	// 6 MB index that makes a 50 MB database's hottest query 100× cheaper
	// is not held back by 10 % of 50 MB. 0 disables the floor.
	StorageBudgetMinMB int64 `yaml:"storage_budget_min_mb"`
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
	// Forecast is predictive indexing: recurring peaks found in the
	// retained workload history (docs/scorer.md, "Predictive indexing").
	Forecast Forecast `yaml:"forecast"`
}

// Forecast settings: which statements have a daily or weekly peak, and how
// far ahead of the next one an index for them is built.
type Forecast struct {
	// Enabled looks for recurring peaks (default true).
	Enabled bool `yaml:"enabled"`
	// History is how far back the detector reads workload_stats
	// (default 35 days: five weekly periods).
	History time.Duration `yaml:"history"`
	// Refresh is how long a detection is reused before the history is
	// read again (default 1h).
	Refresh time.Duration `yaml:"refresh"`
	// MinPeriods is the number of observed periods (days, weeks) needed
	// before a period is judged (default 3).
	MinPeriods int `yaml:"min_periods"`
	// MinConfidence is the share of observed periods whose busiest hour
	// must fall on the peak (default 0.75).
	MinConfidence float64 `yaml:"min_confidence"`
	// MinAmplitude is how many times the mean hour the peak hour's load
	// must be (default 3).
	MinAmplitude float64 `yaml:"min_amplitude"`
	// BuildRateMBPerSec is the assumed build rate: the build takes twice
	// the table's size (CREATE INDEX CONCURRENTLY reads it twice) plus the
	// index's, at this many MiB per second (default 20).
	BuildRateMBPerSec float64 `yaml:"build_rate_mb_per_sec"`
	// BuildMargin is added to the estimated build time: the build is to
	// start this much earlier than strictly needed (default 30m).
	BuildMargin time.Duration `yaml:"build_margin"`
	// BuildAhead is how long before the build-by time the gatekeeper may
	// approve the build (default 6h): the room left for the CPU throttle
	// and the rate limits.
	BuildAhead time.Duration `yaml:"build_ahead"`
	// DropAfterPeak also proposes, in the evidence, to drop the index
	// after the peak when the writes between two peaks cost more than
	// building it again (default false).
	DropAfterPeak bool `yaml:"drop_after_peak"`
}

func defaultScorer() Scorer {
	return Scorer{
		Interval: time.Minute, TriggerDebounce: 2 * time.Second, Window: 24 * time.Hour, MaxColumns: 3, MaxNewIndexes: 10,
		MaxIndexesPerTable: 3, MinCalls: 1, FormulaVersion: "v2",
		StorageBudgetPct: 10, StorageBudgetMinMB: 256, MaxRegressionPct: 10, BuildAmortization: 7 * 24 * time.Hour,
		UnusedRetention: 35 * 24 * time.Hour,
		Forecast: Forecast{
			Enabled: true, History: 35 * 24 * time.Hour, Refresh: time.Hour, MinPeriods: 3, MinConfidence: 0.75,
			MinAmplitude: 3, BuildRateMBPerSec: 20, BuildMargin: 30 * time.Minute, BuildAhead: 6 * time.Hour,
		},
	}
}

func (s Scorer) validate(add func(string, ...any)) {
	positive(add, "scorer.interval", s.Interval)
	if s.TriggerDebounce < 0 {
		add("scorer.trigger_debounce: %s is negative (0 scores on scorer.interval only)", s.TriggerDebounce)
	}
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
	if s.StorageBudgetMinMB < 0 {
		add("scorer.storage_budget_min_mb: %d is negative", s.StorageBudgetMinMB)
	}
	if s.MaxRegressionPct < 0 {
		add("scorer.max_regression_pct: %g is negative", s.MaxRegressionPct)
	}
	s.Forecast.validate(add)
}

func (f Forecast) validate(add func(string, ...any)) {
	positive(add, "scorer.forecast.history", f.History)
	positive(add, "scorer.forecast.refresh", f.Refresh)
	if f.History > 0 && f.History < 3*24*time.Hour {
		add("scorer.forecast.history: %s is shorter than 72h (three days: the least a daily peak is judged on)", f.History)
	}
	if f.MinPeriods < 2 {
		add("scorer.forecast.min_periods: %d must be at least 2", f.MinPeriods)
	}
	if f.MinConfidence <= 0 || f.MinConfidence > 1 {
		add("scorer.forecast.min_confidence: %g is not in (0, 1]", f.MinConfidence)
	}
	if f.MinAmplitude < 1 {
		add("scorer.forecast.min_amplitude: %g must be at least 1", f.MinAmplitude)
	}
	if f.BuildRateMBPerSec <= 0 {
		add("scorer.forecast.build_rate_mb_per_sec: %g must be positive", f.BuildRateMBPerSec)
	}
	if f.BuildMargin < 0 {
		add("scorer.forecast.build_margin: %s is negative", f.BuildMargin)
	}
	if f.BuildAhead < 0 {
		add("scorer.forecast.build_ahead: %s is negative", f.BuildAhead)
	}
}
