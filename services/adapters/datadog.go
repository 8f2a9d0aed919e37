package adapters

import (
	"context"
	"fmt"

	"github.com/DataDog/datadog-go/v5/statsd"

	"github.com/indexpilot/indexpilot/pkg/config"
)

// DatadogSink sends observations over DogStatsD: counters as counts, build
// durations as distributions, gauges as gauges, and builds (and reverts) as
// Datadog events. Names are the namespace ("indexpilot.") plus the catalog
// name; tags are "key:value".
type DatadogSink struct{ c *statsd.Client }

// NewDatadogSink connects to the agent at cfg.Address (UDP is
// connectionless: an absent agent is not an error).
func NewDatadogSink(cfg config.DatadogAdapter) (*DatadogSink, error) {
	c, err := statsd.New(cfg.Address, statsd.WithNamespace(cfg.Namespace), statsd.WithTags(cfg.Tags),
		statsd.WithoutTelemetry(), statsd.WithoutOriginDetection())
	if err != nil {
		return nil, fmt.Errorf("new dogstatsd client: %w", err)
	}
	return &DatadogSink{c: c}, nil
}

func ddTags(tags []Tag) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = t.Key + ":" + t.Value
	}
	return out
}

// Count sends a count.
func (s *DatadogSink) Count(_ context.Context, name string, n int64, tags []Tag) {
	_ = s.c.Count(name, n, ddTags(tags), 1)
}

// Observe sends a distribution point.
func (s *DatadogSink) Observe(_ context.Context, name string, v float64, tags []Tag) {
	_ = s.c.Distribution(name, v, ddTags(tags), 1)
}

// Gauge sends a gauge.
func (s *DatadogSink) Gauge(_ context.Context, name string, v float64, tags []Tag) {
	_ = s.c.Gauge(name, v, ddTags(tags), 1)
}

// Event sends a Datadog event.
func (s *DatadogSink) Event(_ context.Context, title, text, alert string, tags []Tag) {
	e := statsd.NewEvent(title, text)
	e.AlertType = statsd.EventAlertType(alert)
	e.SourceTypeName = "indexpilot"
	e.Tags = ddTags(tags)
	_ = s.c.Event(e)
}

// Close flushes what is buffered and closes the client.
func (s *DatadogSink) Close() error { return s.c.Close() }
