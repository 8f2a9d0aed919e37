package bus

import (
	"context"
	"sort"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Tracing. Every publish is a producer span and every handled message a
// consumer span; the span context travels in the message metadata
// (traceparent), which watermill-kafka sends as Kafka headers. A publish
// with no span in its context (a stage's poll or scoring loop) takes as
// parent the deterministic span context of the workload statement the
// payload is about (telemetry.StatementSpanContext): the statement of a
// querystat, the lead statement (smallest query id) of a candidate or a
// decision. A build outcome, which names no statement, continues the trace
// of the decision this process consumed for it. So one trace follows a
// statement from the collector through its candidate, the decision and the
// build.

// statementOf is the (target, query id) a payload is about, if any.
func statementOf(p events.Payload) (target, queryID string, ok bool) {
	switch x := p.(type) {
	case *events.QueryStatObserved:
		return x.Target, x.QueryID, x.QueryID != ""
	case *events.IndexCandidateScored:
		ids := make([]string, 0, len(x.Statements))
		for _, s := range x.Statements {
			ids = append(ids, s.QueryID)
		}
		return x.Target, leadQueryID(ids), len(ids) > 0
	case *events.IndexDecisionMade:
		return x.Target, leadQueryID(x.QueryIDs), len(x.QueryIDs) > 0
	}
	return "", "", false
}

// LeadQueryID is the statement whose trace a candidate or decision joins:
// the smallest of its query ids, so that every stage picks the same one.
func LeadQueryID(ids []string) string { return leadQueryID(ids) }

func leadQueryID(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	s := append([]string(nil), ids...)
	sort.Strings(s)
	return s[0]
}

// decisionOf is the decision event a build outcome answers.
func decisionOf(p events.Payload) string {
	switch x := p.(type) {
	case *events.IndexBuildCompleted:
		return x.DecisionEventID
	case *events.IndexBuildFailed:
		return x.DecisionEventID
	}
	return ""
}

// spanAttrs are the attributes of a span about p: ids and names only.
func spanAttrs(p events.Payload, eventID string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String(telemetry.AttrEventType, string(p.EventType())),
		attribute.String(telemetry.AttrEventID, eventID),
		attribute.String(telemetry.AttrTarget, p.EventSubject()),
	}
	switch x := p.(type) {
	case *events.QueryStatObserved:
		attrs = append(attrs, attribute.String(telemetry.AttrQueryID, x.QueryID))
	case *events.IndexCandidateScored:
		attrs = append(attrs, attribute.String(telemetry.AttrCandidate, x.CandidateID))
	case *events.IndexDecisionMade:
		attrs = append(attrs, attribute.String(telemetry.AttrCandidate, x.CandidateID),
			attribute.String(telemetry.AttrOutcome, string(x.Verdict)))
	case *events.IndexBuildCompleted:
		attrs = append(attrs, attribute.String(telemetry.AttrCandidate, x.CandidateID))
	case *events.IndexBuildFailed:
		attrs = append(attrs, attribute.String(telemetry.AttrCandidate, x.CandidateID))
	}
	return attrs
}

// parents remembers, for the decisions this process consumed, the span
// context of their consumer span, so that the build loop's outcome joins
// the decision's trace. Bounded: the oldest entries are forgotten.
type parents struct {
	mu    sync.Mutex
	max   int
	order []string
	m     map[string]trace.SpanContext
}

func newParents(max int) *parents { return &parents{max: max, m: map[string]trace.SpanContext{}} }

func (c *parents) put(id string, sc trace.SpanContext) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		c.m[id] = sc
		return
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.order = append(c.order, id)
	c.m[id] = sc
}

func (c *parents) get(id string) (trace.SpanContext, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc, ok := c.m[id]
	return sc, ok
}

// parentContext is the context a publish of p starts its span from.
func (b *Bus) parentContext(ctx context.Context, p events.Payload) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	if target, qid, ok := statementOf(p); ok {
		return trace.ContextWithRemoteSpanContext(ctx, telemetry.StatementSpanContext(target, qid))
	}
	if id := decisionOf(p); id != "" {
		if sc, ok := b.parents.get(id); ok {
			return trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return ctx
}

// instruments are the bus's own metrics, on the global meter provider.
type instruments struct {
	published metric.Int64Counter
	consumed  metric.Int64Counter
}

func newInstruments() instruments {
	m := telemetry.Meter()
	pub, _ := m.Int64Counter("indexpilot_bus_published",
		metric.WithDescription("Events published, by stage and type."), metric.WithUnit("{event}"))
	con, _ := m.Int64Counter("indexpilot_bus_consumed",
		metric.WithDescription("Messages handled, by stage, consumer group, type and outcome (ok, retry, permanent, duplicate)."),
		metric.WithUnit("{message}"))
	return instruments{published: pub, consumed: con}
}
