package gatekeeper

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
)

// loop re-evaluates deferred recommendations every recheck interval (and
// at once when the bypass changes), and publishes again approvals whose
// decision never reached the executor.
func (g *Gatekeeper) loop(ctx context.Context) {
	t := time.NewTicker(g.cfg.Gatekeeper.RecheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.bp.Changed():
		}
		_, err := g.Recheck(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			g.log.Warn("recheck deferred recommendations", "error", err.Error())
		}
		g.health.Beat(ctx, "", g.deps.Clock(), g.cfg.Gatekeeper.RecheckInterval, nil, err)
	}
}

// Recheck evaluates every deferred recommendation again, publishes the
// decisions of those that changed, and republishes approvals that have no
// build yet after two recheck intervals. It returns how many changed.
func (g *Gatekeeper) Recheck(ctx context.Context) (int, error) {
	rows, err := g.deps.Control.Query(ctx, marker+`select id::text from indexpilot.recommendations
 where state = 'deferred' order by updated_at limit 200`)
	if err != nil {
		return 0, fmt.Errorf("list deferred: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("list deferred: %w", err)
	}
	changed := 0
	for _, id := range ids {
		var out []*events.IndexDecisionMade
		var parent string
		err := pgx.BeginFunc(ctx, g.deps.Control, func(tx pgx.Tx) error {
			out = nil
			var c events.IndexCandidateScored
			var state, reason, candEvent string
			var approvedAt *time.Time
			var lastLog *int64
			err := tx.QueryRow(ctx, marker+`select evidence, state, reason, candidate_event_id::text, approved_at, last_log_id,
       coalesce(trace_parent, '')
  from indexpilot.recommendations where id = $1 for update skip locked`, id).
				Scan(&c, &state, &reason, &candEvent, &approvedAt, &lastLog, &parent)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && state != StateDeferred) {
				return nil // taken by another gatekeeper, or moved on
			}
			if err != nil {
				return err
			}
			o, err := g.evaluate(ctx, tx, &c, approvedAt != nil)
			if err != nil {
				return err
			}
			if o.state == state && string(o.reason) == reason {
				return nil
			}
			r := &rec{id: id, state: state, reason: reason, candEventID: candEvent, approvedAt: approvedAt, lastLogID: lastLog}
			if err := g.transition(ctx, tx, &c, r, o); err != nil {
				return err
			}
			out = append(out, g.decision(&c, candEvent, verdictOf(o.state), o.reason, o.detail))
			return nil
		})
		if err != nil {
			return changed, fmt.Errorf("recheck %s: %w", id, err)
		}
		for _, d := range out {
			changed++
			sctx, span := loopSpan(ctx, parent, "gatekeeper recheck", d)
			err := g.deps.Bus.Publish(sctx, Name, "", d)
			span.End()
			if err != nil {
				return changed, err
			}
		}
	}
	if err := g.recheckRemovals(ctx); err != nil {
		return changed, err
	}
	return changed, g.republishLost(ctx)
}

