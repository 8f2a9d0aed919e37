package bus

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// kafkaPublisher is the Kafka side of Publish. It turns messages into
// Kafka records with watermill-kafka's partitioning marshaler (the same
// one the subscribers unmarshal with) and hands all messages of one call
// to the producer together, so that a batch costs a few produce requests
// rather than one round trip per message, as watermill-kafka's own
// publisher does. Publish returns once every record is acknowledged.
type kafkaPublisher struct {
	producer  sarama.SyncProducer
	marshaler kafka.Marshaler

	// mu keeps Close from running under a Publish: sarama panics on a
	// send to a closed producer.
	mu     sync.RWMutex
	closed bool
}

func newKafkaPublisher(brokers []string, cfg *sarama.Config, m kafka.Marshaler) (*kafkaPublisher, error) {
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka producer: %w", err)
	}
	return &kafkaPublisher{producer: p, marshaler: m}, nil
}

// batchError says which messages of a batch were not published, by UUID.
type batchError struct {
	failed map[string]error
	first  error
}

func (e *batchError) Error() string {
	return fmt.Sprintf("%d of the batch not acknowledged: %v", len(e.failed), e.first)
}

func (e *batchError) Unwrap() error { return e.first }

// Publish implements message.Publisher.
func (p *kafkaPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("publisher closed")
	}
	recs := make([]*sarama.ProducerMessage, len(msgs))
	for i, msg := range msgs {
		r, err := p.marshaler.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("cannot marshal message %s: %w", msg.UUID, err)
		}
		r.Metadata = msg.UUID
		recs[i] = r
	}
	if len(recs) == 1 {
		_, _, err := p.producer.SendMessage(recs[0])
		return err
	}
	err := p.producer.SendMessages(recs)
	var perrs sarama.ProducerErrors
	if err == nil || !errors.As(err, &perrs) {
		return err
	}
	be := &batchError{failed: make(map[string]error, len(perrs))}
	for _, pe := range perrs {
		if id, ok := pe.Msg.Metadata.(string); ok {
			be.failed[id] = pe.Err
		}
		if be.first == nil {
			be.first = pe.Err
		}
	}
	return be
}

// Close implements message.Publisher.
func (p *kafkaPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.producer.Close()
}
