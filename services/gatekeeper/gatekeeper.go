// Package gatekeeper decides what happens to each scored candidate. It
// applies every safety rule in a fixed order (docs/gatekeeper.md): the
// bypass, minimum benefit, the blocklist, the storage budget, the
// write-performance limits, the mode, approval, the emergency stop, the
// forecast hold, the maintenance window, the CPU throttle and the
// token-bucket rate limits.
// Each verdict carries a typed reason, is recorded on the recommendation
// and in mutation_log with its lineage, and is published. A recommendation
// that must wait is deferred and evaluated again by a loop until it passes;
// it is never dropped. A candidate that arrives twice has one effect.
package gatekeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper/internal/cpu"
)

// Name is the stage name: the producer of its events and its SQL marker.
const Name = "gatekeeper"

const marker = "/* indexpilot:gatekeeper */ "

// Consumer is the inbox key of the candidate handler.
var Consumer = events.ConsumerGroup(Name, "candidates")

// Recommendation states.
const (
	StateProposed = "proposed"
	StateApproved = "approved"
	StateDeferred = "deferred"
	StateBuilding = "building"
	StateApplied  = "applied"
	StateFailed   = "failed"
	StateRejected = "rejected"
	StateReverted = "reverted"
	// StateRemoved: IndexPilot built the index and an approved removal
	// dropped it later (migration 0017).
	StateRemoved    = "removed"
	StateSuperseded = "superseded"
	// StateHeld: the scorer held the candidate back (budget, cap); an
	// operator's approval sends it through the rules anyway.
	StateHeld = "held"
)

// CPUSource measures the CPU use of a target's database host, in percent.
type CPUSource interface {
	CPUPercent(ctx context.Context, target string) (float64, error)
}

// Options are the injectable parts of the stage; zero values mean the
// configured ones.
type Options struct {
	// CPU replaces the configured gatekeeper.cpu.source.
	CPU CPUSource
	// Bypass replaces the watched bypass state.
	Bypass *bypass.State
}

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

// Start consumes scored candidates until ctx is done.
func Start(ctx context.Context, d stage.Deps) error { return StartWith(ctx, d, Options{}) }

// StartWith is Start with injected parts.
func StartWith(ctx context.Context, d stage.Deps, opts Options) error {
	if err := d.Check(); err != nil {
		return err
	}
	if opts.Bypass == nil {
		st, err := bypass.Watch(ctx, d, Name)
		if err != nil {
			return err
		}
		opts.Bypass = st
	}
	g := newGatekeeper(d, opts)
	r, err := d.Bus.NewRouter(Name, time.Minute)
	if err != nil {
		return err
	}
	if err := r.Handle("candidates", events.TypeIndexCandidateScored, g.Handle); err != nil {
		return err
	}
	if err := r.Handle("removals", events.TypeIndexRemovalProposed, g.HandleRemoval); err != nil {
		return err
	}
	go func() {
		select {
		case <-r.Running():
			d.Ready()
		case <-ctx.Done():
		}
	}()
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); g.loop(ctx) }()
	defer func() { <-loopDone }()
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("gatekeeper router: %w", err)
	}
	return nil
}

// Gatekeeper holds the candidate handler and the re-evaluation loop.
type Gatekeeper struct {
	deps stage.Deps
	cfg  config.Config
	cpu  CPUSource
	bp   *bypass.State
	log  *slog.Logger

	// health records each candidate decided and each recheck pass in
	// indexpilot.stage_health.
	health *metadata.StageHealth

	mu       sync.Mutex
	cpuCache map[string]cpuSample
}

type cpuSample struct {
	pct float64
	err error
	at  time.Time
}

// New returns a gatekeeper on d, for callers that drive Handle themselves.
// Without an injected bypass state it uses the configured switches only.
func New(d stage.Deps, opts Options) (*Gatekeeper, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	if opts.Bypass == nil {
		opts.Bypass = bypass.NewState(d.Config.Features.Bypass, d.Clock)
	}
	return newGatekeeper(d, opts), nil
}

func newGatekeeper(d stage.Deps, opts Options) *Gatekeeper {
	g := &Gatekeeper{deps: d, cfg: d.Config, cpu: opts.CPU, bp: opts.Bypass, log: d.Logger, cpuCache: map[string]cpuSample{},
		health: metadata.NewStageHealth(d.Control, d.Logger, Name)}
	if g.cpu == nil {
		g.cpu = configuredCPU{d: d}
	} else if g.cfg.Gatekeeper.CPU.Source == config.CPUSourceNone {
		// An injected source is measured whatever the configured one.
		g.cfg.Gatekeeper.CPU.Source = "injected"
	}
	return g
}

// configuredCPU is the source gatekeeper.cpu.source names.
type configuredCPU struct{ d stage.Deps }

