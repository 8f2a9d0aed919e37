package bus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
)

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func example(t events.Type) events.Payload {
	for _, p := range events.Examples() {
		if p.EventType() == t {
			return p
		}
	}
	panic("no example for " + string(t))
}

// TestMemoryBusRetriesTransientAndParksPermanent runs the real router and
// middleware on the memory transport.
func TestMemoryBusRetriesTransientAndParksPermanent(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	poisonCh, err := b.Publisher().(message.Subscriber).Subscribe(ctx, events.PoisonTopic(events.Topic(events.TypeQueryStatObserved)))
	if err != nil {
		t.Fatal(err)
	}
	decisions, err := bus.Record(ctx, b, "test.decisions", events.TypeIndexDecisionMade)
	if err != nil {
		t.Fatal(err)
	}

	r, err := b.NewRouter("test", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var candidateCalls, queryCalls atomic.Int32
	if err := r.Handle("cand", events.TypeIndexCandidateScored, func(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
		if candidateCalls.Add(1) < 3 {
			return nil, errors.New("transient: try again")
		}
		return []events.Payload{example(events.TypeIndexDecisionMade)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Handle("qs", events.TypeQueryStatObserved, func(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
		queryCalls.Add(1)
		return nil, bus.Permanent(errors.New("bad statement"))
	}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(ctx) }()
	<-r.Running()

	if err := b.Publish(ctx, "test", "", example(events.TypeIndexCandidateScored), example(events.TypeQueryStatObserved)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return decisions.DistinctIDs() == 1 }, "the decision published by the handler after two transient failures")
	if got := candidateCalls.Load(); got != 3 {
		t.Errorf("candidate handler ran %d times, want 3 (two retries)", got)
	}
	select {
	case msg := <-poisonCh:
		if msg.Metadata.Get(bus.MetaPoisonReason) != "bad statement" {
			t.Errorf("poison reason = %q", msg.Metadata.Get(bus.MetaPoisonReason))
		}
		msg.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("permanent failure was not parked in the poison topic")
	}
	if got := queryCalls.Load(); got != 1 {
		t.Errorf("permanent failure was retried: %d calls", got)
	}
	env := decisions.All()[0]
	if env.Subject != "main" || env.Type != events.TypeIndexDecisionMade {
		t.Errorf("published envelope = %+v", env)
	}
}

func TestKeyBySubjectNeedsASubject(t *testing.T) {
	msg, err := bus.Encode(example(events.TypeTableStatObserved), "test", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, err := bus.KeyBySubject("topic", msg)
	if err != nil || k != "main" {
		t.Fatalf("key = %q, %v", k, err)
	}
	if _, err := bus.KeyBySubject("topic", message.NewMessage("x", nil)); err == nil {
		t.Fatal("a message without subject got a key")
	}
}

// TestGroupTimingOrders: every Kafka client gets the consumer group timing
// whose orders keep a group alive after a member dies mid-rebalance (see
// SessionTimeout; TestKilledGroupMemberIsReplaced in integration shows it).
func TestGroupTimingOrders(t *testing.T) {
	c, err := bus.SaramaConfig(config.Kafka{Version: "3.6.0"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g := c.Consumer.Group
	if g.Rebalance.Timeout >= c.Net.ReadTimeout {
		t.Errorf("rebalance timeout %s not below the read timeout %s: a join waiting on a dead member times out", g.Rebalance.Timeout, c.Net.ReadTimeout)
	}
	if g.Rebalance.Timeout+2*g.Heartbeat.Interval >= g.Session.Timeout {
		t.Errorf("rebalance timeout %s + 2 heartbeats %s not below the session timeout %s", g.Rebalance.Timeout, g.Heartbeat.Interval, g.Session.Timeout)
	}
}
