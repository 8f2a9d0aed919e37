package executor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/executor/internal/build"
)

// Outcomes written to mutation_log (action "build").
const (
	OutcomeBuilt         = "built"
	OutcomeAlreadyExists = "already_exists"
	OutcomeFailed        = "failed"
	OutcomeRetry         = "retry"
	OutcomeSkipped       = "skipped"
	// OutcomeDeferred is a build cancelled because the database's CPU
	// stayed above the ceiling: cleaned up and re-queued for later.
	OutcomeDeferred = "deferred"
	// OutcomeStopped is a build cancelled by the emergency stop: cleaned up
	// (its INVALID leftover dropped, or left for the next attempt to drop
	// when that failed: evidence leftover_remains) and its row in state
	// 'stopped' with the stop's reason, claimed again after the resume.
	OutcomeStopped = "stopped"
	// OutcomeQueued is a build the executor queued for an approved
	// recommendation whose decision event never reached it (reason
	// ReasonDecisionEventMissing; recover.go). Not an outcome of the build.
	OutcomeQueued = "queued"
)

// ReasonDecisionEventMissing is the reason of OutcomeQueued.
const ReasonDecisionEventMissing = "decision_event_missing"

// maxBackoff caps the delay before a transient failure is retried.
const maxBackoff = 10 * time.Minute

// settleTimeout bounds the bookkeeping after a build, which runs even when
// the stage is stopping so that the row never stays claimed by a process
// that is gone.
const settleTimeout = 30 * time.Second

// job is one claimed row of indexpilot.builds.
type job struct {
	recID, target, indexName string
	decisionEventID          string
	candidateID              string
	spec                     events.IndexSpec
	queryIDs                 []string
	attempt                  int
	takenOver                string // the previous holder of an expired lease
	skip                     bool   // settled at claim time, nothing to build
	// traceParent is the span that recorded the decision (traceparent;
	// "" for a row older than it), which the build span continues.
	traceParent string
	// span is the build span of this attempt, whose context the
	// validation keeps (queueValidation).
	span trace.SpanContext
}

