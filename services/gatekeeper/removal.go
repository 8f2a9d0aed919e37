package gatekeeper

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/removal"
	"github.com/indexpilot/indexpilot/services/gatekeeper/internal/policy"
)

// RemovalConsumer is the inbox key of the removal-proposal handler.
var RemovalConsumer = events.ConsumerGroup(Name, "removals")

// HandleRemoval decides on one removal proposal under
// features.index_removal.mode (advisory by default), after re-checking it
// against the target's catalog (removal.Recheck): a proposal whose reason
// no longer holds is superseded with the reason why, one whose index a
// build is creating is deferred (build_in_progress) and re-checked later. The verdict is kept in
// indexpilot.removal_proposals (one row per removal_id) and every change of
// it in mutation_log. Apply, when the bypass allows removal DDL, queues the
// drop for the executor as a pending indexpilot.removals row, not before
// the maintenance window opens. A deferred proposal (the bypass), or an
// advisory one once removal is switched to apply, is decided again by the
// recheck loop. The same proposal twice has one effect; a new proposal of
// an index whose queued removal ended without a drop (superseded, failed)
// is decided again and may queue it again.
func (g *Gatekeeper) HandleRemoval(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	r, ok := p.(*events.IndexRemovalProposed)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("gatekeeper: unexpected payload %T", p))
	}
	if r.Target != env.Subject || r.IndexName == "" || r.Schema == "" || r.RemovalID == "" {
		return nil, bus.Permanent(fmt.Errorf("removal %s: bad target, schema, index name or removal id", env.ID))
	}
	err := pgx.BeginFunc(ctx, g.deps.Control, func(tx pgx.Tx) error {
		first, err := metadata.MarkProcessed(ctx, tx, RemovalConsumer, env.ID)
		if err != nil || !first {
			return err
		}
		return g.decideRemoval(ctx, tx, r, env.ID)
	})
	if err != nil {
		if postgres.Classify(err) == postgres.Permanent {
			return nil, bus.Permanent(fmt.Errorf("decide removal %s: %w", r.RemovalID, err))
		}
		return nil, fmt.Errorf("decide removal %s: %w", r.RemovalID, err)
	}
	return nil, nil
}

// decideRemoval (re)decides one proposal in tx.
func (g *Gatekeeper) decideRemoval(ctx context.Context, tx pgx.Tx, r *events.IndexRemovalProposed, eventID string) error {
	var prevState, prevReason string
	var lastLog *int64
	// ended: the removal queued for this proposal ended without a drop
	// (superseded by the executor's re-check, or failed). A proposal that
	// arrives after that (a new event: a new reason, a new formula) is
	// decided afresh and, approved, queues the removal again.
	var ended bool
	err := tx.QueryRow(ctx, marker+`select p.state, p.reason, p.last_log_id,
       exists(select 1 from indexpilot.removals d where d.id = p.id and d.state in ('superseded','failed'))
  from indexpilot.removal_proposals p where p.id = $1 for update of p`, r.RemovalID).
		Scan(&prevState, &prevReason, &lastLog, &ended)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, marker+`insert into indexpilot.removal_proposals
  (id, target, schema_name, table_name, index_name, state, reason, proposal) values ($1, $2, $3, $4, $5, 'proposed', '', $6)`,
			r.RemovalID, r.Target, r.Schema, r.Table, r.IndexName, r); err != nil {
			return fmt.Errorf("record removal proposal: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read removal proposal: %w", err)
	case prevState == StateRejected || (prevState == StateApproved && !ended):
		return nil // queued or closed: nothing to decide again
	}
	state, reason, detail := g.removalVerdict(r)
	if state != StateRejected {
		// The proposal's reason is asked again of the catalog before any
		// verdict: a stale one is superseded, never approved.
		res, err := g.recheck(ctx, r)
		if err != nil {
			return err
		}
		switch {
		case res.Building != "":
			state, reason, detail = StateDeferred, events.ReasonBuildInProgress, res.Building
		case res.Stale != "":
			state, reason, detail = StateSuperseded, events.ReasonSuperseded, res.Stale
		}
	}
	if state == prevState && string(reason) == prevReason && !ended {
		return nil
	}
	if state == StateApproved {
		notBefore := g.deps.Clock()
		if win := policy.Window(g.cfg.Gatekeeper.Window, notBefore); !win.Pass && !win.RetryAt.IsZero() {
			notBefore, detail = win.RetryAt, win.Detail
		}
		if _, err := tx.Exec(ctx, marker+`insert into indexpilot.removals
  (id, target, schema_name, index_name, table_name, definition, reason, recommendation_id, not_before)
values ($1, $2, $3, $4, $5, $6, $7,
        (select id from indexpilot.recommendations where target = $2 and schema_name = $3 and index_name = $4),
        $8)
on conflict (id) do update
   set state = 'pending', reason = excluded.reason, not_before = excluded.not_before, attempts = 0,
       claimed_by = null, lease_until = null, last_error = null, sqlstate = null, updated_at = now()
 where indexpilot.removals.state in ('superseded','failed')`, r.RemovalID, r.Target, r.Schema, r.IndexName, r.Table, r.Definition, string(r.Reason), notBefore); err != nil {
			return fmt.Errorf("queue removal: %w", err)
		}
	}
	outcome := state
	if prevState != "" {
		outcome = prevState + "->" + state
	}
	id, err := metadata.AppendLog(ctx, tx, metadata.Entry{
		Stage: Name, Action: "removal", Outcome: outcome, Target: r.Target, Schema: r.Schema, Table: r.Table,
		Fields: r.Index.Columns, IndexName: r.IndexName, Reason: string(reason), DDL: r.Definition,
		Evidence: map[string]any{"proposal": r, "detail": detail}, EventID: eventID, ParentID: lastLog,
	})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, marker+`update indexpilot.removal_proposals
   set state = $2, reason = $3, detail = $4, last_log_id = nullif($5::bigint, 0), proposal = $6, updated_at = now() where id = $1`,
		r.RemovalID, state, string(reason), detail, id, r); err != nil {
		return fmt.Errorf("update removal proposal: %w", err)
	}
	return nil
}

