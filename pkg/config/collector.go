package config

import "time"

// Collector settings.
type Collector struct {
	Interval time.Duration `yaml:"interval"`
	// QueryTimeout bounds each statistics query on a target.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

func defaultCollector() Collector {
	return Collector{Interval: 30 * time.Second, QueryTimeout: 10 * time.Second}
}

func (c Collector) validate(add func(string, ...any)) {
	positive(add, "collector.interval", c.Interval)
	positive(add, "collector.query_timeout", c.QueryTimeout)
}
