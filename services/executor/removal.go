package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/removal"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor/internal/build"
)

// Outcomes of a removal in mutation_log (action "remove").
const (
	OutcomeDropped     = "dropped"
	OutcomeAlreadyGone = "already_gone"
	// OutcomeSuperseded is a removal whose reason no longer held when it
	// was re-checked right before the DROP: nothing was dropped.
	OutcomeSuperseded = "superseded"
)

// staleError stops a drop whose reason no longer holds.
type staleError struct{ why string }

func (e *staleError) Error() string { return "removal no longer holds: " + e.why }

// errEmergencyStop is the cause of a drop cancelled by the emergency stop.
var errEmergencyStop = errors.New("cancelled by the emergency stop")

// rjob is one claimed row of indexpilot.removals: an approved removal.
type rjob struct {
	id, target, schema, indexName, reason, recID string
	attempt                                      int
	// proposal is the gatekeeper's record of what the removal rests on;
	// nil when the row has none.
	proposal *events.IndexRemovalProposed
}

// claimRemoval takes one approved removal that is due.
func (x *executor) claimRemoval(ctx context.Context) (*rjob, error) {
	var r *rjob
	err := pgx.BeginFunc(ctx, x.d.Control, func(tx pgx.Tx) error {
		r = nil
		var c rjob
		err := tx.QueryRow(ctx, marker+`select r.id::text, r.target, r.schema_name, r.index_name, r.reason,
       coalesce(r.recommendation_id::text, ''), r.attempts, p.proposal
  from indexpilot.removals r
  left join indexpilot.removal_proposals p on p.id = r.id
 where (r.state = 'pending' and r.not_before <= now()) or (r.state = 'running' and r.lease_until < now())
 order by r.not_before
 limit 1
 for update of r skip locked`).Scan(&c.id, &c.target, &c.schema, &c.indexName, &c.reason, &c.recID, &c.attempt, &c.proposal)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		c.attempt++
		if _, err := tx.Exec(ctx, marker+`update indexpilot.removals
   set state = 'running', claimed_by = $2, lease_until = now() + make_interval(secs => $3), attempts = $4, updated_at = now()
 where id = $1`, c.id, x.id, x.cfg.Lease.Seconds(), c.attempt); err != nil {
			return err
		}
		r = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim removal: %w", err)
	}
	return r, nil
}

// removeDue runs every due removal, one at a time.
func (x *executor) removeDue(ctx context.Context) {
	drain(ctx, x, "removal", x.claimRemoval, x.remove, func(r *rjob) any { return r.id })
}

// drain claims and runs due work of one kind until there is none, the
// bypass stops the executor or ctx ends. A failed item is logged; its row
// says what happens next (retry or failed).
func drain[T any](ctx context.Context, x *executor, what string, claim func(context.Context) (*T, error),
	run func(context.Context, *T) error, id func(*T) any) {
	for ctx.Err() == nil {
		if stop, _ := x.stopper.Stopped(); stop {
			return
		}
		item, err := claim(ctx)
		if err != nil {
			if ctx.Err() == nil {
				x.log.Warn("claim "+what, "error", postgres.Describe(err))
			}
			return
		}
		if item == nil {
			return
		}
		if err := run(ctx, item); err != nil && ctx.Err() == nil {
			x.log.Warn(what+" failed", "id", id(item), "error", postgres.Describe(err))
		}
	}
}

// remove drops one approved index concurrently. Right before the DROP,
// under the table's build lock, the removal is re-checked against the
// catalog (removal.Recheck): if its reason no longer holds, nothing is
// dropped and the removal and its proposal are superseded with the reason
// why. Its full definition is written to the removals row before the DROP
// runs, so that it is never lost even if the executor dies right after.
func (x *executor) remove(ctx context.Context, r *rjob) error {
	log := x.log.With("target", r.target, "removal_id", r.id, "index", r.indexName)
	pool, err := x.d.Targets.Pool(ctx, r.target)
	var res build.DropResult
	if err == nil {
		gctx, stop := x.guard(ctx)
		res, err = build.Drop(gctx, pool, r.schema, r.indexName, build.DropOptions{
			Options:         build.Options{LockTimeout: x.cfg.LockTimeout, StatementTimeout: x.cfg.StatementTimeout},
			RefuseProtected: true,
			BeforeDrop: func(ctx context.Context, table, def string) error {
				// Under the table's build lock, right before the DROP: does
				// the reason still hold?
				res, err := removal.Recheck(ctx, pool, x.d.Control, r.recheckProposal(table))
				switch {
				case err != nil:
					return err
				case res.Building != "":
					// Not now: retried later, and re-checked again then.
					return &build.Error{Op: "re-check removal", Class: postgres.Transient, Busy: true,
						Err: fmt.Errorf("%s: %w", res.Building, build.ErrBusy)}
				case res.Stale != "":
					return &staleError{why: res.Stale}
				}
				_, err = x.d.Control.Exec(ctx, marker+`update indexpilot.removals
   set definition = $3, table_name = $4, updated_at = now() where id = $1 and claimed_by = $2`, r.id, x.id, def, table)
				return err
			},
		})
		if err != nil && gctx.Err() != nil && ctx.Err() == nil {
			err = &build.Error{Op: "drop index", Class: postgres.Canceled, Err: errEmergencyStop}
		}
		stop()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()

	state, outcome, reason := "done", OutcomeDropped, r.reason
	var retryIn time.Duration
	var be *build.Error
	var lastError, sqlstate any
	refund := 0
	var stale *staleError
	if errors.As(err, &stale) {
		state, outcome, reason, err = "superseded", OutcomeSuperseded, stale.why, nil
		lastError = stale.why
	}
	if err != nil {
		if !errors.As(err, &be) {
			be = &build.Error{Op: "remove", Class: postgres.Classify(err), SQLState: postgres.SQLState(err), Err: err}
			if errors.Is(err, stage.ErrUnknownTarget) {
				be.Class = postgres.Permanent
			}
		}
		lastError = be.Error()
		if be.SQLState != "" {
			sqlstate = be.SQLState
		}
		switch {
		case be.Class == postgres.Canceled || ctx.Err() != nil:
			state, outcome, reason, refund, retryIn = "pending", OutcomeRetry, "executor stopping or emergency stop", 1, x.cfg.PollInterval
		case be.Busy:
			state, outcome, reason, refund, retryIn = "pending", OutcomeRetry, "busy", 1, x.backoff(1)
		case be.Class == postgres.Permanent || r.attempt >= x.cfg.MaxAttempts:
			state, outcome, reason = "failed", OutcomeFailed, be.Error()
		default:
			state, outcome, reason, retryIn = "pending", OutcomeRetry, "transient error", x.backoff(r.attempt)
		}
	} else if !res.Existed && outcome == OutcomeDropped {
		outcome = OutcomeAlreadyGone
	}
	var out *metadata.Outboxed
	err = pgx.BeginFunc(sctx, x.d.Control, func(tx pgx.Tx) error {
		var def, table string
		err := tx.QueryRow(sctx, marker+`update indexpilot.removals
   set state = $3, claimed_by = null, lease_until = null, attempts = attempts - $4,
       not_before = now() + make_interval(secs => $5), last_error = $6, sqlstate = $7,
       dropped_at = case when $3 = 'done' then now() end, updated_at = now()
 where id = $1 and claimed_by = $2 and state = 'running'
 returning coalesce(definition, ''), coalesce(table_name, '')`,
			r.id, x.id, state, refund, retryIn.Seconds(), lastError, sqlstate).Scan(&def, &table)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLeaseLost
		}
		if err != nil {
			return err
		}
		ev := map[string]any{"removal_id": r.id, "attempt": r.attempt, "executor_id": x.id, "definition": def}
		if be != nil {
			ev["error"], ev["sqlstate"], ev["permanent"] = be.Error(), be.SQLState, be.Permanent()
		}
		if outcome == OutcomeSuperseded {
			if _, err := tx.Exec(sctx, marker+`update indexpilot.removal_proposals
   set state = 'superseded', reason = $2, detail = $3, updated_at = now() where id = $1`,
				r.id, string(events.ReasonSuperseded), reason); err != nil {
				return err
			}
		}
		if _, err := metadata.AppendLog(sctx, tx, metadata.Entry{Stage: Name, Action: "remove", Outcome: outcome,
			Target: r.target, Schema: r.schema, Table: table, IndexName: r.indexName, DDL: res.DDL, Reason: reason,
			Evidence: ev, RecommendationID: r.recID}); err != nil {
			return err
		}
		if (outcome == OutcomeDropped || outcome == OutcomeAlreadyGone) && r.recID != "" {
			// The index IndexPilot built is gone: its recommendation says
			// so instead of staying applied.
			if _, err := tx.Exec(sctx, marker+`update indexpilot.recommendations
   set state = 'removed', reason = $2, detail = $3, updated_at = now() where id = $1 and state = 'applied'`,
				r.recID, r.reason, "dropped by removal "+r.id+" ("+r.reason+")"); err != nil {
				return err
			}
		}
		if outcome != OutcomeDropped {
			return nil
		}
		out, err = x.outbox(sctx, tx, r.id, &events.IndexRemovalCompleted{Target: r.target, RemovalID: r.id, Schema: r.schema,
			Table: table, IndexName: r.indexName, Definition: def, DDL: res.DDL, DroppedAt: x.d.Clock().UTC()})
		return err
	})
	if errors.Is(err, errLeaseLost) {
		log.Warn("removal row no longer held at settle time")
		return nil
	}
	if err != nil {
		return fmt.Errorf("settle removal %s: %w", r.id, err)
	}
	log.Info("removal settled", "outcome", outcome, "reason", reason)
	if out != nil {
		x.publish(sctx, *out)
	}
	return nil
}

// recheckProposal is what the re-check before the DROP asks about: the
// gatekeeper's proposal, or, for a row without one, the index itself (it
// exists, unchanged, and no build is creating it).
func (r *rjob) recheckProposal(table string) *events.IndexRemovalProposed {
	if r.proposal != nil {
		return r.proposal
	}
	return &events.IndexRemovalProposed{Target: r.target, Schema: r.schema, Table: table, IndexName: r.indexName}
}
