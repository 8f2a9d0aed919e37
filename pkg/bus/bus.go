// Package bus builds IndexPilot's message transport: the in-process
// GoChannel for the all-in-one process, or Kafka through watermill-kafka v3
// for separate stages. Both get the same router middleware and the same
// envelope handling, so stage code never knows which one it runs on.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Metadata keys every message carries besides its envelope payload.
const (
	MetaSubject = "subject"
	MetaType    = "type"
)

// Retry is the retry policy of every handler: transient errors are retried
// with exponential backoff, then the message is nacked and redelivered.
// MaxRetries is explicit because zero would mean a single attempt.
var Retry = middleware.Retry{
	MaxRetries:          5,
	InitialInterval:     100 * time.Millisecond,
	MaxInterval:         5 * time.Second,
	Multiplier:          2,
	ResetContextOnRetry: true,
}

// Bus is a publisher plus a factory of per-consumer-group subscribers.
type Bus struct {
	transport string
	logger    *slog.Logger
	wlog      watermill.LoggerAdapter
	pub       message.Publisher
	newSub    func(group string) (message.Subscriber, error)

	mu      sync.Mutex
	closers []func() error

	parents *parents
	inst    instruments
}

// init sets what every transport shares.
func (b *Bus) init() *Bus {
	b.parents = newParents(10000)
	b.inst = newInstruments()
	return b
}

// New builds the bus cfg asks for.
func New(cfg config.Bus, logger *slog.Logger) (*Bus, error) {
	if logger == nil {
		return nil, errors.New("new bus: nil logger")
	}
	switch cfg.Transport {
	case config.TransportMemory, "":
		return NewMemory(logger), nil
	case config.TransportKafka:
		return NewKafka(cfg.Kafka, logger)
	}
	return nil, fmt.Errorf("new bus: unknown transport %q", cfg.Transport)
}

// NewMemory is the in-process transport. Each subscriber of a topic gets
// every message, as a separate consumer group would.
func NewMemory(logger *slog.Logger) *Bus {
	wlog := watermill.NewSlogLogger(logger)
	ch := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, wlog)
	b := (&Bus{transport: config.TransportMemory, logger: logger, wlog: wlog, pub: ch}).init()
	b.newSub = func(string) (message.Subscriber, error) { return noClose{ch}, nil }
	b.closers = append(b.closers, ch.Close)
	return b
}

// noClose keeps a router from closing the shared GoChannel when it stops:
// the Bus closes it once.
type noClose struct{ message.Subscriber }

func (noClose) Close() error { return nil }

// KeyBySubject is the partition key: the envelope subject, i.e. the target
// name, so one target's events stay in order on one partition.
func KeyBySubject(_ string, msg *message.Message) (string, error) {
	k := msg.Metadata.Get(MetaSubject)
	if k == "" {
		return "", fmt.Errorf("message %s has no %s metadata", msg.UUID, MetaSubject)
	}
	return k, nil
}

// NewKafka is the Kafka transport: a sync producer keyed by target name
// that sends each Publish call's messages together (kafkapub.go), and
// consumer groups that start from the oldest offset, so that a new group
// (a new stage, a replay) misses nothing.
func NewKafka(cfg config.Kafka, logger *slog.Logger) (*Bus, error) {
	base, err := SaramaConfig(cfg, "indexpilot")
	if err != nil {
		return nil, err
	}
	wlog := watermill.NewSlogLogger(logger)
	marshaler := kafka.NewWithPartitioningMarshaler(KeyBySubject)

	pcfg := *base
	pcfg.Producer.Retry.Max = 10
	pcfg.Producer.Return.Successes = true
	pcfg.Producer.RequiredAcks = sarama.WaitForAll
	pub, err := newKafkaPublisher(cfg.Brokers, &pcfg, marshaler)
	if err != nil {
		return nil, fmt.Errorf("new kafka publisher: %w", err)
	}
	b := (&Bus{transport: config.TransportKafka, logger: logger, wlog: wlog, pub: pub}).init()
	b.closers = append(b.closers, pub.Close)
	b.newSub = func(group string) (message.Subscriber, error) {
		scfg := *base
		scfg.Consumer.Return.Errors = true
		scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		scfg.Consumer.Offsets.AutoCommit.Enable = true
		scfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
		return kafka.NewSubscriber(kafka.SubscriberConfig{
			Brokers: cfg.Brokers, Unmarshaler: marshaler, ConsumerGroup: group,
			OverwriteSaramaConfig: &scfg, NackResendSleep: 200 * time.Millisecond,
			ReconnectRetrySleep: 500 * time.Millisecond,
		}, wlog)
	}
	return b, nil
}

