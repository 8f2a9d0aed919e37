// Package adapters holds the monitoring consumers: each subscribes to every
// event topic in its own consumer group, like any other stage, and turns
// the stream into metrics — Prometheus (/metrics, through the OpenTelemetry
// SDK and its Prometheus exporter, which OTLP can export too) and Datadog
// (DogStatsD, plus Datadog events for builds). On the kafka transport they
// also poll the consumer groups' offset lag (PollLag). The OpenTelemetry
// SDK of a process (the Prometheus reader, and the OTLP/HTTP trace and
// metric exporters when configured) is built by telemetry.Setup, which
// Setup here forwards to.
//
// Run them in the all-in-one process (indexpilot run, when an adapter is
// enabled) or on their own (cmd/adapters).
package adapters
