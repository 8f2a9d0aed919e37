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

// NewKafka is the Kafka transport: a sync producer keyed by target name and
// consumer groups that start from the oldest offset, so that a new group
// (a new stage, a replay) misses nothing.
func NewKafka(cfg config.Kafka, logger *slog.Logger) (*Bus, error) {
	version, err := sarama.ParseKafkaVersion(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("bus.kafka.version: %w", err)
	}
	if version.IsAtLeast(sarama.V2_1_0_0) == false {
		version = sarama.V2_1_0_0
	}
	wlog := watermill.NewSlogLogger(logger)
	marshaler := kafka.NewWithPartitioningMarshaler(KeyBySubject)

	pcfg := kafka.DefaultSaramaSyncPublisherConfig()
	pcfg.Version = version
	pcfg.ClientID = "indexpilot"
	pcfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	pcfg.Producer.RequiredAcks = sarama.WaitForAll
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers: cfg.Brokers, Marshaler: marshaler, OverwriteSaramaConfig: pcfg,
	}, wlog)
	if err != nil {
		return nil, fmt.Errorf("new kafka publisher: %w", err)
	}
	b := (&Bus{transport: config.TransportKafka, logger: logger, wlog: wlog, pub: pub}).init()
	b.closers = append(b.closers, pub.Close)
	b.newSub = func(group string) (message.Subscriber, error) {
		scfg := kafka.DefaultSaramaSubscriberConfig()
		scfg.Version = version
		scfg.ClientID = "indexpilot"
		scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		scfg.Consumer.Offsets.AutoCommit.Enable = true
		scfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
		scfg.Metadata.Retry.Backoff = 250 * time.Millisecond
		return kafka.NewSubscriber(kafka.SubscriberConfig{
			Brokers: cfg.Brokers, Unmarshaler: marshaler, ConsumerGroup: group,
			OverwriteSaramaConfig: scfg, NackResendSleep: 200 * time.Millisecond,
			ReconnectRetrySleep: 500 * time.Millisecond,
		}, wlog)
	}
	return b, nil
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

// Publish wraps each payload and publishes it on its type's topic. Each
// publish is a producer span (see trace.go for its parent) whose context
// travels in the message metadata.
func (b *Bus) Publish(ctx context.Context, producer, correlationID string, payloads ...events.Payload) error {
	for _, p := range payloads {
		if err := b.publishOne(ctx, producer, correlationID, p); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) publishOne(ctx context.Context, producer, correlationID string, p events.Payload) error {
	topic := events.Topic(p.EventType())
	attrs := append(spanAttrs(p, p.EventID()),
		attribute.String(telemetry.AttrStage, producer),
		attribute.String("messaging.system", b.transport),
		attribute.String("messaging.destination.name", topic))
	ctx, span := telemetry.Tracer().Start(b.parentContext(ctx, p), "publish "+string(p.EventType()),
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	defer span.End()
	msg, err := EncodeContext(ctx, p, producer, correlationID, time.Now())
	if err != nil {
		span.SetStatus(codes.Error, "encode")
		return err
	}
	msg.SetContext(ctx)
	if err := b.pub.Publish(topic, msg); err != nil {
		span.SetStatus(codes.Error, "publish")
		return fmt.Errorf("publish %s: %w", p.EventType(), err)
	}
	b.inst.published.Add(ctx, 1, metric.WithAttributes(
		attribute.String("stage", producer), attribute.String("type", string(p.EventType()))))
	return nil
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
