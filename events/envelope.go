package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Type names a payload type and its version, e.g. "querystat.observed.v1".
// It is a stable string, never derived from a Go type name.
type Type string

// The event types of version 1.
const (
	TypeQueryStatObserved    Type = "querystat.observed.v1"
	TypeTableStatObserved    Type = "tablestat.observed.v1"
	TypeIndexCandidateScored Type = "index_candidate.scored.v1"
	TypeIndexDecisionMade    Type = "index_decision.made.v1"
	TypeIndexBuildCompleted  Type = "index_build.completed.v1"
	TypeIndexBuildFailed     Type = "index_build.failed.v1"
	// TypeIndexRemovalProposed is the scorer's proposal to drop an index.
	TypeIndexRemovalProposed Type = "index_removal.proposed.v1"
	// TypeBypassChanged is a run-time bypass change (the control topic).
	TypeBypassChanged Type = "control.bypass_changed.v1"
	// TypeIndexValidationCompleted is the executor's before/after verdict.
	TypeIndexValidationCompleted Type = "index_validation.completed.v1"
	// TypeIndexRemovalCompleted is an approved removal the executor dropped.
	TypeIndexRemovalCompleted Type = "index_removal.completed.v1"
)

// Types lists every live type, in pipeline order.
var Types = []Type{
	TypeQueryStatObserved,
	TypeTableStatObserved,
	TypeAppStatObserved,
	TypeIndexCandidateScored,
	TypeIndexDecisionMade,
	TypeIndexBuildCompleted,
	TypeIndexBuildFailed,
	TypeIndexRemovalProposed,
	TypeBypassChanged,
	TypeIndexValidationCompleted,
	TypeIndexRemovalCompleted,
}

// Topic is the one topic that carries events of type t: "indexpilot.<type>".
func Topic(t Type) string { return "indexpilot." + string(t) }

// PoisonTopic is where a consumer parks an event of topic that it can never
// process (a permanent error), so that it does not block the partition.
func PoisonTopic(topic string) string { return topic + ".poison" }

// ConsumerGroup names the consumer group of one handler of one stage:
// "indexpilot.<stage>.<handler>".
func ConsumerGroup(stage, handler string) string {
	return "indexpilot." + stage + "." + handler
}

// Envelope wraps every payload on the wire.
//
// ID is deterministic (see the New* constructors): the same fact gives the
// same id on every retry, restart or replay, which is what consumers
// deduplicate on. Subject is the target name and the Kafka partition key, so
// events of one target keep their order.
type Envelope struct {
	ID            string          `json:"id"`
	Type          Type            `json:"type"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Producer      string          `json:"producer"`
	Subject       string          `json:"subject"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Data          json.RawMessage `json:"data"`
}

// Payload is implemented by every payload type.
type Payload interface {
	// EventType is the versioned type the payload travels as.
	EventType() Type
	// EventID is the deterministic id of the event that carries it.
	EventID() string
	// EventSubject is the target the payload is about.
	EventSubject() string
	// Validate checks the fields every consumer relies on (validate.go).
	Validate() error
}

// ErrUnknownType is returned when an envelope names a type this build does
// not know.
var ErrUnknownType = errors.New("unknown event type")

// Wrap builds the envelope of p. occurredAt is truncated to microseconds and
// put in UTC so that the encoding is stable.
func Wrap(p Payload, producer, correlationID string, occurredAt time.Time) (Envelope, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	id := p.EventID()
	if correlationID == "" {
		correlationID = id
	}
	return Envelope{
		ID:            id,
		Type:          p.EventType(),
		OccurredAt:    occurredAt.UTC().Truncate(time.Microsecond),
		Producer:      producer,
		Subject:       p.EventSubject(),
		CorrelationID: correlationID,
		Data:          data,
	}, nil
}

// Marshal encodes an envelope in its wire form: compact JSON, fields in
// declaration order. It is what the bus publishes; Unmarshal reads it and
// the indented form alike.
func Marshal(e Envelope) ([]byte, error) {
	return json.Marshal(e)
}

// MarshalIndent encodes an envelope in its readable form: the wire form
// indented by two spaces, with a trailing newline. The golden fixtures and
// the catalog's examples are in this form.
func MarshalIndent(e Envelope) ([]byte, error) {
	b, err := Marshal(e)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(b) * 5 / 4)
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Unmarshal decodes an envelope strictly: unknown fields, trailing data and
// a missing id, type or subject are errors.
func Unmarshal(b []byte) (Envelope, error) {
	var e Envelope
	if err := decodeStrict(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	switch {
	case e.ID == "":
		return Envelope{}, errors.New("decode envelope: missing id")
	case e.Type == "":
		return Envelope{}, errors.New("decode envelope: missing type")
	case e.Subject == "":
		return Envelope{}, errors.New("decode envelope: missing subject")
	}
	return e, nil
}

// DecodeData decodes the envelope's payload strictly into out, after
// checking that the envelope carries out's type.
func DecodeData(e Envelope, out Payload) error {
	if e.Type != out.EventType() {
		return fmt.Errorf("decode %s: envelope carries %s", out.EventType(), e.Type)
	}
	if err := decodeStrict(e.Data, out); err != nil {
		return fmt.Errorf("decode %s: %w", e.Type, err)
	}
	return nil
}

// Decode decodes the payload of any known type and validates it.
func Decode(e Envelope) (Payload, error) {
	var p Payload
	switch e.Type {
	case TypeQueryStatObserved:
		p = &QueryStatObserved{}
	case TypeTableStatObserved:
		p = &TableStatObserved{}
	case TypeAppStatObserved:
		p = &AppStatObserved{}
	case TypeIndexCandidateScored:
		p = &IndexCandidateScored{}
	case TypeIndexDecisionMade:
		p = &IndexDecisionMade{}
	case TypeIndexBuildCompleted:
		p = &IndexBuildCompleted{}
	case TypeIndexBuildFailed:
		p = &IndexBuildFailed{}
	case TypeIndexRemovalProposed:
		p = &IndexRemovalProposed{}
	case TypeBypassChanged:
		p = &BypassChanged{}
	case TypeIndexValidationCompleted:
		p = &IndexValidationCompleted{}
	case TypeIndexRemovalCompleted:
		p = &IndexRemovalCompleted{}
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownType, e.Type)
	}
	if err := DecodeData(e, p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func decodeStrict(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
