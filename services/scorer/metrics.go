package scorer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Names of the scorer's own metrics. The Prometheus exporter adds
// "_total" to counters: indexpilot_scorer_whatif_calls_total, ...
const (
	// MetricWhatIfCalls counts planner evaluations (what-if cache misses
	// that reached the planner), by target and what-if method.
	MetricWhatIfCalls = "indexpilot_scorer_whatif_calls"
	// MetricWhatIfCacheHits counts what-if answers served by the cache.
	MetricWhatIfCacheHits = "indexpilot_scorer_whatif_cache_hits"
	// MetricWhatIfCacheMisses counts what-if look-ups the cache missed.
	MetricWhatIfCacheMisses = "indexpilot_scorer_whatif_cache_misses"
	// MetricScoringSkipped counts scoring rounds skipped because the
	// bypass pauses the scorer (stage level) or the whole system.
	MetricScoringSkipped = "indexpilot_scorer_rounds_skipped"
)

// instruments are the scorer's counters.
type instruments struct {
	calls, hits, misses, skipped metric.Int64Counter
}

// newInstruments creates the counters on mp, or on the global meter
// provider (telemetry.Meter) when mp is nil. With no SDK installed they
// are no-ops.
func newInstruments(mp metric.MeterProvider) instruments {
	var m metric.Meter
	if mp == nil {
		m = telemetry.Meter()
	} else {
		m = mp.Meter(telemetry.ScopeName)
	}
	calls, _ := m.Int64Counter(MetricWhatIfCalls,
		metric.WithDescription("What-if planner evaluations (cache misses), by target and what-if method."),
		metric.WithUnit("{call}"))
	hits, _ := m.Int64Counter(MetricWhatIfCacheHits,
		metric.WithDescription("What-if answers served by the scorer's cache, by target and what-if method."),
		metric.WithUnit("{call}"))
	misses, _ := m.Int64Counter(MetricWhatIfCacheMisses,
		metric.WithDescription("What-if look-ups the scorer's cache missed, by target and what-if method."),
		metric.WithUnit("{call}"))
	skipped, _ := m.Int64Counter(MetricScoringSkipped,
		metric.WithDescription("Scoring rounds skipped while the bypass pauses the scorer, by level."),
		metric.WithUnit("{round}"))
	return instruments{calls: calls, hits: hits, misses: misses, skipped: skipped}
}

// recordWhatIf adds one scoring run's what-if counts.
func (in instruments) recordWhatIf(ctx context.Context, rep *Report) {
	if in.calls == nil {
		return
	}
	o := metric.WithAttributes(attribute.String("target", rep.Target), attribute.String("what_if_method", rep.WhatIfMethod))
	in.calls.Add(ctx, int64(rep.WhatIfCalls), o)
	in.hits.Add(ctx, int64(rep.CacheHits), o)
	in.misses.Add(ctx, int64(rep.CacheMisses), o)
}
