package config

// Adapters settings: the monitoring consumers (Prometheus, Datadog,
// OpenTelemetry).
type Adapters struct{}

func defaultAdapters() Adapters { return Adapters{} }

func (a Adapters) validate(add func(string, ...any)) {}
