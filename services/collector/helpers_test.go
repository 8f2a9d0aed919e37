package collector

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// sink records every querystat and tablestat event published on a bus.
type sink struct {
	mu     sync.Mutex
	query  []*events.QueryStatObserved
	tables []*events.TableStatObserved
	apps   []appEvent
}

// appEvent is a received appstat event with its envelope id.
type appEvent struct {
	ID string
	*events.AppStatObserved
}

// subscribe starts recording before anything is published: the memory bus
// keeps nothing for absent subscribers.
func subscribe(t *testing.T, b *bus.Bus) *sink {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &sink{}
	sub, err := b.Subscriber("test")
	require.NoError(t, err)
	for _, typ := range []events.Type{events.TypeQueryStatObserved, events.TypeTableStatObserved, events.TypeAppStatObserved} {
		msgs, err := sub.Subscribe(ctx, events.Topic(typ))
		require.NoError(t, err)
		go func() {
			for m := range msgs {
				env, err := events.Unmarshal(m.Payload)
				if err == nil {
					var p events.Payload
					if p, err = events.Decode(env); err == nil {
						s.add(p)
						if a, ok := p.(*events.AppStatObserved); ok {
							s.mu.Lock()
							s.apps = append(s.apps, appEvent{ID: env.ID, AppStatObserved: a})
							s.mu.Unlock()
						}
					}
				}
				if err != nil {
					t.Errorf("undecodable event: %v", err)
				}
				m.Ack()
			}
		}()
	}
	return s
}

func (s *sink) add(p events.Payload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := p.(type) {
	case *events.QueryStatObserved:
		s.query = append(s.query, v)
	case *events.TableStatObserved:
		s.tables = append(s.tables, v)
	}
}

// queryStats returns the querystat events recorded so far that match keep
// (nil keeps all).
func (s *sink) queryStats(keep func(*events.QueryStatObserved) bool) []*events.QueryStatObserved {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*events.QueryStatObserved
	for _, q := range s.query {
		if keep == nil || keep(q) {
			out = append(out, q)
		}
	}
	return out
}

// tableStats returns the tablestat events recorded so far that match keep.
func (s *sink) tableStats(keep func(*events.TableStatObserved) bool) []*events.TableStatObserved {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*events.TableStatObserved
	for _, ts := range s.tables {
		if keep == nil || keep(ts) {
			out = append(out, ts)
		}
	}
	return out
}

// polls lists the distinct poll times of target seen in table statistics,
// in order.
func (s *sink) polls(target string) []time.Time {
	var out []time.Time
	for _, ts := range s.tableStats(func(ts *events.TableStatObserved) bool { return ts.Target == target }) {
		if !slices.ContainsFunc(out, ts.ObservedAt.Equal) {
			out = append(out, ts.ObservedAt)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// deps builds collector dependencies on the memory bus for the given
// targets. Logs go to logs when it is non-nil.
func deps(t *testing.T, targets []config.Target, interval time.Duration, logs io.Writer) stage.Deps {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := config.Default()
	cfg.Targets = targets
	cfg.Collector.Interval = interval
	b := bus.NewMemory(logger)
	ts := stage.NewTargets(targets, Name)
	t.Cleanup(func() {
		ts.Close()
		_ = b.Close()
	})
	return stage.Deps{Config: cfg, Bus: b, Targets: ts, Logger: logger}
}

// appStats returns the appstat events received so far.
func (s *sink) appStats() []appEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]appEvent(nil), s.apps...)
}
