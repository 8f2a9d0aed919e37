package bus_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// TestTraceParentsFollowTheStatement: with no SDK installed (spans are
// no-ops that still carry their parent), a candidate published from a loop
// carries its lead statement's trace; the gatekeeper-like handler's
// decision keeps it; a build outcome published later from a loop (no span)
// joins the trace of the decision this bus consumed.
func TestTraceParentsFollowTheStatement(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := bus.NewMemory(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer b.Close()

	taps := map[events.Type]<-chan *message.Message{}
	for _, ty := range []events.Type{events.TypeIndexCandidateScored, events.TypeIndexDecisionMade, events.TypeIndexBuildCompleted} {
		sub, err := b.Subscriber("tap")
		require.NoError(t, err)
		ch, err := sub.Subscribe(ctx, events.Topic(ty))
		require.NoError(t, err)
		taps[ty] = ch
	}
	next := func(ty events.Type) *message.Message {
		select {
		case m := <-taps[ty]:
			m.Ack()
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s message", ty)
			return nil
		}
	}

	spec := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a"}}
	cand := &events.IndexCandidateScored{Target: "main", CandidateID: events.CandidateID("main", spec, "v1"), Index: spec,
		FormulaVersion: "v1", WhatIfMethod: "hypopg", WindowEnd: time.Now().UTC(),
		Statements: []events.StatementEvidence{{QueryID: "9"}, {QueryID: "-5"}, {QueryID: "12"}}}
	lead := telemetry.StatementSpanContext("main", bus.LeadQueryID([]string{"9", "-5", "12"})).TraceID()

	var decision *events.IndexDecisionMade
	handled := make(chan trace.SpanContext, 1)
	r, err := b.NewRouter("gate", 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, r.Handle("candidates", events.TypeIndexCandidateScored,
		func(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
			c := p.(*events.IndexCandidateScored)
			decision = &events.IndexDecisionMade{Target: c.Target, RecommendationID: events.RecommendationID(c.Target, c.Index),
				CandidateID: c.CandidateID, CandidateEventID: env.ID, Index: c.Index, Verdict: events.VerdictApproved,
				Reason: events.ReasonApplyMode, QueryIDs: []string{"12"}, DecidedAt: time.Now().UTC()}
			return []events.Payload{decision}, nil
		}))
	require.NoError(t, r.Handle("decisions", events.TypeIndexDecisionMade,
		func(ctx context.Context, _ events.Envelope, _ events.Payload) ([]events.Payload, error) {
			handled <- trace.SpanContextFromContext(ctx)
			return nil, nil
		}))
	go func() { _ = r.Run(ctx) }()
	<-r.Running()

	require.NoError(t, b.Publish(ctx, "scorer", "", cand))
	got := trace.SpanContextFromContext(telemetry.Extract(ctx, next(events.TypeIndexCandidateScored).Metadata))
	require.Equal(t, lead, got.TraceID(), "the candidate is not in its lead statement's trace")

	// The decision is published from the handler's span: the header
	// (candidate's trace) wins over the decision's own lead statement "12".
	got = trace.SpanContextFromContext(telemetry.Extract(ctx, next(events.TypeIndexDecisionMade).Metadata))
	require.Equal(t, lead, got.TraceID(), "the decision left the candidate's trace")
	select {
	case sc := <-handled:
		require.Equal(t, lead, sc.TraceID(), "the decision's handler runs outside the trace")
	case <-time.After(10 * time.Second):
		t.Fatal("the decision was not handled")
	}

	build := &events.IndexBuildCompleted{Target: "main", RecommendationID: decision.RecommendationID,
		CandidateID: decision.CandidateID, DecisionEventID: decision.EventID(), Index: spec, IndexName: "ip_t_a",
		CompletedAt: time.Now().UTC()}
	require.NoError(t, b.Publish(context.Background(), "executor", decision.EventID(), build))
	got = trace.SpanContextFromContext(telemetry.Extract(ctx, next(events.TypeIndexBuildCompleted).Metadata))
	require.Equal(t, lead, got.TraceID(), "the build outcome left the decision's trace")
}

// TestPublishWithParentsAndProducerSpan: each payload's producer span
// starts from its own parent (a nil one from ctx: here the statement's
// trace), and the handler sees, beside its consumer span, the span context
// the message carried.
func TestPublishWithParentsAndProducerSpan(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := bus.NewMemory(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer b.Close()
	got := make(chan [2]trace.SpanContext, 2)
	r, err := b.NewRouter("scorer", 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, r.Handle("querystats", events.TypeQueryStatObserved,
		func(ctx context.Context, _ events.Envelope, _ events.Payload) ([]events.Payload, error) {
			got <- [2]trace.SpanContext{bus.ProducerSpanContext(ctx), trace.SpanContextFromContext(ctx)}
			return nil, nil
		}))
	go func() { _ = r.Run(ctx) }()
	<-r.Running()

	own := telemetry.ParseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.True(t, own.IsValid())
	require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", telemetry.TraceParent(own))
	require.Empty(t, telemetry.TraceParent(trace.SpanContext{}))
	require.False(t, telemetry.ParseTraceParent("garbage").IsValid())

	now := time.Now().UTC()
	q1 := &events.QueryStatObserved{Target: "main", QueryID: "1", Query: "select 1", WindowStart: now.Add(-time.Minute), WindowEnd: now, Calls: 1}
	q2 := &events.QueryStatObserved{Target: "main", QueryID: "2", Query: "select 2", WindowStart: now.Add(-time.Minute), WindowEnd: now, Calls: 1}
	require.Error(t, b.PublishWithParents(ctx, "collector", "", []events.Payload{q1, q2}, nil))
	require.NoError(t, b.PublishWithParents(ctx, "collector", "", []events.Payload{q1, q2},
		[]context.Context{trace.ContextWithRemoteSpanContext(ctx, own), nil}))
	want := map[trace.TraceID]bool{own.TraceID(): true, telemetry.StatementSpanContext("main", "2").TraceID(): true}
	for i := 0; i < 2; i++ {
		select {
		case g := <-got:
			require.True(t, g[0].IsValid(), "no producer span context in the handler")
			require.Equal(t, g[0].TraceID(), g[1].TraceID(), "the consumer span is not in the producer's trace")
			require.True(t, want[g[0].TraceID()], "unexpected trace %s", g[0].TraceID())
			delete(want, g[0].TraceID())
		case <-time.After(10 * time.Second):
			t.Fatal("a message was not handled")
		}
	}
	require.False(t, bus.ProducerSpanContext(ctx).IsValid(), "a producer span outside a handler")
}
