package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// TestTraceContextTravelsInKafkaHeaders publishes a querystat from a loop
// (no span in the context) over Kafka: the message carries a W3C
// traceparent header with the statement's deterministic trace, and the
// consuming handler runs in that trace with the envelope's correlation id.
func TestTraceContextTravelsInKafkaHeaders(t *testing.T) {
	brokers := newKafka(t)
	cfg := config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	b, err := bus.New(cfg, testLogger())
	require.NoError(t, err)
	defer b.Close()
	r, err := b.NewRouter("tracecheck", 10*time.Second)
	require.NoError(t, err)
	type seen struct {
		trace trace.TraceID
		corr  string
	}
	got := make(chan seen, 4)
	require.NoError(t, r.Handle("querystats", events.TypeQueryStatObserved,
		func(ctx context.Context, env events.Envelope, _ events.Payload) ([]events.Payload, error) {
			got <- seen{trace.SpanContextFromContext(ctx).TraceID(), telemetry.CorrelationID(ctx)}
			return nil, nil
		}))
	go func() { _ = r.Run(ctx) }()
	<-r.Running()

	raw, err := b.Subscriber("indexpilot.test.headers")
	require.NoError(t, err)
	msgs, err := raw.Subscribe(ctx, events.Topic(events.TypeQueryStatObserved))
	require.NoError(t, err)

	q := &events.QueryStatObserved{Target: "main", QueryID: "-42", Query: "select 1 where x = $1",
		WindowStart: time.Now().Add(-time.Minute).UTC(), WindowEnd: time.Now().UTC(), Calls: 3}
	require.NoError(t, b.Publish(ctx, "collector", "", q))
	want := telemetry.StatementSpanContext("main", "-42").TraceID()

	select {
	case m := <-msgs:
		tp := m.Metadata.Get("traceparent")
		require.Contains(t, tp, want.String(), "traceparent header %q is not the statement's trace", tp)
		m.Ack()
	case <-time.After(60 * time.Second):
		t.Fatal("no message over Kafka within 60 s")
	}
	select {
	case s := <-got:
		require.Equal(t, want, s.trace, "the handler does not run in the statement's trace")
		require.Equal(t, q.EventID(), s.corr, "the handler's context lacks the correlation id")
	case <-time.After(60 * time.Second):
		t.Fatal("the handler got nothing within 60 s")
	}
}
