package telemetry

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
)

// SDK is a process's OpenTelemetry SDK: a meter provider with a Prometheus
// reader (and an OTLP reader when enabled) and, when OTLP traces are
// enabled, a tracer provider. Setup installs both as the global providers,
// which the bus's spans and metrics, the stages' own metrics and the
// adapters use. Every IndexPilot process builds its SDK here: the
// indexpilot CLI, the adapters and the stand-alone stage binaries.
type SDK struct {
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
// when adapters.otlp.enabled, with metrics and traces respectively.
func Setup(ctx context.Context, cfg config.Config, service string, opts SetupOptions) (*SDK, error) {
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("new prometheus exporter: %w", err)
	}
	mopts := []metric.Option{metric.WithResource(Resource(service)), metric.WithReader(prom)}
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
	s := &SDK{MeterProvider: metric.NewMeterProvider(mopts...), registry: reg}

	tp, err := NewTracerProvider(ctx, cfg, service, opts.SpanProcessors...)
	if err != nil {
		_ = s.MeterProvider.Shutdown(ctx)
		return nil, err
	}
	s.TracerProvider = tp
	if !opts.NoGlobal {
		otel.SetMeterProvider(s.MeterProvider)
		if s.TracerProvider != nil {
			otel.SetTracerProvider(s.TracerProvider)
		}
	}
	return s, nil
}

// MetricsHandler serves the Prometheus exposition of every metric recorded
// on the meter provider.
func (s *SDK) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (s *SDK) Shutdown(ctx context.Context) error {
	var errs []error
	if s.TracerProvider != nil {
		errs = append(errs, s.TracerProvider.Shutdown(ctx))
	}
	errs = append(errs, s.MeterProvider.Shutdown(ctx))
	return errors.Join(errs...)
}
