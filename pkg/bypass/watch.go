package bypass

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// State is the live bypass of one running instance: the configuration
// plus every run-time change it has seen. Safe for concurrent use.
type State struct {
	now func() time.Time

	mu      sync.Mutex
	snap    Snapshot
	changed chan struct{}
}

// NewState returns a state from the configured switches only (no database,
// no control topic): what a process started with the startup bypass uses,
// and what tests build on.
func NewState(b config.Bypass, now func() time.Time) *State {
	if now == nil {
		now = time.Now
	}
	return &State{now: now, snap: Snapshot{Config: FromConfig(b, now()), Runtime: map[key]Switch{}}, changed: make(chan struct{})}
}

// Snapshot returns a copy of the current switches.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := make(map[key]Switch, len(s.snap.Runtime))
	for k, v := range s.snap.Runtime {
		rt[k] = v
	}
	return Snapshot{Config: append([]Switch(nil), s.snap.Config...), Runtime: rt}
}

// Allows reports whether level/name is allowed now (see Snapshot.Allows).
func (s *State) Allows(l Level, name string) (bool, Denial) {
	return s.Snapshot().Allows(l, name, s.now())
}

// AllowsDDL reports whether DDL for feature may start now.
func (s *State) AllowsDDL(feature string) (bool, Denial) {
	return s.Snapshot().AllowsDDL(feature, s.now())
}

// Stopped reports whether all DDL is halted now (an emergency stop, or the
// system level off) and why. It matches the executor's Stopper seam, so a
// *State can be passed where one is expected.
func (s *State) Stopped() (bool, string) {
	ok, why := s.Allows(LevelEmergency, "")
	if ok {
		return false, ""
	}
	return true, why.Detail()
}

// StartupBypassed reports whether the startup level is on: the process
// must not touch the metadata schema.
func (s *State) StartupBypassed() bool {
	ok, _ := s.Allows(LevelStartup, "")
	return !ok
}

// Changed returns a channel closed at the next change of the state.
func (s *State) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Apply merges run-time switches (newer change numbers win) and wakes
// Changed waiters if anything changed.
func (s *State) Apply(sws ...Switch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, sw := range sws {
		if s.snap.merge(sw) {
			changed = true
		}
	}
	if changed {
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// GuardDDL returns a context for one DDL statement that is cancelled, with
// cause ErrEmergencyStop, as soon as an emergency stop (or the system
// level) disables DDL. Call cancel when the statement is done. If DDL is
// already halted the context is cancelled at once.
func (s *State) GuardDDL(ctx context.Context) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			ch := s.Changed()
			if ok, _ := s.Allows(LevelEmergency, ""); !ok {
				cancel(ErrEmergencyStop)
				return
			}
			select {
			case <-gctx.Done():
				return
			case <-ch:
			case <-time.After(time.Second):
				// Expiry and clock-driven states need no event.
			}
		}
	}()
	return gctx, func() { cancel(context.Canceled) }
}

func instanceID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Watch returns the live bypass of a running instance of stage who and
// keeps it current until ctx ends: it reads indexpilot.bypass_state, then
// LISTENs on NotifyChannel of the control database (one dedicated
// connection per process, re-established with back-off when it drops, the
// table re-read on every reconnection) and re-reads the table at each
// notification; it also consumes the control topic in a consumer group of
// its own (indexpilot.<who>.bypass.<random>, so every instance sees every
// change) and, as the fallback for anything missed, re-reads the table
// every features.bypass.refresh_interval, ending expired emergency stops
// and other timed switches on the way. With the startup bypass configured
// it touches no table and only follows the control topic.
func Watch(ctx context.Context, d stage.Deps, who string) (*State, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	st := NewState(d.Config.Features.Bypass, d.Clock)
	useDB := !st.StartupBypassed()
	if useDB {
		sws, err := LoadRuntime(ctx, d.Control)
		if err != nil {
			return nil, err
		}
		st.Apply(sws...)
	}
	log := d.Logger.With("component", "bypass")
	if useDB {
		follow(ctx, d.Control, st, log)
	}
	group := events.ConsumerGroup(who, "bypass."+instanceID())
	sub, err := d.Bus.Subscriber(group)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", group, err)
	}
	msgs, err := sub.Subscribe(ctx, events.Topic(events.TypeBypassChanged))
	if err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("subscribe %s: %w", group, err)
	}
	go func() {
		defer sub.Close()
		for msg := range msgs {
			if err := applyEvent(st, msg.Payload, log); err != nil {
				// Parked, not retried: the same bytes never decode, and
				// bypass_state stays the source of truth. Each instance
				// (its own group) parks its own copy, under the same
				// message id.
				topic := events.Topic(events.TypeBypassChanged)
				if perr := d.Bus.Park(topic, msg, err); perr != nil {
					log.Warn("park a bad bypass event", "event_id", msg.UUID, "error", perr.Error())
				}
				log.Warn("bad bypass event parked in poison topic", "event_id", msg.UUID, "error", err.Error())
			}
			msg.Ack()
		}
	}()
	if useDB {
		go func() {
			every := d.Config.Features.Bypass.RefreshInterval
			if every <= 0 {
				// A hand-built config (tests, embedders) may leave it unset.
				every = config.Default().Features.Bypass.RefreshInterval
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				ended, err := ExpireDue(ctx, d.Control, d.Clock())
				if err != nil && ctx.Err() == nil {
					log.Warn("expire bypass switches", "error", err.Error())
				}
				for _, sw := range ended {
					st.Apply(sw)
					log.Info("bypass recovered automatically", "level", sw.Level, "name", sw.Name)
					if err := d.Bus.Publish(ctx, who, "", sw.Event()); err != nil && ctx.Err() == nil {
						log.Warn("publish bypass recovery", "error", err.Error())
					}
				}
				sws, err := LoadRuntime(ctx, d.Control)
				if err != nil {
					if ctx.Err() == nil {
						log.Warn("refresh bypass state", "error", err.Error())
					}
					continue
				}
				st.Apply(sws...)
			}
		}()
	}
	return st, nil
}

// applyEvent decodes one message of the control topic (events.Read) and
// applies its switch.
func applyEvent(st *State, body []byte, log *slog.Logger) error {
	_, p, err := events.Read(body)
	if err != nil {
		return err
	}
	bc, ok := p.(*events.BypassChanged)
	if !ok {
		return fmt.Errorf("topic %s carries %s events, got %s", events.Topic(events.TypeBypassChanged),
			events.TypeBypassChanged, p.EventType())
	}
	sw, err := fromEvent(bc)
	if err != nil {
		return err
	}
	st.Apply(sw)
	log.Info("bypass changed", "level", sw.Level, "name", sw.Name, "disabled", sw.Disabled, "change_id", sw.ChangeID)
	return nil
}
