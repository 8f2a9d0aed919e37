package gatekeeper

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Tracing. A candidate is decided in the bus's consumer span of its event,
// which continues the candidate's trace; the decision published from it is
// its child. The recommendation keeps that span (trace_parent), so that a
// decision the re-evaluation loop takes later (a deferred recommendation
// that passes, an approval published again) starts a span that continues
// the same trace rather than one of its own.

// traceParent is the traceparent of the span in ctx ("" without one).
func traceParent(ctx context.Context) string {
	return telemetry.TraceParent(trace.SpanContextFromContext(ctx))
}

// decisionAttrs are the attributes of a decision on the span deciding it.
func decisionAttrs(d *events.IndexDecisionMade) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("indexpilot.recommendation_id", d.RecommendationID),
		attribute.String("indexpilot.verdict", string(d.Verdict)),
		attribute.String("indexpilot.reason", string(d.Reason)),
	}
}

// loopSpan starts the span of a decision the loop takes on a stored
// recommendation: a child of the span that recorded it (parent, a
// traceparent) when there is one, else of the candidate's lead statement
// (the bus's default for a decision).
func loopSpan(ctx context.Context, parent string, name string, d *events.IndexDecisionMade) (context.Context, trace.Span) {
	sc := telemetry.ParseTraceParent(parent)
	if !sc.IsValid() && len(d.QueryIDs) > 0 {
		sc = telemetry.StatementSpanContext(d.Target, bus.LeadQueryID(d.QueryIDs))
	}
	if sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return telemetry.Tracer().Start(ctx, name, trace.WithAttributes(append(decisionAttrs(d),
		attribute.String(telemetry.AttrStage, Name),
		attribute.String(telemetry.AttrTarget, d.Target),
		attribute.String(telemetry.AttrCandidate, d.CandidateID))...))
}
