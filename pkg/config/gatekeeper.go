package config

import (
	"strings"
	"time"
)

// CPU sources of the gatekeeper's throttle.
const (
	CPUSourcePg         = "pg"
	CPUSourcePrometheus = "prometheus"
	CPUSourceLocal      = "local"
	CPUSourceNone       = "none"
)

// Gatekeeper settings: the safety rules applied to every candidate after
// features.auto_indexer decided the mode. docs/gatekeeper.md gives their
// order.
type Gatekeeper struct {
	// RecheckInterval is how often deferred recommendations are evaluated
	// again (and lost approvals published again).
	RecheckInterval time.Duration `yaml:"recheck_interval"`
	CPU             CPUThrottle   `yaml:"cpu"`
	RateLimit       RateLimits    `yaml:"rate_limit"`
	Window          Window        `yaml:"maintenance_window"`
	Storage         Storage       `yaml:"storage"`
	Write           WriteLimits   `yaml:"write"`
	Approval        Approval      `yaml:"approval"`
}

// CPUThrottle defers builds while the database host is busy.
type CPUThrottle struct {
	// Source is pg (the default: pg_read_file('/proc/stat') where
	// permitted, else active backends over Cores), prometheus
	// (PrometheusURL), local (/proc/stat of this host, when co-located with
	// the database) or none (no throttle: only the minimum delay between
	// builds applies).
	Source string `yaml:"source"`
	// ThresholdPct defers builds at or above this CPU use.
	ThresholdPct float64 `yaml:"threshold_pct"`
	// Cooldown is how long CPU must stay below the threshold after an
	// overload before a build is approved.
	Cooldown time.Duration `yaml:"cooldown"`
	// MinDelayBetweenBuilds spaces approvals on one target.
	MinDelayBetweenBuilds time.Duration `yaml:"min_delay_between_builds"`
	// Cores is the database host's core count for the active-backends
	// fallback of the pg source.
	Cores int `yaml:"cores"`
	// PrometheusURL is a full instant-query URL whose first result is the
	// CPU busy percentage, e.g. http://prom:9090/api/v1/query?query=...
	PrometheusURL string `yaml:"prometheus_url"`
	// SampleInterval is the gap between the two /proc/stat reads of one
	// measurement.
	SampleInterval time.Duration `yaml:"sample_interval"`
}

// RateLimits are token buckets, kept in the control database.
type RateLimits struct {
	Target Bucket `yaml:"target"`
	Table  Bucket `yaml:"table"`
}

// Bucket is one token bucket: Burst tokens at most, PerHour added per hour.
// A build costs one token, charged when it is approved. PerHour 0 turns the
// bucket off.
type Bucket struct {
	Burst   float64 `yaml:"burst"`
	PerHour float64 `yaml:"per_hour"`
}

// Window is the maintenance window. Start and End are "HH:MM" in TimeZone;
// End before Start crosses midnight. Days are the days a window starts
// (mon..sun); empty means every day. Start = End = "" means always open.
type Window struct {
	Start    string   `yaml:"start"`
	End      string   `yaml:"end"`
	Days     []string `yaml:"days"`
	TimeZone string   `yaml:"time_zone"`
}

// Storage is the budget for indexes IndexPilot creates on a target.
type Storage struct {
	// MaxMB is an absolute limit (0: none).
	MaxMB float64 `yaml:"max_mb"`
	// MaxPctOfDatabase is a limit relative to the database size (0: none).
	MaxPctOfDatabase float64 `yaml:"max_pct_of_database"`
}

// WriteLimits protect write performance.
type WriteLimits struct {
	// MaxIndexesPerTable counts every index of the table (0: none).
	MaxIndexesPerTable int `yaml:"max_indexes_per_table"`
	// MaxOverheadPct bounds the added write overhead of IndexPilot's
	// indexes on a written table: index entry bytes over row bytes (0: none).
	MaxOverheadPct float64 `yaml:"max_overhead_pct"`
}

// Approval decides which recommendations wait for `indexpilot approve` in
// apply mode.
type Approval struct {
	// AutoApproveMinImprovementPct: a candidate whose best plan-cost cut is
	// below it waits for approval (0: none wait for this reason).
	AutoApproveMinImprovementPct float64 `yaml:"auto_approve_min_improvement_pct"`
	// AutoApproveMaxSizeMB: a candidate estimated larger waits (0: none).
	AutoApproveMaxSizeMB float64 `yaml:"auto_approve_max_size_mb"`
}

