// Package executor is the stage that turns approved index decisions into
// indexes.
//
// It reconciles rather than replays: the handler of IndexDecisionMade only
// records a pending build (in the same transaction as the processed-event
// row) and acknowledges; a build loop claims pending builds with
// FOR UPDATE SKIP LOCKED and a heartbeated lease, builds them with
// internal/build (which reads the catalog and does only what is missing),
// records the outcome in builds, recommendations and mutation_log in one
// transaction, and then publishes IndexBuildCompleted or IndexBuildFailed.
// A redelivered, replayed or stale decision is a no-op, a build whose
// executor died is taken over when its lease expires, and a build that did
// not happen is never reported as a success.
package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
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
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// Name is the stage name: the producer of its events, the marker of its
// SQL and the prefix of its consumer groups.
const Name = "executor"

// DecisionsHandler is the handler name of IndexDecisionMade; its consumer
// group and inbox consumer are "indexpilot.executor.decisions".
const DecisionsHandler = "decisions"

// handlerTimeout bounds one attempt of the decision handler: it only writes
// one short transaction.
const handlerTimeout = 30 * time.Second

var marker = postgres.Marker(Name)

// Run opens its own dependencies from cfg and runs until ctx ends.
func Run(ctx context.Context, cfg config.Config) error { return stage.Run(ctx, cfg, Name, Start) }

// Start runs the stage on d until ctx is done and returns nil then. It calls
// d.Ready() once the decision handler consumes its topic. On cancellation an
// in-flight build is cancelled on the server, its INVALID leftover dropped
// and its row put back to pending before Start returns.
func Start(ctx context.Context, d stage.Deps) error { return StartWith(ctx, d, Options{}) }

// StartWith is Start with injected collaborators: the emergency stop and
// the CPU source.
func StartWith(ctx context.Context, d stage.Deps, opts Options) error {
	if err := d.Check(); err != nil {
		return err
	}
	if opts.Stopper == nil {
		// The live bypass: an emergency stop or the system level halts
		// every build at once, on every executor instance.
		st, err := bypass.Watch(ctx, d, Name)
		if err != nil {
			return err
		}
		opts.Stopper = st
	}
	x, err := newExecutor(d, opts)
	if err != nil {
		return err
	}
	unregister, err := x.registerMetrics(opts.Meter)
	if err != nil {
		return err
	}
	defer unregister()
	router, err := d.Bus.NewRouter(Name, handlerTimeout)
	if err != nil {
		return err
	}
	if err := router.Handle(DecisionsHandler, events.TypeIndexDecisionMade, x.handleDecision); err != nil {
		return err
	}
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case err := <-routerDone:
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("router stopped before running")
		}
		return fmt.Errorf("run decisions router: %w", err)
	case <-ctx.Done():
		_ = router.Close()
		<-routerDone
		return nil
	}
	d.Ready()

	// The build loop stops with ctx, or when the router stops on its own
	// (its subscription broke): then the stage fails so it is restarted.
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	var routerErr error
	routerStopped := make(chan struct{})
	go func() {
		defer close(routerStopped)
		routerErr = <-routerDone
		stopLoop()
	}()

	x.reconcile(loopCtx)

	if err := router.Close(); err != nil {
		x.log.Warn("close router", "error", err.Error())
	}
	<-routerStopped
	if ctx.Err() != nil {
		return nil
	}
	if routerErr == nil {
		routerErr = errors.New("stopped unexpectedly")
	}
	return fmt.Errorf("run decisions router: %w", routerErr)
}

// executor is one process's executor: its claim identity and the targets
// it is building on right now (one build per target per process, so that
// a long build on one target never holds up the others).
type executor struct {
	d        stage.Deps
	cfg      config.Executor
	id       string
	consumer string
	log      *slog.Logger
	wake     chan struct{}

	stopper Stopper
	cpu     CPUSource
	// health records each pass of the claim loop and each build settled
	// in indexpilot.stage_health.
	health *metadata.StageHealth

	mu       sync.Mutex
	inFlight map[string]bool
	progress map[string]Progress
	wg       sync.WaitGroup

	// validating and removing make sure one process runs one validation
	// pass and one removal pass at a time, beside its builds.
	validating, removing atomic.Bool
	// relaying makes sure one relay of the outbox runs at a time;
	// outboxPruned is when it last deleted old published rows (used by
	// that one relay only).
	relaying     atomic.Bool
	outboxPruned time.Time
	// recovering makes sure one pass over approvals without a build runs
	// at a time; recoveredAt is when it last ran (used by that pass only).
	recovering  atomic.Bool
	recoveredAt time.Time
}

