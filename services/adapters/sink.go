package adapters

import "context"

// Tag is one label of a metric.
type Tag struct{ Key, Value string }

// Sink is where an adapter's observations go. Names are snake_case without
// the "indexpilot" prefix, which each sink adds its own way.
type Sink interface {
	// Count adds n to the counter name.
	Count(ctx context.Context, name string, n int64, tags []Tag)
	// Observe records v (seconds) in the histogram name.
	Observe(ctx context.Context, name string, v float64, tags []Tag)
	// Gauge sets the gauge name.
	Gauge(ctx context.Context, name string, v float64, tags []Tag)
	// Event reports a notable event (a build, a failed build); sinks
	// without events ignore it. alert is "info", "success", "warning" or
	// "error".
	Event(ctx context.Context, title, text, alert string, tags []Tag)
	// Close flushes and releases the sink.
	Close() error
}

// The metric catalog: every name a sink receives, with its kind, labels
// and meaning. docs/monitoring.md lists the same.
const (
	// MetricEventsProduced counts events seen on the stream: type,
	// producer, outcome (the verdict of a decision, built/already_existed/
	// failed/failed_permanent of a build, "observed"/"scored" otherwise).
	MetricEventsProduced = "events_produced"
	// MetricEventsConsumed counts what this adapter consumed: adapter,
	// type, outcome (ok, duplicate).
	MetricEventsConsumed = "events_consumed"
	// MetricCandidates counts candidate events: target, what_if_method.
	MetricCandidates = "candidates"
	// MetricDecisions counts gate verdicts: target, verdict, reason.
	MetricDecisions = "decisions"
	// MetricGateHolds counts throttles and deferrals: target, reason — every
	// decision neither advised nor approved whose reason is not a final
	// rejection (see finalReasons).
	MetricGateHolds = "gate_holds"
	// MetricBuilds counts build outcomes: target, outcome.
	MetricBuilds = "builds"
	// MetricBuildSeconds is the histogram of build durations: target.
	MetricBuildSeconds = "build_duration_seconds"
	// MetricValidations counts the executor's before/after verdicts:
	// target, verdict (improved, no_change, regressed).
	MetricValidations = "validations"
	// MetricReverts counts builds dropped after validation: target, verdict.
	MetricReverts = "reverts"
	// MetricRecommendations is the gauge of recommendations by target and
	// state, read from the control database.
	MetricRecommendations = "recommendations"
	// MetricEventAge is the gauge of the age in seconds of the last event
	// an adapter consumed (now − occurred_at): adapter, type. It is how
	// late the adapter sees events, on any transport.
	MetricEventAge = "event_age_seconds"
	// MetricConsumerLag is the gauge of Kafka consumer lag in messages
	// (high-water mark − committed offset): group, topic, partition. The
	// adapters poll it on the kafka transport only (see PollLag).
	MetricConsumerLag = "consumer_lag_messages"
)
