package config

import (
	"strings"
	"testing"
	"time"
)

func TestScorerTriggerDebounce(t *testing.T) {
	base := []string{"INDEXPILOT_DATABASE_URL=postgres://x/db"}
	cfg, err := Load("", base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scorer.TriggerDebounce != 2*time.Second {
		t.Errorf("default scorer.trigger_debounce = %s, want 2s", cfg.Scorer.TriggerDebounce)
	}
	cfg, err = Load(writeFile(t, "database_url: postgres://x/db\nscorer:\n  trigger_debounce: 0s\n"), nil)
	if err != nil || cfg.Scorer.TriggerDebounce != 0 {
		t.Errorf("trigger_debounce 0 (interval only) = %s, %v", cfg.Scorer.TriggerDebounce, err)
	}
	_, err = Load("", append(base, "INDEXPILOT_SCORER_TRIGGER_DEBOUNCE=-1s"))
	if err == nil || !strings.Contains(err.Error(), "scorer.trigger_debounce: -1s is negative") {
		t.Errorf("a negative debounce must be refused, got %v", err)
	}
}

func TestCollectorActivityThreshold(t *testing.T) {
	base := []string{"INDEXPILOT_DATABASE_URL=postgres://x/db"}
	cfg, err := Load("", base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Collector.ActivityThreshold != time.Second {
		t.Errorf("default collector.activity_threshold = %s, want 1s", cfg.Collector.ActivityThreshold)
	}
	cfg, err = Load("", append(base, "INDEXPILOT_COLLECTOR_ACTIVITY_THRESHOLD=0s"))
	if err != nil || cfg.Collector.ActivityThreshold != 0 {
		t.Errorf("activity_threshold 0 (off) = %s, %v", cfg.Collector.ActivityThreshold, err)
	}
	_, err = Load("", append(base, "INDEXPILOT_COLLECTOR_ACTIVITY_THRESHOLD=-2s"))
	if err == nil || !strings.Contains(err.Error(), "collector.activity_threshold: -2s is negative") {
		t.Errorf("a negative threshold must be refused, got %v", err)
	}
}

func TestScorerForecast(t *testing.T) {
	base := []string{"INDEXPILOT_DATABASE_URL=postgres://x/db"}
	cfg, err := Load("", base)
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Scorer.Forecast
	if !f.Enabled || f.History != 35*24*time.Hour || f.MinPeriods != 3 || f.MinConfidence != 0.75 || f.MinAmplitude != 3 ||
		f.BuildRateMBPerSec != 20 || f.BuildMargin != 30*time.Minute || f.BuildAhead != 6*time.Hour || f.DropAfterPeak {
		t.Errorf("defaults: %+v", f)
	}
	cfg, err = Load(writeFile(t, "database_url: postgres://x/db\nscorer:\n  forecast:\n    drop_after_peak: true\n    build_ahead: 0s\n"),
		[]string{"INDEXPILOT_SCORER_FORECAST_MIN_CONFIDENCE=0.9"})
	if err != nil || !cfg.Scorer.Forecast.DropAfterPeak || cfg.Scorer.Forecast.BuildAhead != 0 || cfg.Scorer.Forecast.MinConfidence != 0.9 {
		t.Errorf("file and environment: %+v, %v", cfg.Scorer.Forecast, err)
	}
	for env, want := range map[string]string{
		"INDEXPILOT_SCORER_FORECAST_MIN_CONFIDENCE=1.5":      "scorer.forecast.min_confidence: 1.5 is not in (0, 1]",
		"INDEXPILOT_SCORER_FORECAST_MIN_PERIODS=1":           "scorer.forecast.min_periods: 1 must be at least 2",
		"INDEXPILOT_SCORER_FORECAST_MIN_AMPLITUDE=0.5":       "scorer.forecast.min_amplitude: 0.5 must be at least 1",
		"INDEXPILOT_SCORER_FORECAST_BUILD_RATE_MB_PER_SEC=0": "scorer.forecast.build_rate_mb_per_sec: 0 must be positive",
		"INDEXPILOT_SCORER_FORECAST_BUILD_MARGIN=-1m":        "scorer.forecast.build_margin: -1m0s is negative",
		"INDEXPILOT_SCORER_FORECAST_BUILD_AHEAD=-1h":         "scorer.forecast.build_ahead: -1h0m0s is negative",
		"INDEXPILOT_SCORER_FORECAST_HISTORY=24h":             "scorer.forecast.history: 24h0m0s is shorter than 72h",
		"INDEXPILOT_SCORER_FORECAST_REFRESH=0s":              "scorer.forecast.refresh: 0s must be positive",
	} {
		_, err := Load("", append(base, env))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", env, want, err)
		}
	}
}