// republishLost publishes again the decision of approved recommendations
// that have no build row long after their approval (the publish after the
// commit was lost). The decision id is the same, so nothing doubles.
func (g *Gatekeeper) republishLost(ctx context.Context) error {
	grace := 2 * g.cfg.Gatekeeper.RecheckInterval
	rows, err := g.deps.Control.Query(ctx, marker+`select r.evidence, r.candidate_event_id::text, r.reason, coalesce(r.trace_parent, '')
  from indexpilot.recommendations r
 where r.state = 'approved' and r.updated_at < now() - make_interval(secs => $1)
   and not exists (select 1 from indexpilot.builds b where b.recommendation_id = r.id)
 limit 100`, grace.Seconds())
	if err != nil {
		return fmt.Errorf("list lost approvals: %w", err)
	}
	type lost struct {
		c             events.IndexCandidateScored
		ev, re, trace string
	}
	ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lost, error) {
		var l lost
		return l, r.Scan(&l.c, &l.ev, &l.re, &l.trace)
	})
	if err != nil {
		return fmt.Errorf("list lost approvals: %w", err)
	}
	for _, l := range ls {
		d := g.decision(&l.c, l.ev, events.VerdictApproved, events.Reason(l.re), "")
		sctx, span := loopSpan(ctx, l.trace, "gatekeeper republish", d)
		err := g.deps.Bus.Publish(sctx, Name, "", d)
		span.End()
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrNotFound is returned by Approve and Reject for an unknown id.
var ErrNotFound = errors.New("no such recommendation")

// operatorChange moves one recommendation on an operator's word, under a
// row lock, with a mutation_log row. idPrefix is a full id or a unique
// prefix of one.
func operatorChange(ctx context.Context, pool *pgxpool.Pool, idPrefix string, allowed []string,
	apply func(tx pgx.Tx, r *rec, c *events.IndexCandidateScored) (outcome, error)) (string, string, error) {
	idPrefix = strings.ToLower(strings.TrimSpace(idPrefix))
	if len(idPrefix) < 4 {
		return "", "", errors.New("give at least 4 characters of the recommendation id")
	}
	var id, state string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ids, err := tx.Query(ctx, marker+`select id::text from indexpilot.recommendations where id::text like $1 || '%' limit 2`, idPrefix)
		if err != nil {
			return err
		}
		found, err := pgx.CollectRows(ids, pgx.RowTo[string])
		if err != nil {
			return err
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("%w %q", ErrNotFound, idPrefix)
		case 2:
			return fmt.Errorf("recommendation id %q is ambiguous", idPrefix)
		}
		id = found[0]
		r, err := readRec(ctx, tx, "id = $1", id)
		if err != nil {
			return err
		}
		ok := false
		for _, s := range allowed {
			ok = ok || r.state == s
		}
		if !ok {
			return fmt.Errorf("recommendation %s is %s (%s)", id[:8], r.state, r.reason)
		}
		var c events.IndexCandidateScored
		if err := tx.QueryRow(ctx, marker+`select evidence from indexpilot.recommendations where id = $1`, id).Scan(&c); err != nil {
			return err
		}
		o, err := apply(tx, r, &c)
		if err != nil {
			return err
		}
		var g Gatekeeper
		if err := g.transition(ctx, tx, &c, r, o); err != nil {
			return err
		}
		state = o.state
		return nil
	})
	return id, state, err
}

// Approve records an operator's approval of a proposed, deferred or held
// recommendation (held: the scorer's budget or a cap held it back; the
// approval overrides that hold, not the gatekeeper's own rules). It becomes deferred (operator_approved): the running
// gatekeeper's next recheck applies the remaining rules (mode, emergency
// stop, window, CPU, rate limits) and approves it for the executor.
func Approve(ctx context.Context, pool *pgxpool.Pool, idPrefix, actor, why string, now time.Time) (string, error) {
	id, _, err := operatorChange(ctx, pool, idPrefix, []string{StateProposed, StateDeferred, StateHeld},
		func(tx pgx.Tx, r *rec, _ *events.IndexCandidateScored) (outcome, error) {
			if _, err := tx.Exec(ctx, marker+`update indexpilot.recommendations set approved_by = $2, approved_at = $3 where id = $1`,
				r.id, actor, now); err != nil {
				return outcome{}, err
			}
			r.approvedAt = &now
			return outcome{state: StateDeferred, reason: events.ReasonOperatorApproved, detail: fmt.Sprintf("approved by %s: %s", actor, why)}, nil
		})
	return id, err
}

// Reject records an operator's rejection: the recommendation is closed for
// good (a newer candidate does not reopen it), and an approval the
// executor has not claimed yet is skipped by it.
func Reject(ctx context.Context, pool *pgxpool.Pool, idPrefix, actor, why string) (string, error) {
	id, _, err := operatorChange(ctx, pool, idPrefix, []string{StateProposed, StateDeferred, StateApproved, StateSuperseded, StateHeld},
		func(pgx.Tx, *rec, *events.IndexCandidateScored) (outcome, error) {
			return outcome{state: StateRejected, reason: events.ReasonOperatorRejected, detail: fmt.Sprintf("rejected by %s: %s", actor, why)}, nil
		})
	return id, err
}
