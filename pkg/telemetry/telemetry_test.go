package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

func TestLoggerCarriesCorrelationAndTrace(t *testing.T) {
	var buf bytes.Buffer
	l := telemetry.NewLogger(config.Log{Level: "info", Format: "json"}, &buf, "scorer")
	sc := telemetry.StatementSpanContext("main", "42")
	ctx := trace.ContextWithSpanContext(telemetry.WithCorrelationID(context.Background(), "corr-1"), sc)
	l.With("k", "v").InfoContext(ctx, "hello")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), buf.String())
	require.Equal(t, "scorer", rec["stage"])
	require.Equal(t, "v", rec["k"])
	require.Equal(t, "corr-1", rec["correlation_id"])
	require.Equal(t, sc.TraceID().String(), rec["trace_id"])
	require.Equal(t, sc.SpanID().String(), rec["span_id"])

	buf.Reset()
	l.Info("no context")
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.NotContains(t, buf.String(), "correlation_id")
}

func TestStatementSpanContextIsDeterministic(t *testing.T) {
	a := telemetry.StatementSpanContext("main", "-123")
	require.True(t, a.IsValid())
	require.True(t, a.IsSampled())
	require.Equal(t, a, telemetry.StatementSpanContext("main", "-123"))
	require.NotEqual(t, a.TraceID(), telemetry.StatementSpanContext("other", "-123").TraceID())
	require.NotEqual(t, a.TraceID(), telemetry.StatementSpanContext("main", "-124").TraceID())
}

func TestInjectExtractRoundTrip(t *testing.T) {
	sc := telemetry.StatementSpanContext("main", "7")
	md := map[string]string{}
	telemetry.Inject(trace.ContextWithSpanContext(context.Background(), sc), md)
	require.Contains(t, md, "traceparent")
	got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), md))
	require.Equal(t, sc.TraceID(), got.TraceID())
	require.Equal(t, sc.SpanID(), got.SpanID())
}