// recheck asks r's target whether it still holds (removal.Recheck).
func (g *Gatekeeper) recheck(ctx context.Context, r *events.IndexRemovalProposed) (removal.Result, error) {
	pool, err := g.deps.Targets.Pool(ctx, r.Target)
	if err != nil {
		return removal.Result{}, fmt.Errorf("re-check removal on %s: %w", r.Target, err)
	}
	res, err := removal.Recheck(ctx, pool, g.deps.Control, r)
	if err != nil {
		return removal.Result{}, fmt.Errorf("re-check removal on %s: %w", r.Target, err)
	}
	return res, nil
}

// removalVerdict applies the rules that concern a removal, in order:
// target, bypass, mode, removal DDL allowed.
func (g *Gatekeeper) removalVerdict(r *events.IndexRemovalProposed) (string, events.Reason, string) {
	if _, ok := g.cfg.Target(r.Target); !ok {
		return StateRejected, events.ReasonUnknownTarget, fmt.Sprintf("target %q is not configured", r.Target)
	}
	if ok, d := g.bp.Allows(bypass.LevelStage, Name); !ok {
		return StateDeferred, d.Reason, d.Detail()
	}
	if ok, d := g.bp.Allows(bypass.LevelFeature, config.FeatureIndexRemoval); !ok {
		return StateDeferred, d.Reason, d.Detail()
	}
	if g.cfg.Features.IndexRemoval.Mode != config.ModeApply {
		return StateProposed, events.ReasonAdvisoryMode, "features.index_removal.mode is advisory"
	}
	if ok, d := g.bp.AllowsDDL(config.FeatureIndexRemoval); !ok {
		return StateDeferred, d.Reason, d.Detail()
	}
	return StateApproved, events.ReasonApplyMode, ""
}

// recheckRemovals decides again the open proposals, deferred and
// advisory: each is re-checked against the catalog (a stale one is
// superseded, also in advisory mode, so that no proposal stays on show
// after its reason is gone), and approved once removal is in apply mode
// and the bypass allows it.
func (g *Gatekeeper) recheckRemovals(ctx context.Context) error {
	rows, err := g.deps.Control.Query(ctx, marker+`select id::text from indexpilot.removal_proposals
 where state in ('deferred','proposed') order by updated_at limit 200`)
	if err != nil {
		return fmt.Errorf("list open removals: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list open removals: %w", err)
	}
	for _, id := range ids {
		err := pgx.BeginFunc(ctx, g.deps.Control, func(tx pgx.Tx) error {
			var r events.IndexRemovalProposed
			err := tx.QueryRow(ctx, marker+`select proposal from indexpilot.removal_proposals where id = $1 for update skip locked`, id).Scan(&r)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			return g.decideRemoval(ctx, tx, &r, r.EventID())
		})
		if err != nil {
			return fmt.Errorf("recheck removal %s: %w", id, err)
		}
	}
	return nil
}
