package executor

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// recoverDue runs recoverApproved at start and then every half of
// executor.recover_after (at most once a poll interval).
func (x *executor) recoverDue(ctx context.Context) {
	every := max(x.cfg.PollInterval, x.cfg.RecoverAfter/2)
	if !x.recoveredAt.IsZero() && time.Since(x.recoveredAt) < every {
		return
	}
	x.recoveredAt = time.Now()
	if _, err := x.recoverApproved(ctx); err != nil && ctx.Err() == nil {
		x.log.Warn("queue approvals without a build", "error", postgres.Describe(err))
	}
}

// recoverApproved queues the build of every recommendation of this
// executor's targets that has been approved for executor.recover_after
// with no build queued: its decision event was lost, or is held up on the
// bus. It does what that event would have done (queue, with the decision's
// own deterministic id as the processed event, so the event is a no-op if
// it still comes), and records it in mutation_log as outcome "queued",
// reason decision_event_missing. Executors running this at once, or with
// the event, queue one build: the processed-event row and the build row
// are each unique. Only in apply mode: an executor in advisory mode builds
// nothing on its own initiative. It returns how many builds it queued.
func (x *executor) recoverApproved(ctx context.Context) (int, error) {
	if x.d.Config.Features.AutoIndexer.Mode != config.ModeApply {
		return 0, nil
	}
	rows, err := x.d.Control.Query(ctx, marker+`select r.id::text, r.target, r.index_spec, r.candidate_id::text,
       r.candidate_event_id::text, r.reason, r.evidence, coalesce(r.trace_parent, '')
  from indexpilot.recommendations r
 where r.state = 'approved' and r.target = any($1)
   and r.updated_at < now() - make_interval(secs => $2)
   and not exists (select 1 from indexpilot.builds b where b.recommendation_id = r.id)
 order by r.updated_at
 limit 100`, x.d.Targets.Names(), x.cfg.RecoverAfter.Seconds())
	if err != nil {
		return 0, err
	}
	// The trace each recovered build continues: its recommendation's.
	parents := map[*events.IndexDecisionMade]string{}
	decs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*events.IndexDecisionMade, error) {
		var d events.IndexDecisionMade
		var c events.IndexCandidateScored
		var parent string
		if err := row.Scan(&d.RecommendationID, &d.Target, &d.Index, &d.CandidateID, &d.CandidateEventID, &d.Reason, &c, &parent); err != nil {
			return nil, err
		}
		parents[&d] = parent
		d.Verdict = events.VerdictApproved
		d.QueryIDs = []string{}
		for _, s := range c.Statements {
			d.QueryIDs = append(d.QueryIDs, s.QueryID)
		}
		return &d, nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range decs {
		if err := indexdef.Validate(d.Index); err != nil {
			x.log.Warn("approved recommendation has an invalid index spec", "recommendation_id", d.RecommendationID, "error", err.Error())
			continue
		}
		qctx := ctx
		if sc := telemetry.ParseTraceParent(parents[d]); sc.IsValid() {
			qctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		queued, err := x.queue(qctx, d, d.EventID(), true)
		if err != nil {
			return n, err
		}
		if queued {
			n++
			x.log.Warn("build queued without its decision event", "target", d.Target, "recommendation_id", d.RecommendationID,
				"decision_event_id", d.EventID(), "index", indexdef.Name(d.Index), "table", d.Index.QualifiedTable())
			x.poke()
		}
	}
	return n, nil
}
