package adapters

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Telemetry is a process's OpenTelemetry SDK: a meter provider with a
// Prometheus reader (and an OTLP reader when enabled) and, when OTLP traces
// are enabled, a tracer provider. Setup installs both as the global
// providers, which the bus's spans and metrics and the adapters use.
type Telemetry struct {
	// MeterProvider is the SDK meter provider (never nil).
	MeterProvider *metric.MeterProvider
	// TracerProvider is nil when no trace exporter is configured (spans are
	// then no-ops).
	TracerProvider *sdktrace.TracerProvider
	registry       *prometheus.Registry
}

// SetupOptions tune Setup; tests use them to capture spans.
type SetupOptions struct {
	// SpanProcessors are added to the tracer provider (one is created for
	// them even when OTLP traces are off).
	SpanProcessors []sdktrace.SpanProcessor
	// NoGlobal keeps the providers out of the otel globals.
	NoGlobal bool
}

// Setup builds the SDK of process service ("indexpilot", "scorer", ...) from
// cfg.Adapters. The Prometheus reader is always there (its /metrics is
// served only when adapters.listen is set); the OTLP/HTTP exporters only
// when adapters.otlp.enabled.
func Setup(ctx context.Context, cfg config.Config, service string, opts SetupOptions) (*Telemetry, error) {
	res := telemetry.Resource(service)
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("new prometheus exporter: %w", err)
	}
	mopts := []metric.Option{metric.WithResource(res), metric.WithReader(prom)}
	o := cfg.Adapters.OTLP
	if o.Enabled && o.Metrics {
		eo := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(o.Endpoint)}
		if o.Insecure {
			eo = append(eo, otlpmetrichttp.WithInsecure())
		}
		exp, err := otlpmetrichttp.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("new otlp metric exporter: %w", err)
		}
		mopts = append(mopts, metric.WithReader(metric.NewPeriodicReader(exp, metric.WithInterval(o.MetricInterval))))
	}
	t := &Telemetry{MeterProvider: metric.NewMeterProvider(mopts...), registry: reg}

	tp, err := telemetry.NewTracerProvider(ctx, cfg, service, opts.SpanProcessors...)
	if err != nil {
		_ = t.MeterProvider.Shutdown(ctx)
		return nil, err
	}
	t.TracerProvider = tp
	if !opts.NoGlobal {
		otel.SetMeterProvider(t.MeterProvider)
		if t.TracerProvider != nil {
			otel.SetTracerProvider(t.TracerProvider)
		}
	}
	return t, nil
}

// MetricsHandler serves the Prometheus exposition of every metric recorded
// on the meter provider.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.TracerProvider != nil {
		errs = append(errs, t.TracerProvider.Shutdown(ctx))
	}
	errs = append(errs, t.MeterProvider.Shutdown(ctx))
	return errors.Join(errs...)
}
