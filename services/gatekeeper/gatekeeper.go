// Package gatekeeper decides what happens to each scored candidate: in
// advisory mode (the default) it records a recommendation and builds
// nothing; in apply mode it approves the recommendation and hands it to the
// executor. Every verdict carries a typed reason and is written to
// mutation_log, and a candidate that arrives twice yields one
// recommendation.
package gatekeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Name is the stage name: the producer of its events and its SQL marker.
const Name = "gatekeeper"

// Consumer is the inbox key of the candidate handler.
var Consumer = events.ConsumerGroup(Name, "candidates")

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

// Start consumes scored candidates until ctx is done.
func Start(ctx context.Context, d stage.Deps) error {
	if err := d.Check(); err != nil {
		return err
	}
	g := &Gatekeeper{deps: d}
	r, err := d.Bus.NewRouter(Name, time.Minute)
	if err != nil {
		return err
	}
	if err := r.Handle("candidates", events.TypeIndexCandidateScored, g.Handle); err != nil {
		return err
	}
	go func() {
		select {
		case <-r.Running():
			d.Ready()
		case <-ctx.Done():
		}
	}()
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("gatekeeper router: %w", err)
	}
	return nil
}

// Gatekeeper holds the candidate handler.
type Gatekeeper struct{ deps stage.Deps }

// New returns a gatekeeper on d, for callers that drive Handle themselves.
func New(d stage.Deps) (*Gatekeeper, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	return &Gatekeeper{deps: d}, nil
}

