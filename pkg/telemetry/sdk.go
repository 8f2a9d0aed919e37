package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/indexpilot/indexpilot/pkg/config"
)

// Resource describes process service ("indexpilot", "scorer", ...) to the
// exporters: service.name indexpilot-<service>, namespace indexpilot.
func Resource(service string) *resource.Resource {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("indexpilot-"+service), semconv.ServiceNamespace("indexpilot")))
	if err != nil {
		return resource.Default()
	}
	return res
}

// NewTracerProvider builds the SDK tracer provider of process service from
// cfg.Adapters: spans go to the OTLP/HTTP exporter when adapters.otlp is
// enabled with traces, and to every extra processor (tests record spans
// with one). Traces that start here are sampled at
// adapters.tracing.sample_ratio; a parent's decision is kept. It returns
// nil, and no error, when there is nowhere to send spans.
func NewTracerProvider(ctx context.Context, cfg config.Config, service string, extra ...sdktrace.SpanProcessor) (*sdktrace.TracerProvider, error) {
	o := cfg.Adapters.OTLP
	otlp := o.Enabled && o.Traces
	if !otlp && len(extra) == 0 {
		return nil, nil
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(Resource(service)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Adapters.Tracing.SampleRatio))),
	}
	for _, sp := range extra {
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	}
	if otlp {
		eo := []otlptracehttp.Option{otlptracehttp.WithEndpoint(o.Endpoint)}
		if o.Insecure {
			eo = append(eo, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("new otlp trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}
