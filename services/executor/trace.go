package executor

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Tracing. The builds and validations run from the control database, not
// from a message, so each row keeps the span it continues (trace_parent):
// a build the executor's consumer span of its decision, a validation the
// span of the build attempt that made the index. The build span and the
// validation span are their children, and the outcome events are
// published from them; so one trace goes from the candidate (whose span
// links to the querystat events of its statements) to the validation. A
// row without a span (written before migration 0013) joins the trace of
// its lead statement, as the bus does for a decision.

const attrRecommendation = "indexpilot.recommendation_id"

// continueTrace is ctx with the remote parent a row kept, or its lead
// statement's when it kept none.
func continueTrace(ctx context.Context, parent, target string, queryIDs []string) context.Context {
	sc := telemetry.ParseTraceParent(parent)
	if !sc.IsValid() && len(queryIDs) > 0 {
		sc = telemetry.StatementSpanContext(target, bus.LeadQueryID(queryIDs))
	}
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// buildSpan starts the span of one build attempt of j.
func (x *executor) buildSpan(ctx context.Context, j *job) (context.Context, trace.Span) {
	ctx, span := telemetry.Tracer().Start(continueTrace(ctx, j.traceParent, j.target, j.queryIDs), "executor build",
		trace.WithAttributes(
			attribute.String(telemetry.AttrStage, Name),
			attribute.String(telemetry.AttrTarget, j.target),
			attribute.String(telemetry.AttrCandidate, j.candidateID),
			attribute.String(attrRecommendation, j.recID),
			attribute.String(telemetry.AttrEventID, j.decisionEventID),
			attribute.Int("indexpilot.attempt", j.attempt)))
	j.span = span.SpanContext()
	return ctx, span
}

// endBuildSpan records a settled attempt's outcome on its span (ended by
// the caller). A failure carries its class and SQLSTATE, never its text.
func endBuildSpan(span trace.Span, o outcome) {
	span.SetAttributes(attribute.String(telemetry.AttrOutcome, o.name))
	if o.err != nil {
		span.SetAttributes(attribute.String("indexpilot.error_op", o.err.Op),
			attribute.String("db.response.status_code", o.err.SQLState))
	}
	if o.name == OutcomeFailed {
		span.SetStatus(codes.Error, o.name)
	}
	if o.err == nil {
		span.SetAttributes(attribute.Float64("indexpilot.duration_ms", float64(o.res.Duration.Microseconds())/1000),
			attribute.Int64("indexpilot.size_bytes", o.res.SizeBytes))
	}
}

// validationSpan starts the span of a validation that gives its verdict.
func (x *executor) validationSpan(ctx context.Context, v *vjob) (context.Context, trace.Span) {
	return telemetry.Tracer().Start(continueTrace(ctx, v.traceParent, v.target, v.queryIDs), "executor validate",
		trace.WithAttributes(
			attribute.String(telemetry.AttrStage, Name),
			attribute.String(telemetry.AttrTarget, v.target),
			attribute.String(telemetry.AttrCandidate, v.candidateID),
			attribute.String(attrRecommendation, v.recID),
			attribute.Int("indexpilot.statements", len(v.queryIDs))))
}