// background runs fn in a goroutine unless the previous run of fn (flagged
// by busy) is still going.
func (x *executor) background(ctx context.Context, busy *atomic.Bool, fn func(context.Context)) {
	if ctx.Err() != nil || !busy.CompareAndSwap(false, true) {
		return
	}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		defer busy.Store(false)
		fn(ctx)
	}()
}

func newExecutor(d stage.Deps, opts Options) (*executor, error) {
	cfg := d.Config.Executor
	def := config.Default().Executor
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = def.LockTimeout
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = def.StatementTimeout
	}
	if cfg.MaxAttempts < 1 {
		cfg.MaxAttempts = def.MaxAttempts
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = def.PollInterval
	}
	if cfg.Lease <= 0 {
		cfg.Lease = def.Lease
	}
	if cfg.CPU.Interval <= 0 {
		cfg.CPU.Interval = def.CPU.Interval
	}
	if cfg.CPU.Samples < 1 {
		cfg.CPU.Samples = def.CPU.Samples
	}
	if cfg.CPU.DeferFor <= 0 {
		cfg.CPU.DeferFor = def.CPU.DeferFor
	}
	if opts.Stopper == nil {
		opts.Stopper = NoStop{}
	}
	if opts.CPU == nil {
		opts.CPU = &PGCPU{Cores: cfg.CPU.Cores}
	}
	id, err := processID()
	if err != nil {
		return nil, err
	}
	return &executor{
		d: d, cfg: cfg, id: id,
		consumer: events.ConsumerGroup(Name, DecisionsHandler),
		log:      d.Logger.With("executor_id", id),
		wake:     make(chan struct{}, 1),
		inFlight: map[string]bool{},
		progress: map[string]Progress{},
		stopper:  opts.Stopper,
		cpu:      opts.CPU,
		health:   metadata.NewStageHealth(d.Control, d.Logger, Name),
	}, nil
}

// processID names this process in builds.claimed_by: host, pid and a
// random suffix, so that a restarted process never mistakes an old lease
// for its own.
func processID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make executor id: %w", err)
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// poke wakes the build loop without waiting for the next poll.
func (x *executor) poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// handleDecision records an approved decision as a pending build, in one
// transaction with the processed-event row. Other verdicts are only marked
// processed. The build itself happens in the build loop.
func (x *executor) handleDecision(ctx context.Context, env events.Envelope, p events.Payload) ([]events.Payload, error) {
	dec, ok := p.(*events.IndexDecisionMade)
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("handle decision %s: unexpected payload %T", env.ID, p))
	}
	approved := dec.Verdict == events.VerdictApproved
	if approved {
		if err := indexdef.Validate(dec.Index); err != nil {
			return nil, bus.Permanent(fmt.Errorf("handle decision %s: %w", env.ID, err))
		}
		if dec.RecommendationID == "" || dec.CandidateID == "" || dec.Target == "" {
			return nil, bus.Permanent(fmt.Errorf("handle decision %s: missing target, recommendation or candidate id", env.ID))
		}
	}
	queued, err := x.queue(ctx, dec, env.ID, false)
	if err != nil {
		return nil, err
	}
	if queued {
		x.log.InfoContext(ctx, "build queued", "target", dec.Target, "recommendation_id", dec.RecommendationID,
			"index", indexdef.Name(dec.Index), "table", dec.Index.QualifiedTable())
		x.poke()
	}
	return nil, nil
}