func defaultGatekeeper() Gatekeeper {
	return Gatekeeper{
		RecheckInterval: 5 * time.Second,
		CPU: CPUThrottle{Source: CPUSourcePg, ThresholdPct: 75, Cooldown: 30 * time.Second,
			MinDelayBetweenBuilds: 0, Cores: 2, SampleInterval: 250 * time.Millisecond},
		RateLimit: RateLimits{Target: Bucket{Burst: 10, PerHour: 20}, Table: Bucket{Burst: 3, PerHour: 6}},
		Window:    Window{TimeZone: "UTC"},
		Storage:   Storage{MaxPctOfDatabase: 50},
		Write:     WriteLimits{MaxIndexesPerTable: 10, MaxOverheadPct: 300},
	}
}

// WeekDays are the accepted day names of a maintenance window.
var WeekDays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseClock parses "HH:MM" into minutes after midnight.
func ParseClock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

func (g Gatekeeper) validate(add func(string, ...any)) {
	positive(add, "gatekeeper.recheck_interval", g.RecheckInterval)
	c := g.CPU
	switch c.Source {
	case CPUSourcePg, CPUSourceLocal, CPUSourceNone:
	case CPUSourcePrometheus:
		if !strings.HasPrefix(c.PrometheusURL, "http://") && !strings.HasPrefix(c.PrometheusURL, "https://") {
			add("gatekeeper.cpu.prometheus_url: must be an http(s) URL when gatekeeper.cpu.source is prometheus")
		}
	default:
		add("gatekeeper.cpu.source: %q is not pg, prometheus, local or none", c.Source)
	}
	if c.ThresholdPct <= 0 || c.ThresholdPct > 100 {
		add("gatekeeper.cpu.threshold_pct: %v is not in (0, 100]", c.ThresholdPct)
	}
	if c.Cooldown < 0 {
		add("gatekeeper.cpu.cooldown: %s is negative", c.Cooldown)
	}
	if c.MinDelayBetweenBuilds < 0 {
		add("gatekeeper.cpu.min_delay_between_builds: %s is negative", c.MinDelayBetweenBuilds)
	}
	if c.Cores < 1 {
		add("gatekeeper.cpu.cores: %d must be at least 1", c.Cores)
	}
	positive(add, "gatekeeper.cpu.sample_interval", c.SampleInterval)
	for name, b := range map[string]Bucket{"target": g.RateLimit.Target, "table": g.RateLimit.Table} {
		if b.PerHour < 0 || (b.PerHour > 0 && b.Burst < 1) {
			add("gatekeeper.rate_limit.%s: burst must be at least 1 and per_hour not negative", name)
		}
	}
	w := g.Window
	if (w.Start == "") != (w.End == "") {
		add("gatekeeper.maintenance_window: start and end are set together")
	}
	for k, v := range map[string]string{"start": w.Start, "end": w.End} {
		if _, ok := ParseClock(v); v != "" && !ok {
			add("gatekeeper.maintenance_window.%s: %q is not HH:MM", k, v)
		}
	}
	for _, d := range w.Days {
		if !oneOf(strings.ToLower(d), WeekDays) {
			add("gatekeeper.maintenance_window.days: %q is not one of %s", d, strings.Join(WeekDays, ", "))
		}
	}
	if _, err := time.LoadLocation(w.TimeZone); err != nil {
		add("gatekeeper.maintenance_window.time_zone: %q is not a time zone", w.TimeZone)
	}
	if g.Storage.MaxMB < 0 || g.Storage.MaxPctOfDatabase < 0 || g.Storage.MaxPctOfDatabase > 100 {
		add("gatekeeper.storage: max_mb must not be negative and max_pct_of_database must be in [0, 100]")
	}
	if g.Write.MaxIndexesPerTable < 0 || g.Write.MaxOverheadPct < 0 {
		add("gatekeeper.write: limits must not be negative")
	}
	if g.Approval.AutoApproveMinImprovementPct < 0 || g.Approval.AutoApproveMaxSizeMB < 0 {
		add("gatekeeper.approval: thresholds must not be negative")
	}
}
