package config

import "time"

// Collector settings.
type Collector struct {
	Interval time.Duration `yaml:"interval"`
	// QueryTimeout bounds each statistics query on a target.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// ReloadCheckInterval is how often a running collector looks in the
	// control database for a reload request (`indexpilot reload`).
	ReloadCheckInterval time.Duration `yaml:"reload_check_interval"`
	// AppStatsPollInterval is how often indexpilot.query_stats is read when
	// it is polled (wal_level not logical, or app_stats: poll), and the
	// first wait before a broken replication stream is retried.
	AppStatsPollInterval time.Duration `yaml:"app_stats_poll_interval"`
	// ActivityThreshold: each poll also samples the target's statements
	// that have run at least this long in pg_stat_activity, so that
	// statements that never finish (cancelled, timed out) still become
	// workload. 0 turns the sampling off.
	ActivityThreshold time.Duration `yaml:"activity_threshold"`
}

func defaultCollector() Collector {
	return Collector{
		Interval:             30 * time.Second,
		QueryTimeout:         10 * time.Second,
		ReloadCheckInterval:  5 * time.Second,
		AppStatsPollInterval: 5 * time.Second,
		ActivityThreshold:    time.Second,
	}
}

func (c Collector) validate(add func(string, ...any)) {
	positive(add, "collector.interval", c.Interval)
	positive(add, "collector.query_timeout", c.QueryTimeout)
	positive(add, "collector.reload_check_interval", c.ReloadCheckInterval)
	positive(add, "collector.app_stats_poll_interval", c.AppStatsPollInterval)
	if c.ActivityThreshold < 0 {
		add("collector.activity_threshold: %s is negative (0 turns the sampling off)", c.ActivityThreshold)
	}
}