// verdictFor maps the configured mode to the verdict, state and reason of a
// new or still-proposed recommendation.
func verdictFor(mode string) (events.Verdict, string, events.Reason) {
	if mode == config.ModeApply {
		return events.VerdictApproved, "approved", events.ReasonApplyMode
	}
	return events.VerdictAdvised, "proposed", events.ReasonAdvisoryMode
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
		d, err := g.decide(ctx, tx, c, env)
		if d != nil {
			out = append(out, d)
		}
		return err
	})
	if err != nil {
		if postgres.Classify(err) == postgres.Permanent {
			return nil, bus.Permanent(fmt.Errorf("decide candidate %s: %w", c.CandidateID, err))
		}
		return nil, fmt.Errorf("decide candidate %s: %w", c.CandidateID, err)
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

func (g *Gatekeeper) decision(c *events.IndexCandidateScored, env events.Envelope, v events.Verdict, r events.Reason, detail string) *events.IndexDecisionMade {
	return &events.IndexDecisionMade{
		Target: c.Target, RecommendationID: events.RecommendationID(c.Target, c.Index), CandidateID: c.CandidateID,
		CandidateEventID: env.ID, Index: c.Index, Verdict: v, Reason: r, Detail: detail,
		QueryIDs: queryIDs(c), DecidedAt: g.deps.Clock().UTC().Truncate(time.Microsecond),
	}
}

// reject records a rejection in mutation_log only: a rejected candidate
// creates no recommendation.
func (g *Gatekeeper) reject(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, env events.Envelope, r events.Reason, detail string) (*events.IndexDecisionMade, error) {
	d := g.decision(c, env, events.VerdictRejected, r, detail)
	_, err := metadata.AppendLog(ctx, tx, metadata.Entry{
		Stage: Name, Action: "decide", Outcome: "rejected", Target: c.Target,
		Schema: c.Index.Schema, Table: c.Index.Table, Fields: c.Index.Columns, IndexName: indexdef.Name(c.Index),
		Reason: string(r), Evidence: map[string]any{"detail": detail, "max_improvement_pct": c.MaxImprovementPct},
		EventID: env.ID, CandidateID: c.CandidateID, RecommendationID: d.RecommendationID,
	})
	return d, err
}

func (g *Gatekeeper) decide(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, env events.Envelope) (*events.IndexDecisionMade, error) {
	cfg := g.deps.Config
	if _, ok := cfg.Target(c.Target); !ok {
		return g.reject(ctx, tx, c, env, events.ReasonUnknownTarget, fmt.Sprintf("target %q is not configured", c.Target))
	}
	if min := cfg.Features.AutoIndexer.MinImprovementPct; c.MaxImprovementPct < min {
		return g.reject(ctx, tx, c, env, events.ReasonBelowMinBenefit,
			fmt.Sprintf("best plan-cost cut %.1f%% is below %.1f%%", c.MaxImprovementPct, min))
	}
	verdict, state, reason := verdictFor(cfg.Features.AutoIndexer.Mode)
	recID := events.RecommendationID(c.Target, c.Index)
	spec, err := json.Marshal(c.Index)
	if err != nil {
		return nil, bus.Permanent(err)
	}
	evidence, err := json.Marshal(c)
	if err != nil {
		return nil, bus.Permanent(err)
	}
	name := indexdef.Name(c.Index)

	var prev string
	err = tx.QueryRow(ctx, `/* indexpilot:gatekeeper */
select state from indexpilot.recommendations where target = $1 and index_key = $2 for update`,
		c.Target, c.Index.Key()).Scan(&prev)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, `/* indexpilot:gatekeeper */
insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason,
   candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			recID, c.Target, c.Index.Key(), c.Index.Schema, c.Index.Table, spec, name, state, string(reason),
			c.CandidateID, env.ID, c.FormulaVersion, c.MaxImprovementPct, c.EstimatedSizeBytes, evidence)
		if err != nil {
			return nil, fmt.Errorf("insert recommendation: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("read recommendation: %w", err)
	case prev == "proposed" && state == "approved":
		// Apply mode was switched on since the recommendation was made.
		if _, err := tx.Exec(ctx, `/* indexpilot:gatekeeper */
update indexpilot.recommendations
   set state = $2, reason = $3, candidate_id = $4, candidate_event_id = $5, formula_version = $6,
       max_improvement_pct = $7, estimated_size_bytes = $8, evidence = $9, updated_at = now()
 where id = $1`, recID, state, string(reason), c.CandidateID, env.ID, c.FormulaVersion,
			c.MaxImprovementPct, c.EstimatedSizeBytes, evidence); err != nil {
			return nil, fmt.Errorf("approve recommendation: %w", err)
		}
	default:
		// Same state, or a later one (building, applied, failed, ...): refresh
		// the evidence of an open recommendation, decide nothing new.
		if prev == "proposed" || prev == "approved" {
			if _, err := tx.Exec(ctx, `/* indexpilot:gatekeeper */
update indexpilot.recommendations
   set max_improvement_pct = $2, estimated_size_bytes = $3, evidence = $4, updated_at = now()
 where id = $1`, recID, c.MaxImprovementPct, c.EstimatedSizeBytes, evidence); err != nil {
				return nil, fmt.Errorf("refresh recommendation: %w", err)
			}
		}
		return nil, nil
	}
	outcome := state
	if prev != "" {
		outcome = prev + "->" + state
	}
	if _, err := metadata.AppendLog(ctx, tx, metadata.Entry{
		Stage: Name, Action: "recommend", Outcome: outcome, Target: c.Target,
		Schema: c.Index.Schema, Table: c.Index.Table, Fields: c.Index.Columns, IndexName: name,
		DDL:    indexdef.CreateSQL(c.Index, name, true),
		Reason: string(reason), Evidence: c, EventID: env.ID, CandidateID: c.CandidateID, RecommendationID: recID,
	}); err != nil {
		return nil, err
	}
	return g.decision(c, env, verdict, reason, ""), nil
}

// redeliveredDecision answers a candidate event already processed: when its
// recommendation is still approved and was approved by this very event,
// the decision is published again, since the first publish may have been
// lost after the commit. Its id is deterministic, so the executor dedups it.
func (g *Gatekeeper) redeliveredDecision(ctx context.Context, tx pgx.Tx, c *events.IndexCandidateScored, env events.Envelope) (*events.IndexDecisionMade, error) {
	var state, evID string
	err := tx.QueryRow(ctx, `/* indexpilot:gatekeeper */
select state, candidate_event_id::text from indexpilot.recommendations where target = $1 and index_key = $2`,
		c.Target, c.Index.Key()).Scan(&state, &evID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read recommendation: %w", err)
	}
	if state != "approved" || evID != env.ID {
		return nil, nil
	}
	return g.decision(c, env, events.VerdictApproved, events.ReasonApplyMode, ""), nil
}
