package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
)

// finalReasons are the decision reasons that end a candidate's story; any
// other reason on a verdict that is neither advised nor approved is a
// throttle or a deferral (CPU, rate limit, maintenance window, budget, ...),
// counted in MetricGateHolds.
var finalReasons = map[events.Reason]bool{
	events.ReasonBelowMinBenefit:  true,
	events.ReasonAlreadyApplied:   true,
	events.ReasonAlreadyRejected:  true,
	events.ReasonInvalidCandidate: true,
	events.ReasonUnknownTarget:    true,
}

// Consumer turns envelopes into observations on one sink. It is safe for
// concurrent use (one router handler per topic calls it).
type Consumer struct {
	name string
	sink Sink
	now  func() time.Time
	seen *seen
}

// NewConsumer returns the consumer called name (its consumer groups are
// indexpilot.adapters.<name>.<type>) writing to sink.
func NewConsumer(name string, sink Sink) (*Consumer, error) {
	if sink == nil {
		return nil, fmt.Errorf("new consumer %s: nil sink", name)
	}
	return &Consumer{name: name, sink: sink, now: time.Now, seen: newSeen(1 << 16)}, nil
}

// Handle observes one event. A redelivered event (same id, seen recently)
// is counted as a duplicate and changes nothing else; metrics keep no
// inbox, so a redelivery after a restart of the adapter counts again.
func (c *Consumer) Handle(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	t := string(env.Type)
	if !c.seen.add(env.ID) {
		c.sink.Count(ctx, MetricEventsConsumed, 1, []Tag{{"adapter", c.name}, {"type", t}, {"outcome", "duplicate"}})
		return nil, nil
	}
	c.sink.Count(ctx, MetricEventsConsumed, 1, []Tag{{"adapter", c.name}, {"type", t}, {"outcome", "ok"}})
	age := c.now().Sub(env.OccurredAt).Seconds()
	if age < 0 {
		age = 0
	}
	c.sink.Gauge(ctx, MetricEventAge, age, []Tag{{"adapter", c.name}, {"type", t}})

	outcome := "observed"
	switch x := p.(type) {
	case *events.IndexCandidateScored:
		outcome = "scored"
		c.sink.Count(ctx, MetricCandidates, 1, []Tag{{"target", x.Target}, {"what_if_method", x.WhatIfMethod}})
	case *events.IndexDecisionMade:
		outcome = string(x.Verdict)
		c.sink.Count(ctx, MetricDecisions, 1, []Tag{{"target", x.Target}, {"verdict", string(x.Verdict)}, {"reason", string(x.Reason)}})
		if x.Verdict != events.VerdictAdvised && x.Verdict != events.VerdictApproved && !finalReasons[x.Reason] {
			c.sink.Count(ctx, MetricGateHolds, 1, []Tag{{"target", x.Target}, {"reason", string(x.Reason)}})
		}
	case *events.IndexBuildCompleted:
		outcome = "built"
		if x.AlreadyExisted {
			outcome = "already_existed"
		}
		c.sink.Count(ctx, MetricBuilds, 1, []Tag{{"target", x.Target}, {"outcome", outcome}})
		if !x.AlreadyExisted {
			c.sink.Observe(ctx, MetricBuildSeconds, x.DurationMs/1000, []Tag{{"target", x.Target}})
		}
		c.sink.Event(ctx, "IndexPilot built "+x.IndexName,
			fmt.Sprintf("index %s on %s.%s (target %s) is valid; %s", x.IndexName, x.Index.Schema, x.Index.Table, x.Target, outcome),
			"success", []Tag{{"target", x.Target}, {"outcome", outcome}, {"event", "build"}})
	case *events.IndexBuildFailed:
		outcome = "failed"
		if x.Permanent {
			outcome = "failed_permanent"
		}
		c.sink.Count(ctx, MetricBuilds, 1, []Tag{{"target", x.Target}, {"outcome", outcome}})
		// The SQLSTATE only: the error text may quote values.
		c.sink.Event(ctx, "IndexPilot build failed: "+x.IndexName,
			fmt.Sprintf("index %s on %s.%s (target %s), attempt %d, sqlstate %q", x.IndexName, x.Index.Schema, x.Index.Table, x.Target, x.Attempt, x.SQLState),
			"error", []Tag{{"target", x.Target}, {"outcome", outcome}, {"event", "build"}})
	default:
		if env.Type == typeValidationCompleted {
			outcome = c.validation(ctx, env)
		}
	}
	c.sink.Count(ctx, MetricEventsProduced, 1, []Tag{{"type", t}, {"producer", env.Producer}, {"outcome", outcome}})
	return nil, nil
}