// claim takes one build that is due (pending or stopped by an emergency
// stop, and past not_before; or running under an expired lease) on a target not in busy, leases it to
// this process and marks its recommendation building. A build whose
// recommendation is no longer approved (rejected, superseded, ... since the
// decision) is closed as skipped and returned with skip set.
func (x *executor) claim(ctx context.Context, busy []string) (*job, error) {
	var j *job
	err := pgx.BeginFunc(ctx, x.d.Control, func(tx pgx.Tx) error {
		j = nil
		var c job
		var state, holder, recState string
		err := tx.QueryRow(ctx, marker+`select b.recommendation_id::text, b.target, b.index_spec, b.index_name,
       b.decision_event_id::text, b.candidate_id::text, b.query_ids, b.attempts, b.state,
       coalesce(b.claimed_by, ''), r.state, coalesce(b.trace_parent, '')
  from indexpilot.builds b
  join indexpilot.recommendations r on r.id = b.recommendation_id
 where ((b.state in ('pending','stopped') and b.not_before <= now())
     or (b.state = 'running' and b.lease_until < now()))
   and b.target <> all($1::text[])
 order by b.not_before, b.created_at
 limit 1
 for update of b skip locked`, busy).Scan(&c.recID, &c.target, &c.spec, &c.indexName, &c.decisionEventID,
			&c.candidateID, &c.queryIDs, &c.attempt, &state, &holder, &recState, &c.traceParent)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if state == "running" {
			c.takenOver = holder
		}
		if recState != "approved" && recState != "building" && recState != "deferred" {
			if _, err := tx.Exec(ctx, marker+`update indexpilot.builds
   set state = 'failed', claimed_by = null, lease_until = null, updated_at = now(), last_error = $2
 where recommendation_id = $1`, c.recID, "recommendation is "+recState); err != nil {
				return err
			}
			if _, err := metadata.AppendLog(ctx, tx, x.entry(&c, OutcomeSkipped, "recommendation is "+recState, "", "",
				map[string]any{"recommendation_state": recState, "claimed_by": x.id})); err != nil {
				return err
			}
			c.skip = true
			j = &c
			return nil
		}
		c.attempt++
		if _, err := tx.Exec(ctx, marker+`update indexpilot.builds
   set state = 'running', claimed_by = $2, lease_until = now() + make_interval(secs => $3),
       attempts = $4, updated_at = now()
 where recommendation_id = $1`, c.recID, x.id, x.cfg.Lease.Seconds(), c.attempt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, marker+`update indexpilot.recommendations
   set state = 'building', updated_at = now() where id = $1`, c.recID); err != nil {
			return err
		}
		j = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim build: %w", err)
	}
	if j != nil && j.skip {
		x.log.Info("build skipped", "target", j.target, "recommendation_id", j.recID, "index", j.indexName)
	}
	return j, nil
}

// outcome is what a build attempt settles to.
type outcome struct {
	name       string // mutation_log outcome
	buildState string // builds.state
	recState   string // recommendations.state
	retryIn    time.Duration
	// refund gives the attempt back: the build never got to run (busy, or
	// the stage is stopping).
	refund bool
	reason string
	res    build.Result
	err    *build.Error
}

// process runs one claimed build and settles it.
func (x *executor) process(ctx context.Context, j *job) {
	log := x.log.With("target", j.target, "recommendation_id", j.recID, "index", j.indexName, "attempt", j.attempt)
	// The build's log lines carry the correlation id its outcome is
	// published with: the decision's event id.
	ctx = telemetry.WithCorrelationID(ctx, j.decisionEventID)
	ctx, span := x.buildSpan(ctx, j)
	defer span.End()
	if j.takenOver != "" {
		log.InfoContext(ctx, "took over expired build lease", "previous_holder", j.takenOver)
	}
	bctx, cancel := context.WithCancel(ctx)
	var lost atomic.Bool
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		x.heartbeat(bctx, j, func() { lost.Store(true); cancel() })
	}()
	w := &watcher{x: x, j: j, cancel: cancel}
	wDone := make(chan struct{})
	if pool, err := x.d.Targets.Pool(bctx, j.target); err == nil {
		w.pool = pool
		go func() { defer close(wDone); w.run(bctx) }()
	} else {
		close(wDone)
	}
	res, err := x.build(bctx, j, w)
	cancel()
	<-hbDone
	<-wDone
	x.clearProgress(j.recID)
	if lost.Load() {
		log.WarnContext(ctx, "build lease lost; leaving the row to its new holder", "error", errString(err))
		return
	}
	o := x.decide(ctx, j, res, err)
	if err != nil {
		switch why, detail := w.stopReason(); why {
		case stopCPU:
			o = outcome{name: OutcomeDeferred, buildState: "pending", recState: "deferred", refund: true,
				retryIn: x.cfg.CPU.DeferFor, reason: detail, err: o.err}
		case stopEmergency:
			o = outcome{name: OutcomeStopped, buildState: "stopped", recState: "approved", refund: true,
				reason: "emergency stop: " + detail, err: o.err}
		}
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer scancel()
	out, err := x.settle(sctx, j, o)
	if err != nil {
		log.ErrorContext(ctx, "record build outcome", "outcome", o.name, "error", postgres.Describe(err))
		x.health.Beat(sctx, j.target, x.d.Clock(), x.cfg.PollInterval, nil,
			fmt.Errorf("record build outcome of %s: %s", j.indexName, postgres.Describe(err)))
		return
	}
	var failed error
	if (o.name == OutcomeFailed || o.name == OutcomeRetry) && o.err != nil {
		failed = fmt.Errorf("build %s: %w", j.indexName, o.err)
	}
	x.health.Beat(sctx, j.target, x.d.Clock(), x.cfg.PollInterval, nil, failed)
	log.InfoContext(ctx, "build settled", "outcome", o.name, "reason", o.reason)
	endBuildSpan(span, o)
	if out != nil {
		x.publish(sctx, *out)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// build runs internal/build on the job's target.
func (x *executor) build(ctx context.Context, j *job, w *watcher) (build.Result, error) {
	pool, err := x.d.Targets.Pool(ctx, j.target)
	if err != nil {
		class := postgres.Transient
		switch {
		case errors.Is(err, stage.ErrUnknownTarget):
			class = postgres.Permanent
		case ctx.Err() != nil:
			class = postgres.Canceled
		}
		return build.Result{}, &build.Error{Op: "connect", Class: class, Err: err}
	}
	return build.Build(ctx, pool, j.spec, build.Options{
		LockTimeout:      x.cfg.LockTimeout,
		StatementTimeout: x.cfg.StatementTimeout,
		OnStart:          w.started,
	})
}

// decide maps a build's result to its outcome.
func (x *executor) decide(ctx context.Context, j *job, res build.Result, err error) outcome {
	if err == nil {
		if res.AlreadyExisted {
			return outcome{name: OutcomeAlreadyExists, buildState: "done", recState: "applied", res: res,
				reason: "an equal valid index exists"}
		}
		return outcome{name: OutcomeBuilt, buildState: "done", recState: "applied", res: res}
	}
	var be *build.Error
	if !errors.As(err, &be) {
		be = &build.Error{Op: "build", Class: postgres.Classify(err), SQLState: postgres.SQLState(err), Err: err}
	}
	retry := outcome{name: OutcomeRetry, buildState: "pending", recState: "approved", err: be}
	switch {
	case be.Class == postgres.Canceled || ctx.Err() != nil:
		retry.refund, retry.reason = true, "executor stopping"
		return retry
	case be.Busy:
		retry.refund, retry.reason, retry.retryIn = true, "busy", x.backoff(1)
		return retry
	case be.Class == postgres.Permanent:
		return outcome{name: OutcomeFailed, buildState: "failed", recState: "failed", err: be, reason: "permanent error"}
	case j.attempt < x.cfg.MaxAttempts:
		retry.reason, retry.retryIn = "transient error", x.backoff(j.attempt)
		return retry
	}
	return outcome{name: OutcomeFailed, buildState: "failed", recState: "failed", err: be,
		reason: fmt.Sprintf("transient error, %d attempts made", j.attempt)}
}

// backoff is the delay before retry number attempt: the larger of the poll
// interval and the lock timeout, doubled per attempt, capped.
func (x *executor) backoff(attempt int) time.Duration {
	d := max(x.cfg.PollInterval, x.cfg.LockTimeout)
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// heartbeat extends the lease every third of it until ctx is done. When
// the row is no longer ours (taken over after an expired lease, or closed
// by someone else) it calls lost.
func (x *executor) heartbeat(ctx context.Context, j *job, lost func()) {
	t := time.NewTicker(max(x.cfg.Lease/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tag, err := x.d.Control.Exec(ctx, marker+`update indexpilot.builds
   set lease_until = now() + make_interval(secs => $3), updated_at = now()
 where recommendation_id = $1 and claimed_by = $2 and state = 'running'`, j.recID, x.id, x.cfg.Lease.Seconds())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			x.log.Warn("extend build lease", "recommendation_id", j.recID, "error", postgres.Describe(err))
		case tag.RowsAffected() == 0:
			lost()
			return
		}
	}
}

// evidence is the mutation_log evidence of a build attempt.
type evidence struct {
	Attempt            int      `json:"attempt"`
	MaxAttempts        int      `json:"max_attempts"`
	ExecutorID         string   `json:"executor_id"`
	TookOverFrom       string   `json:"took_over_from,omitempty"`
	QueryIDs           []string `json:"query_ids"`
	DurationMs         float64  `json:"duration_ms,omitempty"`
	SizeBytes          int64    `json:"size_bytes,omitempty"`
	ExistingDefinition string   `json:"existing_definition,omitempty"`
	DroppedLeftover    bool     `json:"dropped_leftover,omitempty"`
	Op                 string   `json:"op,omitempty"`
	Error              string   `json:"error,omitempty"`
	SQLState           string   `json:"sqlstate,omitempty"`
	Permanent          bool     `json:"permanent,omitempty"`
	Busy               bool     `json:"busy,omitempty"`
	LeftoverRemains    bool     `json:"leftover_remains,omitempty"`
	RetryInSeconds     float64  `json:"retry_in_seconds,omitempty"`
}

func (x *executor) entry(j *job, outcome, reason, indexName, ddl string, ev any) metadata.Entry {
	if indexName == "" {
		indexName = j.indexName
	}
	return metadata.Entry{
		Stage: Name, Action: "build", Outcome: outcome, Target: j.target,
		Schema: j.spec.Schema, Table: j.spec.Table, Fields: j.spec.Columns,
		IndexName: indexName, DDL: ddl, Reason: reason, Evidence: ev,
		EventID: j.decisionEventID, CandidateID: j.candidateID, RecommendationID: j.recID,
	}
}

// settle records o in one transaction: the builds row (only while this
// process still holds it), the recommendation's state and the
// mutation_log entry. It returns the event to publish, if any.
func (x *executor) settle(ctx context.Context, j *job, o outcome) (*metadata.Outboxed, error) {
	ev := evidence{Attempt: j.attempt, MaxAttempts: x.cfg.MaxAttempts, ExecutorID: x.id,
		TookOverFrom: j.takenOver, QueryIDs: j.queryIDs}
	if ev.QueryIDs == nil {
		ev.QueryIDs = []string{}
	}
	indexName, ddl := j.indexName, indexdef.CreateSQL(j.spec, j.indexName, true)
	var lastError, sqlstate any
	if o.err == nil {
		indexName, ddl = o.res.Name, o.res.DDL
		ev.DurationMs = float64(o.res.Duration.Microseconds()) / 1000
		ev.SizeBytes = o.res.SizeBytes
		ev.DroppedLeftover = o.res.DroppedLeftover
		if o.res.AlreadyExisted {
			ev.ExistingDefinition = o.res.Definition
		}
	} else {
		ev.Op, ev.Error, ev.SQLState = o.err.Op, o.err.Error(), o.err.SQLState
		ev.Permanent, ev.Busy, ev.LeftoverRemains = o.err.Permanent(), o.err.Busy, o.err.LeftoverRemains
		ev.RetryInSeconds = o.retryIn.Seconds()
		lastError = o.err.Error()
		if o.name == OutcomeStopped {
			// The row says why it stopped; the cancelled statement's
			// error is in the mutation_log evidence.
			lastError = o.reason
		}
		if o.err.SQLState != "" {
			sqlstate = o.err.SQLState
		}
	}
	refund := 0
	if o.refund {
		refund = 1
	}
	now := x.d.Clock()
	var out *metadata.Outboxed
	err := pgx.BeginFunc(ctx, x.d.Control, func(tx pgx.Tx) error {
		var payload events.Payload
		tag, err := tx.Exec(ctx, marker+`update indexpilot.builds
   set state = $3, claimed_by = null, lease_until = null, progress = null,
       not_before = now() + make_interval(secs => $4), attempts = attempts - $5,
       last_error = $6, sqlstate = $7, updated_at = now()
 where recommendation_id = $1 and claimed_by = $2 and state = 'running'`,
			j.recID, x.id, o.buildState, o.retryIn.Seconds(), refund, lastError, sqlstate)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errLeaseLost
		}
		// A retry puts the recommendation back to approved only if nobody
		// changed it meanwhile (a rejection stays); a finished build's
		// outcome is the truth whatever happened to it.
		if _, err := tx.Exec(ctx, marker+`update indexpilot.recommendations
   set state = $2, updated_at = now() where id = $1 and ($2 not in ('approved','deferred') or state = 'building')`,
			j.recID, o.recState); err != nil {
			return err
		}
		if _, err := metadata.AppendLog(ctx, tx, x.entry(j, o.name, o.reason, indexName, ddl, ev)); err != nil {
			return err
		}
		if err := x.queueValidation(ctx, tx, j, o); err != nil {
			return err
		}
		switch o.name {
		case OutcomeBuilt, OutcomeAlreadyExists:
			eventDDL := o.res.DDL
			if eventDDL == "" {
				eventDDL = o.res.Definition
			}
			payload = &events.IndexBuildCompleted{
				Target: j.target, RecommendationID: j.recID, CandidateID: j.candidateID,
				DecisionEventID: j.decisionEventID, Index: j.spec, IndexName: o.res.Name, DDL: eventDDL,
				AlreadyExisted: o.res.AlreadyExisted, DurationMs: ev.DurationMs, SizeBytes: o.res.SizeBytes,
				CompletedAt: now.UTC(),
			}
		case OutcomeFailed:
			payload = &events.IndexBuildFailed{
				Target: j.target, RecommendationID: j.recID, CandidateID: j.candidateID,
				DecisionEventID: j.decisionEventID, Index: j.spec, IndexName: j.indexName,
				Error: o.err.Error(), SQLState: o.err.SQLState, Permanent: o.err.Permanent(),
				Attempt: j.attempt, FailedAt: now.UTC(),
			}
		}
		if payload == nil {
			return nil
		}
		out, err = x.outbox(ctx, tx, j.decisionEventID, payload)
		return err
	})
	if errors.Is(err, errLeaseLost) {
		x.log.Warn("build row no longer held at settle time; outcome left to its holder",
			"recommendation_id", j.recID, "outcome", o.name)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("settle build %s: %w", j.recID, err)
	}
	return out, nil
}

var errLeaseLost = errors.New("build lease lost")

// outbox writes the outcome event p to the outbox in tx, the transaction
// that commits the outcome, so that the event survives a crash between the
// commit and the publish.
func (x *executor) outbox(ctx context.Context, tx pgx.Tx, corr string, p events.Payload) (*metadata.Outboxed, error) {
	id, err := metadata.Enqueue(ctx, tx, Name, corr, p)
	if err != nil {
		return nil, err
	}
	return &metadata.Outboxed{ID: id, CorrelationID: corr, Payload: p}, nil
}

// publish sends a committed outcome event, retrying a few times, and marks
// its outbox row published. What it cannot send stays in the outbox for
// relayOutbox; the event id is deterministic, so a consumer that sees it
// twice drops the copy.
func (x *executor) publish(ctx context.Context, o metadata.Outboxed) bool {
	delay := 200 * time.Millisecond
	for i := 1; ; i++ {
		err := x.d.Bus.Publish(ctx, Name, o.CorrelationID, o.Payload)
		if err == nil {
			break
		}
		if i == 5 || ctx.Err() != nil {
			x.log.Error("publish outcome; left in the outbox", "correlation_id", o.CorrelationID, "event_id", o.Payload.EventID(),
				"type", string(o.Payload.EventType()), "error", err.Error())
			return false
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		delay *= 2
	}
	if err := metadata.MarkPublished(ctx, x.d.Control, Name, o.ID); err != nil {
		x.log.Warn("outcome published but not marked; it will be published again", "event_id", o.Payload.EventID(),
			"error", postgres.Describe(err))
	}
	return true
}

// outboxGrace is how old an unpublished outbox row must be before the
// relay publishes it: younger ones are still with the goroutine that
// committed them.
const outboxGrace = 30 * time.Second

// outboxKeep is how long published outbox rows are kept, and
// outboxPruneEvery how often the relay deletes older ones.
const (
	outboxKeep       = 24 * time.Hour
	outboxPruneEvery = time.Hour
)

// relayOutbox publishes the outcome events that were committed but never
// marked published (a crash, or the bus down for longer than publish
// retries), and now and then deletes rows published long ago.
func (x *executor) relayOutbox(ctx context.Context) {
	if now := time.Now(); now.Sub(x.outboxPruned) >= outboxPruneEvery {
		if _, err := metadata.PruneOutbox(ctx, x.d.Control, Name, outboxKeep); err != nil {
			x.log.Warn("prune outbox", "error", postgres.Describe(err))
		} else {
			x.outboxPruned = now
		}
	}
	pending, err := metadata.Unpublished(ctx, x.d.Control, Name, outboxGrace, 100)
	if err != nil {
		if ctx.Err() == nil {
			x.log.Warn("read outbox", "error", postgres.Describe(err))
		}
		return
	}
	for _, o := range pending {
		if !x.publish(ctx, o) {
			return
		}
		x.log.Info("outcome published from the outbox", "correlation_id", o.CorrelationID,
			"event_id", o.Payload.EventID(), "type", string(o.Payload.EventType()))
	}
}
