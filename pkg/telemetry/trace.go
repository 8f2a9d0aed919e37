package telemetry

import (
	"context"
	"crypto/sha256"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of IndexPilot's spans and metrics.
const ScopeName = "github.com/indexpilot/indexpilot"

// Attribute keys of IndexPilot's spans. Values are ids, names and types
// only: never query text, literal values, DDL or connection strings.
const (
	AttrStage     = "indexpilot.stage"
	AttrEventType = "indexpilot.event.type"
	AttrEventID   = "indexpilot.event.id"
	AttrTarget    = "indexpilot.target"
	AttrQueryID   = "indexpilot.query_id"
	AttrCandidate = "indexpilot.candidate_id"
	AttrGroup     = "messaging.consumer.group.name"
	AttrOutcome   = "indexpilot.outcome"
)

// Tracer is the tracer of IndexPilot's spans, from the global provider at
// the time of the call (a no-op until an SDK is installed).
func Tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(ScopeName) }

// Meter is the meter of IndexPilot's own metrics, from the global provider.
func Meter() metric.Meter { return otel.GetMeterProvider().Meter(ScopeName) }

// Propagator is the W3C trace-context propagator used on message metadata.
// It is fixed rather than the global one so that the context travels even
// in a process that installed no SDK.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// MapCarrier adapts a string map (watermill's message.Metadata) to the
// propagator.
type MapCarrier map[string]string

// Get returns the value of key.
func (c MapCarrier) Get(key string) string { return c[key] }

// Set stores value under key.
func (c MapCarrier) Set(key, value string) { c[key] = value }

// Keys lists the keys.
func (c MapCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Inject writes the span context of ctx (traceparent, tracestate) into md.
func Inject(ctx context.Context, md map[string]string) { Propagator.Inject(ctx, MapCarrier(md)) }

// Extract returns ctx with the remote span context found in md, if any.
func Extract(ctx context.Context, md map[string]string) context.Context {
	return Propagator.Extract(ctx, MapCarrier(md))
}

// StatementSpanContext is the deterministic remote parent of everything
// that happens to one workload statement of one target: the same trace id
// in every process, on every retry and replay, so that the statement's
// deltas, the candidates it leads, the decisions and the builds join one
// trace even where a stage works from a loop rather than from a message.
func StatementSpanContext(target, queryID string) trace.SpanContext {
	sum := sha256.Sum256([]byte("indexpilot-trace|" + target + "|" + queryID))
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], sum[:16])
	copy(sid[:], sum[16:24])
	sid[0] |= 1 // never the invalid all-zero id
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true,
	})
}

// TraceParent renders sc as a W3C traceparent header value ("" for an
// invalid span context), for a span context kept in a database row.
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	md := MapCarrier{}
	Propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), md)
	return md["traceparent"]
}

// ParseTraceParent is the remote span context of a W3C traceparent value;
// an empty or malformed value gives the invalid (zero) span context.
func ParseTraceParent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), MapCarrier{"traceparent": s}))
}
