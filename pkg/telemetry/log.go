// Package telemetry sets up structured logging, the correlation id, the
// trace context and the OpenTelemetry SDK the same way for every process.
// Spans and metrics are recorded through the OpenTelemetry API on the
// global providers and are no-ops until a process installs an SDK with
// Setup: the indexpilot CLI, the adapters and the stand-alone stage
// binaries (through pkg/stage's RunTelemetry) all do, so every process
// serves its own metrics on /metrics and, when configured, exports metrics
// and spans over OTLP.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/pkg/config"
)

// NewLogger returns a slog logger writing JSON (or text) at the configured
// level, with the stage name on every record. A record logged with a
// context (InfoContext, ...) also carries the context's correlation_id and,
// when a span is active, trace_id and span_id.
func NewLogger(cfg config.Log, w io.Writer, stage string) *slog.Logger {
	var lvl slog.Level
	switch strings.ToLower(cfg.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if cfg.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	l := slog.New(ContextHandler{Handler: h})
	if stage != "" {
		l = l.With("stage", stage)
	}
	return l
}

type correlationKey struct{}

// WithCorrelationID returns ctx carrying the correlation id of the event
// being handled; "" leaves ctx as it is.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID is the correlation id ctx carries, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// ContextHandler adds the correlation id and the active span's ids of the
// record's context to every record. Wrap any slog.Handler with it.
type ContextHandler struct{ slog.Handler }

// Handle adds correlation_id, trace_id and span_id when ctx has them.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := CorrelationID(ctx); id != "" {
			r.AddAttrs(slog.String("correlation_id", id))
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper around the derived handler.
func (h ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the wrapper around the derived handler.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}