// Consumer group timing of every IndexPilot Kafka client (see
// docs/reliability.md, "Consumer groups"). Two orders matter:
//
//   - RebalanceTimeout < NetReadTimeout. The coordinator may hold a
//     JoinGroup or SyncGroup answer for up to RebalanceTimeout (while it
//     waits for a member that does not rejoin), and Sarama waits for any
//     answer no longer than NetReadTimeout. With Sarama's defaults (60 s
//     against 30 s) a member that died mid-rebalance made every survivor's
//     join time out; each retry joined as a new member, restarted the
//     rebalance, and the group never formed again.
//   - RebalanceTimeout + 2 heartbeats < SessionTimeout. A member waiting in
//     JoinGroup sends no heartbeat; a broker that counts its session
//     meanwhile (kfake does, Kafka does not) drops it, and its join is never
//     answered. The rebalance has to end before then.
//
// A dead member is dropped after SessionTimeout without a heartbeat, or
// when a rebalance it does not rejoin ends, RebalanceTimeout after the
// last join. A member whose in-flight handler keeps it from rejoining
// within RebalanceTimeout is left out of that generation and joins again.
const (
	SessionTimeout    = 20 * time.Second
	HeartbeatInterval = 3 * time.Second
	RebalanceTimeout  = 10 * time.Second
	NetReadTimeout    = 30 * time.Second
)

// SaramaConfig is the client configuration every IndexPilot Kafka client
// starts from (the bus's producer and subscribers, the lag reader, replay):
// the configured protocol version (at least 2.1, which consumer groups and
// record headers need), the client id, a short metadata retry backoff and
// the consumer group timing above.
func SaramaConfig(cfg config.Kafka, clientID string) (*sarama.Config, error) {
	version, err := sarama.ParseKafkaVersion(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("bus.kafka.version: %w", err)
	}
	if !version.IsAtLeast(sarama.V2_1_0_0) {
		version = sarama.V2_1_0_0
	}
	c := sarama.NewConfig()
	c.Version = version
	c.ClientID = clientID
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Net.ReadTimeout = NetReadTimeout
	c.Consumer.Group.Session.Timeout = SessionTimeout
	c.Consumer.Group.Heartbeat.Interval = HeartbeatInterval
	c.Consumer.Group.Rebalance.Timeout = RebalanceTimeout
	return c, nil
}

// Transport is "memory" or "kafka".
func (b *Bus) Transport() string { return b.transport }

// Publisher is the raw publisher (tests use it to redeliver).
func (b *Bus) Publisher() message.Publisher { return b.pub }

// Subscriber returns a subscriber in consumer group.
func (b *Bus) Subscriber(group string) (message.Subscriber, error) { return b.newSub(group) }

// Encode turns a payload into a message: the canonical envelope as payload,
// the event id as message UUID, subject and type as metadata.
func Encode(p events.Payload, producer, correlationID string, at time.Time) (*message.Message, error) {
	return EncodeContext(context.Background(), p, producer, correlationID, at)
}

// EncodeContext is Encode that also writes the span context of ctx, if any,
// into the metadata (W3C traceparent/tracestate), which Kafka carries as
// message headers.
func EncodeContext(ctx context.Context, p events.Payload, producer, correlationID string, at time.Time) (*message.Message, error) {
	env, err := events.Wrap(p, producer, correlationID, at)
	if err != nil {
		return nil, err
	}
	return encodeEnvelope(ctx, env)
}

// encodeEnvelope is the message of a wrapped envelope.
func encodeEnvelope(ctx context.Context, env events.Envelope) (*message.Message, error) {
	body, err := events.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", env.Type, err)
	}
	msg := message.NewMessage(env.ID, body)
	msg.Metadata.Set(MetaSubject, env.Subject)
	msg.Metadata.Set(MetaType, string(env.Type))
	middleware.SetCorrelationID(env.CorrelationID, msg)
	telemetry.Inject(ctx, msg.Metadata)
	return msg, nil
}

