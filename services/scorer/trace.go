package scorer

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Tracing of the evidence. A candidate aggregates many querystat events,
// so its span cannot have them all as parent: it starts in the lead
// statement's trace (bus.LeadQueryID) and carries one span link per
// contributing querystat event, to the collector's publish span of it.
// The scorer remembers those span contexts as the events arrive: the
// latest spansPerStatement of each statement, for at most
// maxTracedStatements statements (the oldest statement is forgotten
// first), in memory only: after a restart a candidate links to the events
// received since.
const (
	spansPerStatement   = 4
	maxTracedStatements = 20_000
	// maxCandidateLinks stays under the SDK's default of 128 links a span.
	maxCandidateLinks = 64
)

type stmtKey struct{ target, queryID string }

type evidenceRef struct {
	sc      trace.SpanContext
	eventID string
}

// evidenceSpans is the bounded memory of the querystat events' spans.
type evidenceSpans struct {
	mu    sync.Mutex
	m     map[stmtKey][]evidenceRef // oldest first
	order []stmtKey                 // statements, first seen first
	max   int
}

func newEvidenceSpans(maxStatements int) *evidenceSpans {
	return &evidenceSpans{m: map[stmtKey][]evidenceRef{}, max: maxStatements}
}

// note remembers the span of one querystat event; a redelivery of the
// same event replaces its entry.
func (e *evidenceSpans) note(target, queryID, eventID string, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	k := stmtKey{target, queryID}
	e.mu.Lock()
	defer e.mu.Unlock()
	refs, seen := e.m[k]
	if !seen {
		if len(e.order) >= e.max {
			delete(e.m, e.order[0])
			e.order = e.order[1:]
		}
		e.order = append(e.order, k)
	}
	for i, r := range refs {
		if r.eventID == eventID {
			refs = append(refs[:i:i], refs[i+1:]...)
			break
		}
	}
	refs = append(refs, evidenceRef{sc: sc, eventID: eventID})
	if len(refs) > spansPerStatement {
		refs = refs[len(refs)-spansPerStatement:]
	}
	e.m[k] = refs
}

// links are the span links of a candidate on queryIDs: the newest event
// of every statement first, then the next newest, up to maxCandidateLinks.
func (e *evidenceSpans) links(target string, queryIDs []string) []trace.Link {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []trace.Link
	for depth := 0; depth < spansPerStatement; depth++ {
		for _, q := range queryIDs {
			refs := e.m[stmtKey{target, q}]
			if depth >= len(refs) {
				continue
			}
			if len(out) == maxCandidateLinks {
				return out
			}
			r := refs[len(refs)-1-depth]
			out = append(out, trace.Link{SpanContext: r.sc, Attributes: []attribute.KeyValue{
				attribute.String(telemetry.AttrQueryID, q),
				attribute.String(telemetry.AttrEventID, r.eventID),
				attribute.String(telemetry.AttrEventType, string(events.TypeQueryStatObserved)),
			}})
		}
	}
	return out
}

// candidateSpans starts one span per candidate, in its lead statement's
// trace with links to its evidence, and returns the contexts to publish
// each candidate from and a function that ends the spans (failed: the
// publish did not go through).
func (s *Scorer) candidateSpans(ctx context.Context, target string, chosen []*events.IndexCandidateScored) ([]context.Context, func(failed bool)) {
	ctxs := make([]context.Context, len(chosen))
	spans := make([]trace.Span, 0, len(chosen))
	for i, c := range chosen {
		ids := make([]string, 0, len(c.Statements))
		for _, st := range c.Statements {
			ids = append(ids, st.QueryID)
		}
		parent := ctx
		if !trace.SpanContextFromContext(ctx).IsValid() && len(ids) > 0 {
			parent = trace.ContextWithRemoteSpanContext(ctx, telemetry.StatementSpanContext(target, bus.LeadQueryID(ids)))
		}
		links := s.evidence.links(target, ids)
		sctx, span := telemetry.Tracer().Start(parent, "scorer candidate",
			trace.WithLinks(links...),
			trace.WithAttributes(
				attribute.String(telemetry.AttrStage, Name),
				attribute.String(telemetry.AttrTarget, target),
				attribute.String(telemetry.AttrCandidate, c.CandidateID),
				attribute.String(telemetry.AttrEventID, c.EventID()),
				attribute.Int("indexpilot.statements", len(ids)),
				attribute.Int("indexpilot.evidence_links", len(links)),
				attribute.Float64("indexpilot.max_improvement_pct", c.MaxImprovementPct)))
		ctxs[i] = sctx
		spans = append(spans, span)
	}
	return ctxs, func(failed bool) {
		for _, sp := range spans {
			if failed {
				sp.SetStatus(codes.Error, "not published")
			}
			sp.End()
		}
	}
}
