package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// PermanentError marks an error that retrying cannot fix (a bad payload, a
// 22xxx/42xxx SQLSTATE). The router sends its message to the poison topic.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is or wraps a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// MetaPoisonReason is set on a message parked in a poison topic.
const MetaPoisonReason = "poison_reason"

// Handler processes one decoded event. The payloads it returns are published
// (each on its type's topic) after it succeeds and before the message is
// acknowledged; on redelivery a handler must return them again, since the
// first publish may not have happened.
type Handler func(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error)

// Router is a watermill router with IndexPilot's middleware, for one stage.
type Router struct {
	*message.Router
	bus    *Bus
	stage  string
	logger *slog.Logger
}

// NewRouter builds the router of stage with the middleware stack, outermost
// first: correlation id, poison (permanent errors only), retry (transient
// errors only, with Retry's explicit settings), per-attempt timeout,
// recoverer (a panic is permanent).
func (b *Bus) NewRouter(stage string, attemptTimeout time.Duration) (*Router, error) {
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, b.wlog)
	if err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	logger := b.logger.With("stage", stage)
	retry := Retry
	retry.Logger = b.wlog
	retry.ShouldRetry = func(p middleware.RetryParams) bool {
		return !IsPermanent(p.Err) && !errors.Is(p.Err, context.Canceled)
	}
	if attemptTimeout <= 0 {
		attemptTimeout = time.Minute
	}
	r.AddMiddleware(
		middleware.CorrelationID,
		b.poison(logger),
		retry.Middleware,
		middleware.Timeout(attemptTimeout),
		recoverer,
	)
	return &Router{Router: r, bus: b, stage: stage, logger: logger}, nil
}

func recoverer(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = Permanent(fmt.Errorf("handler panic: %v", r))
			}
		}()
		return h(msg)
	}
}

// poison parks a message whose handler failed permanently in
// "<topic>.poison" and acknowledges it, so the partition moves on.
func (b *Bus) poison(logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil || !IsPermanent(err) {
				return out, err
			}
			topic := message.SubscribeTopicFromCtx(msg.Context())
			if topic == "" {
				topic = "indexpilot.unknown"
			}
			if perr := b.Park(topic, msg, err); perr != nil {
				return nil, perr
			}
			logger.Warn("event parked in poison topic", "topic", topic, "event_id", msg.UUID,
				"correlation_id", middleware.MessageCorrelationID(msg), "error", err.Error())
			return nil, nil
		}
	}
}

// MaxParkedBytes is the largest payload parked whole. A larger one (it
// could not be published again: the producer refuses messages over
// 1,000,000 bytes) is parked as its first ParkedPrefixBytes, with
// MetaPoisonBytes giving its full size.
const (
	MaxParkedBytes    = 512 << 10
	ParkedPrefixBytes = 64 << 10
)

// Metadata of a parked message besides MetaPoisonReason.
const (
	// MetaPoisonBytes is the size of a payload parked cut short.
	MetaPoisonBytes = "poison_payload_bytes"
	// PoisonSubject is the subject (partition key) of a parked message
	// that carried none.
	PoisonSubject = "unknown"
)

// Park publishes a copy of msg, which came from topic and can never be
// processed, in "<topic>.poison" with reason as MetaPoisonReason. Whatever
// msg is (no subject, too large to publish again), the copy can be
// published: a message that cannot be parked would be redelivered forever.
func (b *Bus) Park(topic string, msg *message.Message, reason error) error {
	p := msg.Copy()
	p.Metadata.Set(MetaPoisonReason, reason.Error())
	if p.Metadata.Get(MetaSubject) == "" {
		p.Metadata.Set(MetaSubject, PoisonSubject)
	}
	if len(p.Payload) > MaxParkedBytes {
		p.Metadata.Set(MetaPoisonBytes, strconv.Itoa(len(p.Payload)))
		p.Payload = p.Payload[:ParkedPrefixBytes]
	}
	if err := b.pub.Publish(events.PoisonTopic(topic), p); err != nil {
		return fmt.Errorf("park message %s in poison topic: %w", msg.UUID, err)
	}
	return nil
}

// handle decodes msg and runs handler in a consumer span that continues the
// trace of the message's metadata, with the envelope's correlation id in
// the context (loggers built by telemetry.NewLogger print it).
func (r *Router) handle(group string, t events.Type, handler Handler, msg *message.Message) (err error) {
	ctx := telemetry.Extract(msg.Context(), msg.Metadata)
	ctx = context.WithValue(ctx, producerSpanKey{}, trace.SpanContextFromContext(ctx))
	ctx, span := telemetry.Tracer().Start(ctx, r.stage+" handle "+string(t),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String(telemetry.AttrStage, r.stage),
			attribute.String(telemetry.AttrGroup, group),
			attribute.String("messaging.system", r.bus.transport),
			attribute.String("messaging.destination.name", events.Topic(t)),
			attribute.String(telemetry.AttrEventID, msg.UUID)))
	ctx = telemetry.WithCorrelationID(ctx, middleware.MessageCorrelationID(msg))
	defer func() {
		outcome := "ok"
		switch {
		case err == nil:
		case IsPermanent(err):
			outcome = "permanent"
		default:
			outcome = "error"
		}
		span.SetAttributes(attribute.String(telemetry.AttrOutcome, outcome))
		if err != nil {
			// The class only: an error text may quote values.
			span.SetStatus(codes.Error, outcome)
			r.logger.WarnContext(ctx, "handle event", "group", group, "event_id", msg.UUID,
				"type", string(t), "outcome", outcome, "error", err.Error())
		} else {
			r.logger.DebugContext(ctx, "event handled", "group", group, "event_id", msg.UUID, "type", string(t))
		}
		r.bus.inst.consumed.Add(ctx, 1, metric.WithAttributes(attribute.String("stage", r.stage),
			attribute.String("group", group), attribute.String("type", string(t)), attribute.String("outcome", outcome)))
		span.End()
	}()
	env, p, err := events.Read(msg.Payload)
	if err != nil {
		return Permanent(err)
	}
	if env.Type != t {
		return Permanent(fmt.Errorf("topic %s carries %s events, got %s", events.Topic(t), t, env.Type))
	}
	span.SetAttributes(spanAttrs(p, env.ID)...)
	if _, ok := p.(*events.IndexDecisionMade); ok {
		r.bus.parents.put(env.ID, span.SpanContext())
	}
	out, err := handler(ctx, env, p)
	if err != nil {
		return err
	}
	if len(out) > 0 {
		if err := r.bus.Publish(ctx, r.stage, env.CorrelationID, out...); err != nil {
			return err
		}
	}
	return nil
}

type producerSpanKey struct{}

// ProducerSpanContext is, in a handler's context, the span context the
// handled message carried: the span of its publish (the producer's), the
// parent of the handler's consumer span. A stage that aggregates many
// events into one later (the scorer) links to these. Invalid outside a
// handler or for a message without trace context.
func ProducerSpanContext(ctx context.Context) trace.SpanContext {
	sc, _ := ctx.Value(producerSpanKey{}).(trace.SpanContext)
	return sc
}

// Handle subscribes handler to the topic of t in consumer group
// indexpilot.<stage>.<name>. Messages are decoded strictly; a message that
// does not decode is permanent (poison).
func (r *Router) Handle(name string, t events.Type, handler Handler) error {
	group := events.ConsumerGroup(r.stage, name)
	sub, err := r.bus.Subscriber(group)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", group, err)
	}
	r.AddConsumerHandler(group, events.Topic(t), sub, func(msg *message.Message) error {
		return r.handle(group, t, handler, msg)
	})
	return nil
}
