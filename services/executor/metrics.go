package executor

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterScope is the instrumentation scope of the executor's own metrics.
const meterScope = "github.com/indexpilot/indexpilot/services/executor"

// Metric names of the running builds, observed from the progress the
// watcher reads from pg_stat_progress_create_index. Attributes: target,
// index, table (the partition being built), phase.
const (
	MetricBuildProgress = "indexpilot.executor.build.progress"
	MetricBuildCPU      = "indexpilot.executor.build.cpu"
)

// registerMetrics registers the gauges of the running builds on mp, or on
// the global meter provider (a no-op until an SDK is installed, e.g. by the
// adapters), and returns their unregistration.
func (x *executor) registerMetrics(mp metric.MeterProvider) (func(), error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(meterScope)
	progress, err := m.Float64ObservableGauge(MetricBuildProgress,
		metric.WithDescription("Fraction of the running index build done (blocks, else tuples), per pg_stat_progress_create_index."),
		metric.WithUnit("1"))
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", MetricBuildProgress, err)
	}
	cpu, err := m.Float64ObservableGauge(MetricBuildCPU,
		metric.WithDescription("Database CPU busy percent last sampled during the running index build."),
		metric.WithUnit("%"))
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", MetricBuildCPU, err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		x.mu.Lock()
		defer x.mu.Unlock()
		for recID, p := range x.progress {
			attrs := metric.WithAttributes(attribute.String("target", p.Target), attribute.String("index", p.Index),
				attribute.String("table", p.Table), attribute.String("phase", p.Phase),
				attribute.String("recommendation_id", recID))
			o.ObserveFloat64(progress, p.Fraction(), attrs)
			if p.CPUPercent != nil {
				o.ObserveFloat64(cpu, *p.CPUPercent, attrs)
			}
		}
		return nil
	}, progress, cpu)
	if err != nil {
		return nil, fmt.Errorf("register build metrics: %w", err)
	}
	return func() { _ = reg.Unregister() }, nil
}

// Fraction is the share of the build done: blocks when the phase counts
// them, else tuples, else 0.
func (p Progress) Fraction() float64 {
	switch {
	case p.BlocksTotal > 0:
		return float64(p.BlocksDone) / float64(p.BlocksTotal)
	case p.TuplesTotal > 0:
		return float64(p.TuplesDone) / float64(p.TuplesTotal)
	}
	return 0
}