func (c configuredCPU) CPUPercent(ctx context.Context, target string) (float64, error) {
	cc := c.d.Config.Gatekeeper.CPU
	switch cc.Source {
	case config.CPUSourceLocal:
		return cpu.Local{Every: cc.SampleInterval}.Percent(ctx)
	case config.CPUSourcePrometheus:
		return cpu.Prometheus{URL: cc.PrometheusURL}.Percent(ctx)
	case config.CPUSourceNone:
		return 0, nil
	}
	pool, err := c.d.Targets.Pool(ctx, target)
	if err != nil {
		return 0, err
	}
	pct, _, err := cpu.Pg{Cores: cc.Cores, Every: cc.SampleInterval}.Percent(ctx, pool)
	return pct, err
}

// measureCPU caches a target's CPU sample for a second, so that a burst of
// candidates costs one measurement.
func (g *Gatekeeper) measureCPU(ctx context.Context, target string) (float64, error) {
	if _, configured := g.cpu.(configuredCPU); !configured {
		return g.cpu.CPUPercent(ctx, target) // injected: ask every time
	}
	now := time.Now()
	g.mu.Lock()
	s, ok := g.cpuCache[target]
	g.mu.Unlock()
	if ok && now.Sub(s.at) < time.Second {
		return s.pct, s.err
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pct, err := g.cpu.CPUPercent(mctx, target)
	g.mu.Lock()
	g.cpuCache[target] = cpuSample{pct: pct, err: err, at: time.Now()}
	g.mu.Unlock()
	return pct, err
}

// Handle applies the rules to one candidate event. It returns the decision
// to publish, if the recommendation changed state (or, on redelivery, if an
// approval may not have reached the executor yet).
func (g *Gatekeeper) Handle(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	c, ok := p.(*events.IndexCandidateScored)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("gatekeeper: unexpected payload %T", p))
	}
	if err := indexdef.Validate(c.Index); err != nil {
		return nil, bus.Permanent(err)
	}
	if c.Target != env.Subject {
		return nil, bus.Permanent(fmt.Errorf("candidate %s: target %q differs from subject %q", env.ID, c.Target, env.Subject))
	}
	var out []events.Payload
	err := pgx.BeginFunc(ctx, g.deps.Control, func(tx pgx.Tx) error {
		out = nil
		first, err := metadata.MarkProcessed(ctx, tx, Consumer, env.ID)
		if err != nil {
			return err
		}
		if !first {
			d, err := g.redeliveredDecision(ctx, tx, c, env)
			if d != nil {
				out = append(out, d)
			}
			return err
		}
		ds, err := g.decide(ctx, tx, c, env.ID)
		for _, d := range ds {
			out = append(out, d)
		}
		return err
	})
	if err != nil {
		err = fmt.Errorf("decide candidate %s: %w", c.CandidateID, err)
		if ctx.Err() == nil {
			g.health.Beat(ctx, c.Target, g.deps.Clock(), g.cfg.Gatekeeper.RecheckInterval, nil, err)
		}
		if postgres.Classify(err) == postgres.Permanent {
			return nil, bus.Permanent(err)
		}
		return nil, err
	}
	g.health.Beat(ctx, c.Target, g.deps.Clock(), g.cfg.Gatekeeper.RecheckInterval, nil, nil)
	if span := trace.SpanFromContext(ctx); len(out) > 0 {
		// The consumer span is the decision's span: it says what was decided.
		span.SetAttributes(decisionAttrs(out[len(out)-1].(*events.IndexDecisionMade))...)
	}
	return out, nil
}

func queryIDs(c *events.IndexCandidateScored) []string {
	ids := make([]string, 0, len(c.Statements))
	for _, s := range c.Statements {
		ids = append(ids, s.QueryID)
	}
	return ids
}

func (g *Gatekeeper) decision(c *events.IndexCandidateScored, candEventID string, v events.Verdict, r events.Reason, detail string) *events.IndexDecisionMade {
	return &events.IndexDecisionMade{
		Target: c.Target, RecommendationID: events.RecommendationID(c.Target, c.Index), CandidateID: c.CandidateID,
		CandidateEventID: candEventID, Index: c.Index, Verdict: v, Reason: r, Detail: detail,
		QueryIDs: queryIDs(c), DecidedAt: g.deps.Clock().UTC().Truncate(time.Microsecond),
	}
}

func verdictOf(state string) events.Verdict {
	switch state {
	case StateApproved:
		return events.VerdictApproved
	case StateDeferred:
		return events.VerdictDeferred
	case StateRejected:
		return events.VerdictRejected
	case StateHeld:
		return events.VerdictHeld
	}
	return events.VerdictAdvised
}

// redeliveredDecision answers a candidate event already processed: when its
// recommendation is still approved and was approved by this very event,
// the decision is published again, since the first publish may have been
// lost after the commit. Its id is deterministic, so the executor dedups it.
func (g *Gatekeeper) redeliveredDecision(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, env events.Envelope) (*events.IndexDecisionMade, error) {
	var state, evID, reason string
	err := tx.QueryRow(ctx, marker+`select state, candidate_event_id::text, reason from indexpilot.recommendations where target = $1 and index_key = $2`,
		c.Target, c.Index.Key()).Scan(&state, &evID, &reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read recommendation: %w", err)
	}
	if state != StateApproved || evID != env.ID {
		return nil, nil
	}
	return g.decision(c, env.ID, events.VerdictApproved, events.Reason(reason), ""), nil
}
