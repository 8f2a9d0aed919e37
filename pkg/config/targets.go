package config

import (
	"regexp"
	"time"
)

// App-stats modes of a target (Target.AppStats): how the collector reads
// the target's app-fed indexpilot.query_stats table.
const (
	// AppStatsAuto streams the table by logical replication when wal_level
	// is logical and its publication exists, polls it with a watermark
	// otherwise, and waits while the table does not exist.
	AppStatsAuto = "auto"
	// AppStatsOff never reads the table.
	AppStatsOff = "off"
	// AppStatsReplication insists on logical replication: the target's
	// app stats are reported failing while streaming is not possible.
	AppStatsReplication = "replication"
	// AppStatsPoll always polls the table with a watermark.
	AppStatsPoll = "poll"
)

// Target is one database being watched and indexed. Name is stable: it is
// the Kafka partition key and appears in every event and row about it.
//
// The optional fields override the collector's settings for this target
// only; their zero value means "use the collector's".
type Target struct {
	Name string `yaml:"name"`
	DSN  string `yaml:"dsn" secret:"true"`
	// Interval overrides collector.interval for this target.
	Interval time.Duration `yaml:"interval,omitempty"`
	// QueryTimeout overrides collector.query_timeout for this target.
	QueryTimeout time.Duration `yaml:"query_timeout,omitempty"`
	// AppStats is auto (the default when empty), off, replication or poll;
	// see the AppStats* constants.
	AppStats string `yaml:"app_stats,omitempty"`
}

// AppStatsMode is t.AppStats, or AppStatsAuto when it is empty.
func (t Target) AppStatsMode() string {
	if t.AppStats == "" {
		return AppStatsAuto
	}
	return t.AppStats
}

// Effective returns the collector settings for target t: c with t's
// overrides applied.
func (c Collector) Effective(t Target) Collector {
	out := c
	if t.Interval > 0 {
		out.Interval = t.Interval
	}
	if t.QueryTimeout > 0 {
		out.QueryTimeout = t.QueryTimeout
	}
	return out
}

var targetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c Config) validateTargets(add func(string, ...any)) {
	seen := map[string]bool{}
	for i, t := range c.Targets {
		if !targetName.MatchString(t.Name) {
			add("targets[%d].name: %q must match %s", i, t.Name, targetName)
		}
		if seen[t.Name] {
			add("targets[%d].name: %q is listed twice", i, t.Name)
		}
		seen[t.Name] = true
		if t.DSN == "" {
			add("targets[%d].dsn: not set", i)
		}
		if t.Interval < 0 {
			add("targets[%d].interval: %s must not be negative", i, t.Interval)
		}
		if t.QueryTimeout < 0 {
			add("targets[%d].query_timeout: %s must not be negative", i, t.QueryTimeout)
		}
		switch t.AppStats {
		case "", AppStatsAuto, AppStatsOff, AppStatsReplication, AppStatsPoll:
		default:
			add("targets[%d].app_stats: %q is not auto, off, replication or poll", i, t.AppStats)
		}
	}
}