// queue records decision eventID (dec) as processed and, if it approves,
// as a pending build, in one transaction; it reports whether a build was
// queued. A decision already processed, or a recommendation that already
// has its build, is a no-op. recovered marks a decision the executor
// rebuilt from an approved recommendation (recover.go): it is logged in
// mutation_log as queued without its event.
func (x *executor) queue(ctx context.Context, dec *events.IndexDecisionMade, eventID string, recovered bool) (bool, error) {
	queued := false
	err := pgx.BeginFunc(ctx, x.d.Control, func(tx pgx.Tx) error {
		queued = false
		first, err := metadata.MarkProcessed(ctx, tx, x.consumer, eventID)
		if err != nil {
			return err
		}
		if !first {
			x.log.DebugContext(ctx, "decision already processed", "event_id", eventID)
			return nil
		}
		if dec.Verdict != events.VerdictApproved {
			return nil
		}
		queryIDs := dec.QueryIDs
		if queryIDs == nil {
			queryIDs = []string{}
		}
		tag, err := tx.Exec(ctx, marker+`insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, query_ids, trace_parent)
values ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''))
on conflict (recommendation_id) do nothing`,
			dec.RecommendationID, dec.Target, dec.Index, indexdef.Name(dec.Index), eventID, dec.CandidateID, queryIDs,
			telemetry.TraceParent(trace.SpanContextFromContext(ctx)))
		if err != nil {
			return err
		}
		queued = tag.RowsAffected() == 1
		if !queued || !recovered {
			return nil
		}
		_, err = metadata.AppendLog(ctx, tx, metadata.Entry{
			Stage: Name, Action: "build", Outcome: OutcomeQueued, Target: dec.Target,
			Schema: dec.Index.Schema, Table: dec.Index.Table, Fields: dec.Index.Columns,
			IndexName: indexdef.Name(dec.Index), Reason: ReasonDecisionEventMissing,
			Evidence: evidence{ExecutorID: x.id, QueryIDs: queryIDs},
			EventID:  eventID, CandidateID: dec.CandidateID, RecommendationID: dec.RecommendationID,
		})
		return err
	})
	if err != nil {
		err = fmt.Errorf("record build of decision %s: %w", eventID, err)
		if postgres.Classify(err) == postgres.Permanent {
			return false, bus.Permanent(err)
		}
		return false, err
	}
	return queued, nil
}

// reconcile claims and runs builds until ctx is done, then waits for the
// in-flight ones to settle.
func (x *executor) reconcile(ctx context.Context) {
	ticker := time.NewTicker(x.cfg.PollInterval)
	defer ticker.Stop()
	for {
		changed := x.stopChanged()
		if err := x.claimAll(ctx); ctx.Err() == nil {
			x.health.Beat(ctx, "", x.d.Clock(), x.cfg.PollInterval, nil, err)
		}
		x.background(ctx, &x.validating, x.validateDue)
		x.background(ctx, &x.removing, x.removeDue)
		x.background(ctx, &x.relaying, x.relayOutbox)
		x.background(ctx, &x.recovering, x.recoverDue)
		select {
		case <-ctx.Done():
			x.wg.Wait()
			return
		case <-ticker.C:
		case <-x.wake:
		case <-changed: // a resume starts pending work at once
		}
	}
}

// claimAll starts a build for every claimable row whose target has no
// build of this process in flight. Its error is the claim's, if one
// failed.
func (x *executor) claimAll(ctx context.Context) error {
	if stop, why := x.stopper.Stopped(); stop {
		x.log.Debug("emergency stop: claiming nothing", "reason", why)
		return nil
	}
	for ctx.Err() == nil {
		if stop, _ := x.stopper.Stopped(); stop {
			return nil
		}
		x.mu.Lock()
		busy := make([]string, 0, len(x.inFlight))
		for t := range x.inFlight {
			busy = append(busy, t)
		}
		x.mu.Unlock()
		j, err := x.claim(ctx, busy)
		if err != nil {
			if ctx.Err() == nil {
				x.log.Warn("claim build", "error", postgres.Describe(err))
			}
			return fmt.Errorf("claim build: %s", postgres.Describe(err))
		}
		if j == nil {
			return nil
		}
		if j.skip {
			continue
		}
		x.mu.Lock()
		x.inFlight[j.target] = true
		x.mu.Unlock()
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			x.process(ctx, j)
			x.mu.Lock()
			delete(x.inFlight, j.target)
			x.mu.Unlock()
			x.poke()
		}()
	}
	return nil
}