// Publish wraps each payload and publishes it on its type's topic; the
// payloads of one call go to the transport together. It stops at the
// first error; PublishBatch says which payloads made it.
func (b *Bus) Publish(ctx context.Context, producer, correlationID string, payloads ...events.Payload) error {
	_, err := b.PublishBatch(ctx, producer, correlationID, payloads)
	return err
}

// PublishBatch publishes payloads as one batch and reports, per payload,
// whether it was published (acknowledged by Kafka, or handed to the
// in-process channel). Each payload is its own producer span (see trace.go
// for its parent) whose context travels in the message metadata. On Kafka
// the whole batch costs a few produce requests instead of a round trip
// per message; payloads of one target keep their order on its partition.
func (b *Bus) PublishBatch(ctx context.Context, producer, correlationID string, payloads []events.Payload) ([]bool, error) {
	return b.publishBatch(ctx, nil, producer, correlationID, payloads)
}

// PublishWithParents is Publish where payload i's producer span starts
// from parents[i] (a context carrying the span it belongs to, such as the
// scorer's span of one candidate) rather than from ctx; a nil entry means
// ctx. The payloads still go to the transport together.
func (b *Bus) PublishWithParents(ctx context.Context, producer, correlationID string, payloads []events.Payload, parents []context.Context) error {
	if len(parents) != len(payloads) {
		return fmt.Errorf("publish: %d parents for %d payloads", len(parents), len(payloads))
	}
	_, err := b.publishBatch(ctx, parents, producer, correlationID, payloads)
	return err
}

func (b *Bus) publishBatch(ctx context.Context, parents []context.Context, producer, correlationID string, payloads []events.Payload) ([]bool, error) {
	done := make([]bool, len(payloads))
	type item struct {
		i    int
		msg  *message.Message
		ctx  context.Context
		span trace.Span
	}
	items := make([]item, 0, len(payloads))
	endAll := func(from int, status string) {
		for _, it := range items[from:] {
			if status != "" {
				it.span.SetStatus(codes.Error, status)
			}
			it.span.End()
		}
	}
	for i, p := range payloads {
		env, err := events.Wrap(p, producer, correlationID, time.Now())
		if err != nil {
			endAll(0, "not published")
			return done, err
		}
		topic := events.Topic(p.EventType())
		attrs := append(spanAttrs(p, env.ID),
			attribute.String(telemetry.AttrStage, producer),
			attribute.String("messaging.system", b.transport),
			attribute.String("messaging.destination.name", topic))
		pctx := ctx
		if parents != nil && parents[i] != nil {
			pctx = parents[i]
		}
		sctx, span := telemetry.Tracer().Start(b.parentContext(pctx, p), "publish "+string(p.EventType()),
			trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
		msg, err := encodeEnvelope(sctx, env)
		if err != nil {
			span.SetStatus(codes.Error, "encode")
			span.End()
			endAll(0, "not published")
			return done, err
		}
		msg.SetContext(sctx)
		items = append(items, item{i: i, msg: msg, ctx: sctx, span: span})
	}
	// One call per run of payloads with the same topic, in order.
	for lo := 0; lo < len(items); {
		topic := events.Topic(payloads[items[lo].i].EventType())
		hi := lo + 1
		for hi < len(items) && events.Topic(payloads[items[hi].i].EventType()) == topic {
			hi++
		}
		msgs := make([]*message.Message, 0, hi-lo)
		for _, it := range items[lo:hi] {
			msgs = append(msgs, it.msg)
		}
		err := b.pub.Publish(topic, msgs...)
		var be *batchError
		partial := errors.As(err, &be)
		for _, it := range items[lo:hi] {
			p := payloads[it.i]
			if err != nil && (!partial || be.failed[it.msg.UUID] != nil) {
				it.span.SetStatus(codes.Error, "publish")
				it.span.End()
				continue
			}
			done[it.i] = true
			b.inst.published.Add(it.ctx, 1, metric.WithAttributes(
				attribute.String("stage", producer), attribute.String("type", string(p.EventType()))))
			it.span.End()
		}
		if err != nil {
			endAll(hi, "not published")
			return done, fmt.Errorf("publish %s: %w", payloads[items[lo].i].EventType(), err)
		}
		lo = hi
	}
	return done, nil
}

// Close closes the publisher and, for memory, the shared channel. Routers
// must be closed first.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c())
	}
	b.closers = nil
	return errors.Join(errs...)
}