// typeValidationCompleted is the executor's before/after verdict. It is
// read from the wire contract (the JSON fields below) rather than a Go
// type, so that a consumer of it needs only the documented fields.
const typeValidationCompleted events.Type = "index_validation.completed.v1"

type validationFields struct {
	Target    string `json:"target"`
	IndexName string `json:"index_name"`
	Verdict   string `json:"verdict"`
	Reverted  bool   `json:"reverted"`
}

// validation counts a validation verdict and, for a revert, sends an event.
func (c *Consumer) validation(ctx context.Context, env events.Envelope) string {
	var v validationFields
	if err := json.Unmarshal(env.Data, &v); err != nil || v.Verdict == "" {
		return "observed"
	}
	c.sink.Count(ctx, MetricValidations, 1, []Tag{{"target", v.Target}, {"verdict", v.Verdict}})
	if !v.Reverted {
		return v.Verdict
	}
	c.sink.Count(ctx, MetricReverts, 1, []Tag{{"target", v.Target}, {"verdict", v.Verdict}})
	c.sink.Event(ctx, "IndexPilot reverted "+v.IndexName,
		fmt.Sprintf("index %s (target %s) was dropped after validation: %s", v.IndexName, v.Target, v.Verdict),
		"warning", []Tag{{"target", v.Target}, {"verdict", v.Verdict}, {"event", "revert"}})
	return "reverted"
}

// PollStates sets the recommendations gauge from the control database every
// interval until ctx ends: every state the schema allows, 0 where no
// recommendation is in it. A target that disappears is set to zero.
func (c *Consumer) PollStates(ctx context.Context, control *pgxpool.Pool, interval time.Duration, onErr func(error)) {
	last := map[[2]string]bool{}
	repeat(ctx, interval, func() {
		now, err := recommendationStates(ctx, control)
		if err != nil {
			if ctx.Err() == nil && onErr != nil {
				onErr(err)
			}
			return
		}
		for k := range last {
			if _, ok := now[k]; !ok {
				c.sink.Gauge(ctx, MetricRecommendations, 0, []Tag{{"target", k[0]}, {"state", k[1]}})
			}
		}
		last = map[[2]string]bool{}
		for k, n := range now {
			c.sink.Gauge(ctx, MetricRecommendations, float64(n), []Tag{{"target", k[0]}, {"state", k[1]}})
			last[k] = true
		}
	})
}

// repeat calls fn at once and then every interval until ctx ends.
func repeat(ctx context.Context, interval time.Duration, fn func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func recommendationStates(ctx context.Context, control *pgxpool.Pool) (map[[2]string]int64, error) {
	// Every state the schema allows (the check constraint on
	// recommendations.state, so a migration that adds one needs no change
	// here) for every target that has recommendations: absent states are 0.
	rows, err := control.Query(ctx, `/* indexpilot:adapters */
with states as (
  select distinct m[1] as state
    from pg_constraint c
    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
   cross join lateral regexp_matches(pg_get_constraintdef(c.oid), '''([^'']+)''', 'g') m
   where c.conrelid = 'indexpilot.recommendations'::regclass and c.contype = 'c' and a.attname = 'state'),
targets as (select distinct target from indexpilot.recommendations)
select t.target, s.state, count(r.id)
  from targets t cross join states s
  left join indexpilot.recommendations r on r.target = t.target and r.state = s.state
 group by 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("read recommendation states: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]int64{}
	for rows.Next() {
		var target, state string
		var n int64
		if err := rows.Scan(&target, &state, &n); err != nil {
			return nil, fmt.Errorf("read recommendation states: %w", err)
		}
		out[[2]string{target, state}] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read recommendation states: %w", err)
	}
	return out, nil
}

// seen is a bounded set of recent event ids.
type seen struct {
	mu   sync.Mutex
	max  int
	ring []string
	next int
	m    map[string]struct{}
}

func newSeen(max int) *seen { return &seen{max: max, m: map[string]struct{}{}} }

// add reports whether id is new, remembering it.
func (s *seen) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return false
	}
	if len(s.ring) < s.max {
		s.ring = append(s.ring, id)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % s.max
	}
	s.m[id] = struct{}{}
	return true
}
