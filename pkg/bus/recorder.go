package bus

import (
	"context"
	"fmt"
	"sync"

	"github.com/indexpilot/indexpilot/events"
)

// Recorder collects the envelopes published on one topic, for tests and
// for the CLI's progress output. It subscribes in its own consumer group.
type Recorder struct {
	mu   sync.Mutex
	envs []events.Envelope
}

// Record subscribes to the topic of t in group and records every envelope
// until ctx is done.
func Record(ctx context.Context, b *Bus, group string, t events.Type) (*Recorder, error) {
	sub, err := b.Subscriber(group)
	if err != nil {
		return nil, err
	}
	ch, err := sub.Subscribe(ctx, events.Topic(t))
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", events.Topic(t), err)
	}
	r := &Recorder{}
	go func() {
		for msg := range ch {
			env, err := events.Unmarshal(msg.Payload)
			if err == nil {
				r.mu.Lock()
				r.envs = append(r.envs, env)
				r.mu.Unlock()
			}
			msg.Ack()
		}
		_ = sub.Close()
	}()
	return r, nil
}

// All returns what was recorded so far, in arrival order.
func (r *Recorder) All() []events.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Envelope(nil), r.envs...)
}

// DistinctIDs counts the distinct event ids recorded.
func (r *Recorder) DistinctIDs() int {
	seen := map[string]bool{}
	for _, e := range r.All() {
		seen[e.ID] = true
	}
	return len(seen)
}
