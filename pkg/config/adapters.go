package config

import (
	"net"
	"strings"
	"time"
)

// Adapters settings: the process's health and metrics listener and the
// monitoring consumers (Prometheus, Datadog, OpenTelemetry). Everything is
// off by default.
type Adapters struct {
	// Listen is the HTTP address of this process's /healthz, /readyz and,
	// where a Prometheus exporter runs, /metrics (e.g. ":9464"); "" means no
	// listener. INDEXPILOT_ADAPTERS_LISTEN.
	Listen     string            `yaml:"listen"`
	Prometheus PrometheusAdapter `yaml:"prometheus"`
	Datadog    DatadogAdapter    `yaml:"datadog"`
	OTLP       OTLPAdapter       `yaml:"otlp"`
	// Tracing controls the spans the stages create around every message.
	Tracing Tracing `yaml:"tracing"`
	// HealthInterval is how often the adapters read the health gauges
	// (mutation_log size, recent failed builds and reverts, poll age, the
	// bypass) from the control database; default one minute.
	HealthInterval time.Duration `yaml:"health_interval"`
}

// PrometheusAdapter is the consumer that turns the event stream into
// Prometheus series on /metrics of Adapters.Listen.
type PrometheusAdapter struct {
	Enabled bool `yaml:"enabled"`
	// StateInterval is how often recommendations by state are read from
	// the control database.
	StateInterval time.Duration `yaml:"state_interval"`
}

// DatadogAdapter is the consumer that sends the same metrics over
// DogStatsD, plus Datadog events for builds and reverts.
type DatadogAdapter struct {
	Enabled bool `yaml:"enabled"`
	// Address of the agent: "host:port" (UDP) or "unix:///path/dsd.socket".
	Address string `yaml:"address"`
	// Namespace prefixes every metric name (default "indexpilot.").
	Namespace string `yaml:"namespace"`
	// Tags are added to every metric ("env:prod").
	Tags []string `yaml:"tags"`
	// StateInterval is how often recommendations by state are read from
	// the control database.
	StateInterval time.Duration `yaml:"state_interval"`
}

// OTLPAdapter exports traces and metrics over OTLP/HTTP.
type OTLPAdapter struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint is the collector's "host:port" (default "localhost:4318").
	Endpoint string `yaml:"endpoint"`
	// Insecure sends plain HTTP instead of HTTPS.
	Insecure bool `yaml:"insecure"`
	Traces   bool `yaml:"traces"`
	Metrics  bool `yaml:"metrics"`
	// MetricInterval is the metric export period.
	MetricInterval time.Duration `yaml:"metric_interval"`
}

// Tracing settings.
type Tracing struct {
	// SampleRatio is the share of new traces kept (0..1); a trace started
	// upstream keeps its parent's decision.
	SampleRatio float64 `yaml:"sample_ratio"`
}

func defaultAdapters() Adapters {
	return Adapters{
		Prometheus:     PrometheusAdapter{StateInterval: time.Minute},
		Datadog:        DatadogAdapter{Address: "127.0.0.1:8125", Namespace: "indexpilot.", StateInterval: time.Minute},
		OTLP:           OTLPAdapter{Endpoint: "localhost:4318", Traces: true, Metrics: true, MetricInterval: 30 * time.Second},
		Tracing:        Tracing{SampleRatio: 1},
		HealthInterval: time.Minute,
	}
}

func (a Adapters) validate(add func(string, ...any)) {
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			add("adapters.listen: %q is not host:port", a.Listen)
		}
	}
	if a.Prometheus.Enabled {
		positive(add, "adapters.prometheus.state_interval", a.Prometheus.StateInterval)
		if a.Listen == "" {
			add("adapters.listen: empty while adapters.prometheus is enabled (it serves /metrics)")
		}
	}
	if a.Datadog.Enabled {
		positive(add, "adapters.datadog.state_interval", a.Datadog.StateInterval)
		if addr := a.Datadog.Address; !strings.HasPrefix(addr, "unix://") {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				add("adapters.datadog.address: %q is not host:port or unix:///path", addr)
			}
		}
	}
	if a.OTLP.Enabled {
		if _, _, err := net.SplitHostPort(a.OTLP.Endpoint); err != nil || strings.Contains(a.OTLP.Endpoint, "/") {
			add("adapters.otlp.endpoint: %q is not host:port", a.OTLP.Endpoint)
		}
		if a.OTLP.Metrics {
			positive(add, "adapters.otlp.metric_interval", a.OTLP.MetricInterval)
		}
	}
	if a.Prometheus.Enabled || a.Datadog.Enabled || (a.OTLP.Enabled && a.OTLP.Metrics) {
		positive(add, "adapters.health_interval", a.HealthInterval)
	}
	if a.Tracing.SampleRatio < 0 || a.Tracing.SampleRatio > 1 {
		add("adapters.tracing.sample_ratio: %g must be in [0, 1]", a.Tracing.SampleRatio)
	}
}

// Enabled reports whether any monitoring consumer is enabled.
func (a Adapters) Enabled() bool { return a.Prometheus.Enabled || a.Datadog.Enabled }
