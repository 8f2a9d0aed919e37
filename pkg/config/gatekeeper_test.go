package config

import (
	"strings"
	"testing"
	"time"
)

func TestGatekeeperAndBypassSettings(t *testing.T) {
	cfg, err := Load("", []string{
		"INDEXPILOT_DATABASE_URL=postgres://x@db/app",
		"INDEXPILOT_FEATURES_BYPASS_FEATURES=auto_indexing,index_removal",
		"INDEXPILOT_FEATURES_BYPASS_SYSTEM=true",
		"INDEXPILOT_FEATURES_INDEX_REMOVAL_MODE=apply",
		"INDEXPILOT_GATEKEEPER_CPU_THRESHOLD_PCT=60",
		"INDEXPILOT_GATEKEEPER_MAINTENANCE_WINDOW_START=22:00",
		"INDEXPILOT_GATEKEEPER_MAINTENANCE_WINDOW_END=04:00",
		"INDEXPILOT_GATEKEEPER_MAINTENANCE_WINDOW_DAYS=sat,sun",
		"INDEXPILOT_GATEKEEPER_RATE_LIMIT_TABLE_PER_HOUR=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Features.Bypass.Features; len(got) != 2 || got[1] != "index_removal" || !cfg.Features.Bypass.System {
		t.Fatalf("bypass from env: %+v", cfg.Features.Bypass)
	}
	if cfg.Features.IndexRemoval.Mode != ModeApply || cfg.Gatekeeper.CPU.ThresholdPct != 60 ||
		cfg.Gatekeeper.Window.Start != "22:00" || len(cfg.Gatekeeper.Window.Days) != 2 || cfg.Gatekeeper.RateLimit.Table.PerHour != 1 {
		t.Fatalf("gatekeeper from env: %+v", cfg.Gatekeeper)
	}
	d := Default()
	if d.Features.IndexRemoval.Mode != ModeAdvisory || d.Gatekeeper.CPU.ThresholdPct != 75 || d.Gatekeeper.CPU.Source != CPUSourcePg {
		t.Fatalf("defaults: removal %s, cpu %+v", d.Features.IndexRemoval.Mode, d.Gatekeeper.CPU)
	}
	bad := Default()
	bad.DatabaseURL = "x"
	bad.Features.Bypass.Features = []string{"autoindexing"}
	bad.Features.Bypass.Stages = []string{"planner"}
	bad.Features.IndexRemoval.Mode = "yes"
	bad.Gatekeeper.CPU.Source = "prometheus"
	bad.Gatekeeper.Window = Window{Start: "25:00", End: "", Days: []string{"funday"}, TimeZone: "Mars/Base"}
	bad.Gatekeeper.RateLimit.Target = Bucket{Burst: 0, PerHour: 3}
	bad.Gatekeeper.CPU.Cooldown = -time.Second
	err = bad.Validate()
	if err == nil {
		t.Fatal("invalid settings accepted")
	}
	for _, want := range []string{"features.bypass.features", "features.bypass.stages", "features.index_removal.mode",
		"gatekeeper.cpu.prometheus_url", "gatekeeper.maintenance_window: start and end", "maintenance_window.start",
		"maintenance_window.days", "maintenance_window.time_zone", "gatekeeper.rate_limit.target", "gatekeeper.cpu.cooldown"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
