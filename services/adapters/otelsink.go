package adapters

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// OTelSink records observations as OpenTelemetry instruments of one meter
// provider: the Prometheus exporter serves them on /metrics and the OTLP
// exporter, when enabled, sends them. Names get the prefix "indexpilot_";
// counters appear in Prometheus with "_total".
type OTelSink struct {
	meter metric.Meter

	mu     sync.Mutex
	counts map[string]metric.Int64Counter
	hists  map[string]metric.Float64Histogram
	gauges map[string]metric.Float64Gauge
}

// buildBuckets are the build-duration histogram's bounds in seconds: from
// a sub-second build on a small table to an hour on a large one.
var buildBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// NewOTelSink returns a sink on mp.
func NewOTelSink(mp metric.MeterProvider) *OTelSink {
	return &OTelSink{
		meter:  mp.Meter("github.com/indexpilot/indexpilot/services/adapters"),
		counts: map[string]metric.Int64Counter{}, hists: map[string]metric.Float64Histogram{},
		gauges: map[string]metric.Float64Gauge{},
	}
}

func attrs(tags []Tag) metric.MeasurementOption {
	kv := make([]attribute.KeyValue, len(tags))
	for i, t := range tags {
		kv[i] = attribute.String(t.Key, t.Value)
	}
	return metric.WithAttributes(kv...)
}

// Count adds n to the counter indexpilot_<name>.
func (s *OTelSink) Count(ctx context.Context, name string, n int64, tags []Tag) {
	s.mu.Lock()
	c, ok := s.counts[name]
	if !ok {
		c, _ = s.meter.Int64Counter("indexpilot_" + name)
		s.counts[name] = c
	}
	s.mu.Unlock()
	c.Add(ctx, n, attrs(tags))
}

// Observe records v in the histogram indexpilot_<name>.
func (s *OTelSink) Observe(ctx context.Context, name string, v float64, tags []Tag) {
	s.mu.Lock()
	h, ok := s.hists[name]
	if !ok {
		h, _ = s.meter.Float64Histogram("indexpilot_"+name, metric.WithExplicitBucketBoundaries(buildBuckets...))
		s.hists[name] = h
	}
	s.mu.Unlock()
	h.Record(ctx, v, attrs(tags))
}

// Gauge sets the gauge indexpilot_<name>.
func (s *OTelSink) Gauge(ctx context.Context, name string, v float64, tags []Tag) {
	s.mu.Lock()
	g, ok := s.gauges[name]
	if !ok {
		g, _ = s.meter.Float64Gauge("indexpilot_" + name)
		s.gauges[name] = g
	}
	s.mu.Unlock()
	g.Record(ctx, v, attrs(tags))
}

// Event is not a metric: ignored.
func (s *OTelSink) Event(context.Context, string, string, string, []Tag) {}

// Close does nothing: the provider is shut down by its owner.
func (s *OTelSink) Close() error { return nil }
