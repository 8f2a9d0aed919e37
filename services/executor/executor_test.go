package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
)

const (
	wait = 60 * time.Second
	tick = 20 * time.Millisecond
)

// records is a slog handler that keeps every record, so a test can see
// what the stage did that leaves no other trace (a duplicate dropped).
type records struct {
	mu   *sync.Mutex
	list *[]slog.Record
}

func newRecords() records { return records{mu: &sync.Mutex{}, list: &[]slog.Record{}} }

func (r records) Enabled(context.Context, slog.Level) bool { return true }
func (r records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.list = append(*r.list, rec.Clone())
	return nil
}
func (r records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r records) WithGroup(string) slog.Handler      { return r }

// seen reports whether a record with msg carries attribute key=value.
func (r records) seen(msg, key, value string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range *r.list {
		if rec.Message != msg {
			continue
		}
		found := false
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key && a.Value.String() == value {
				found = true
				return false
			}
			return true
		})
		if found {
			return true
		}
	}
	return false
}

// env is a control database that is also the target "main", with the
// metadata schema and a public.contacts table.
type env struct {
	t  *testing.T
	db *pgtest.Database
}

func newEnv(t *testing.T, rows int) *env {
	t.Helper()
	db := pgtest.NewDatabase(t)
	_, err := metadata.Migrate(context.Background(), db.Pool)
	require.NoError(t, err)
	db.Exec(t,
		"create table public.contacts (id bigint primary key, tenant_id int not null, email text not null)",
		"insert into public.contacts select g, g % 50, 'user' || g || '@example.com' from generate_series(1, "+strconv.Itoa(rows)+") g",
		"analyze public.contacts")
	return &env{t: t, db: db}
}

// stageRun is one running executor.
type stageRun struct {
	bus     *bus.Bus
	logs    records
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	msgs    map[events.Type][]*message.Message
	stopped bool
}

// start runs executor.Start on a fresh memory bus and waits until it is
// ready. It subscribes to the outcome topics first so nothing is missed.
func (e *env) start(mod func(*config.Config)) *stageRun { return e.startWith(mod, executor.Options{}) }

// startWith is start with injected collaborators.
func (e *env) startWith(mod func(*config.Config), opts executor.Options) *stageRun {
	t := e.t
	t.Helper()
	cfg := config.Default()
	cfg.DatabaseURL = e.db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: e.db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Executor.PollInterval = 50 * time.Millisecond
	cfg.Executor.Lease = 30 * time.Second
	// The host's real CPU (shared with other test runs) must not defer a
	// build; the CPU test injects its own source and enables the watch.
	cfg.Executor.CPU.Enabled = false
	if mod != nil {
		mod(&cfg)
	}
	logs := newRecords()
	b := bus.NewMemory(slog.New(slog.DiscardHandler))
	r := &stageRun{bus: b, logs: logs, done: make(chan error, 1), msgs: map[events.Type][]*message.Message{}}

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, typ := range outcomeTypes {
		sub, err := b.Subscriber("test")
		require.NoError(t, err)
		ch, err := sub.Subscribe(ctx, events.Topic(typ))
		require.NoError(t, err)
		go func() {
			for m := range ch {
				r.mu.Lock()
				r.msgs[typ] = append(r.msgs[typ], m)
				r.mu.Unlock()
				m.Ack()
			}
		}()
	}
	targets := stage.NewTargets(cfg.Targets, executor.Name)
	ready := make(chan struct{})
	d := stage.Deps{
		Config: cfg, Bus: b, Control: e.db.Pool, Targets: targets,
		Logger:  slog.New(logs),
		OnReady: func() { close(ready) },
	}
	go func() { r.done <- executor.StartWith(ctx, d, opts) }()
	require.Eventually(t, func() bool {
		select {
		case <-ready:
			return true
		default:
			return false
		}
	}, wait, tick, "executor never became ready")
	t.Cleanup(func() {
		r.stop(t)
		targets.Close()
		_ = b.Close()
	})
	return r
}

// stop cancels the stage and requires Start to return nil.
func (r *stageRun) stop(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	var err error
	require.Eventually(t, func() bool {
		select {
		case err = <-r.done:
			return true
		default:
			return false
		}
	}, wait, tick, "Start did not return after cancellation")
	require.NoError(t, err, "Start must return nil on cancellation")
}

// received returns the ids of the messages received of type typ.
func (r *stageRun) received(typ events.Type) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, m := range r.msgs[typ] {
		ids = append(ids, m.UUID)
	}
	return ids
}

func (r *stageRun) payload(t *testing.T, typ events.Type, i int, out events.Payload) {
	t.Helper()
	r.mu.Lock()
	m := r.msgs[typ][i]
	r.mu.Unlock()
	envl, err := events.Unmarshal(m.Payload)
	require.NoError(t, err)
	require.NoError(t, events.DecodeData(envl, out))
}

func spec(cols ...string) events.IndexSpec {
	return events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: cols}
}

// approve inserts the recommendation as the gatekeeper does before it
// publishes its decision, and returns that decision.
func (e *env) approve(s events.IndexSpec, verdict events.Verdict) *events.IndexDecisionMade {
	e.t.Helper()
	state := map[events.Verdict]string{events.VerdictApproved: "approved", events.VerdictAdvised: "proposed",
		events.VerdictRejected: "rejected"}[verdict]
	recID := events.RecommendationID("main", s)
	cand := events.CandidateID("main", s, "v1")
	candEvent := events.DeterministicID("candidate_scored", cand, "2026-11-25T12:00:00.000000Z")
	_, err := e.db.Pool.Exec(context.Background(), `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, 'main', $2, $3, $4, $5, $6, $7, 'apply_mode', $8, $9, 'v1', 97.5, 100000, '{}')
on conflict do nothing`,
		recID, s.Key(), s.Schema, s.Table, s, indexdef.Name(s), state, cand, candEvent)
	require.NoError(e.t, err)
	return &events.IndexDecisionMade{
		Target: "main", RecommendationID: recID, CandidateID: cand, CandidateEventID: candEvent,
		Index: s, Verdict: verdict, Reason: events.ReasonApplyMode, QueryIDs: []string{"42"},
		DecidedAt: time.Date(2026, 11, 25, 12, 0, 1, 0, time.UTC),
	}
}

func (e *env) scalar(sql string, args ...any) any {
	e.t.Helper()
	var v any
	err := e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	require.NoError(e.t, err, "query %s", sql)
	return v
}

func (e *env) count(sql string, args ...any) int64 {
	e.t.Helper()
	v, ok := e.scalar(sql, args...).(int64)
	require.True(e.t, ok)
	return v
}

func (e *env) recState(recID string) string {
	e.t.Helper()
	s, _ := e.scalar("select state from indexpilot.recommendations where id = $1", recID).(string)
	return s
}

// ourIndex returns whether the index of s exists and is valid.
func (e *env) ourIndex(s events.IndexSpec) (exists, valid bool) {
	e.t.Helper()
	list, err := indexdef.Load(context.Background(), e.db.Pool, s.Schema, s.Table)
	require.NoError(e.t, err)
	for _, x := range list {
		if x.Name == indexdef.Name(s) {
			return true, x.Valid
		}
	}
	return false, false
}

func TestApprovedDecisionTwiceBuildsOneIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	s := spec("tenant_id", "email")
	run := e.start(nil)
	dec := e.approve(s, events.VerdictApproved)
	ctx := context.Background()

	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))

	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "applied" }, wait, tick,
		"recommendation %s never became applied (state %q)", dec.RecommendationID, e.recState(dec.RecommendationID))
	require.Eventually(t, func() bool { return run.logs.seen("decision already processed", "event_id", dec.EventID()) },
		wait, tick, "the second copy of decision %s was never handled", dec.EventID())
	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexBuildCompleted)) > 0 }, wait, tick)

	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.builds"))
	require.Equal(t, "done", e.scalar("select state from indexpilot.builds where recommendation_id = $1", dec.RecommendationID))
	// The outcome went through the outbox, written with the outcome and
	// marked once the bus had it.
	require.Eventually(t, func() bool {
		return e.count(`select count(*) from indexpilot.outbox where stage = 'executor'
 and event_type = $1 and correlation_id = $2 and published_at is not null`,
			string(events.TypeIndexBuildCompleted), dec.EventID()) == 1
	}, wait, tick, "the build outcome is not in the outbox, marked published")
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.outbox"))
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.processed_events where consumer = 'indexpilot.executor.decisions'"))

	list, err := indexdef.Load(ctx, e.db.Pool, "public", "contacts")
	require.NoError(t, err)
	equal := 0
	for _, x := range list {
		if x.Equal(s) {
			equal++
			require.True(t, x.Valid, "index %s is not valid", x.Name)
			require.Equal(t, indexdef.Name(s), x.Name)
		}
	}
	require.Equal(t, 1, equal, "want exactly one index for %s in %+v", s.Key(), list)

	ids := map[string]bool{}
	for _, id := range run.received(events.TypeIndexBuildCompleted) {
		ids[id] = true
	}
	require.Len(t, ids, 1)
	var done events.IndexBuildCompleted
	run.payload(t, events.TypeIndexBuildCompleted, 0, &done)
	require.Equal(t, done.EventID(), run.received(events.TypeIndexBuildCompleted)[0])
	require.Equal(t, dec.RecommendationID, done.RecommendationID)
	require.Equal(t, dec.EventID(), done.DecisionEventID)
	require.Equal(t, indexdef.Name(s), done.IndexName)
	require.False(t, done.AlreadyExisted)
	require.Equal(t, indexdef.CreateSQL(s, done.IndexName, true), done.DDL)
	require.Positive(t, done.SizeBytes)
	require.Empty(t, run.received(events.TypeIndexBuildFailed))

	var (
		outcome, indexName, ddl, eventID, candID string
		ev                                       map[string]any
	)
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select outcome, index_name, ddl, event_id::text, candidate_id::text, evidence
  from indexpilot.mutation_log where stage = 'executor' and action = 'build' and recommendation_id = $1`,
		dec.RecommendationID).Scan(&outcome, &indexName, &ddl, &eventID, &candID, &ev))
	require.Equal(t, "built", outcome)
	require.Equal(t, indexdef.Name(s), indexName)
	require.Equal(t, done.DDL, ddl)
	require.Equal(t, dec.EventID(), eventID)
	require.Equal(t, dec.CandidateID, candID)
	require.Equal(t, float64(1), ev["attempt"])
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.mutation_log where stage = 'executor'"))
}

func TestOtherVerdictsAreOnlyMarkedProcessed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	run := e.start(nil)
	dec := e.approve(spec("email"), events.VerdictAdvised)
	dec.Reason = events.ReasonAdvisoryMode
	require.NoError(t, run.bus.Publish(context.Background(), "gatekeeper", "", dec))
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.processed_events where event_id = $1", dec.EventID()) == 1
	}, wait, tick)
	require.Equal(t, int64(0), e.count("select count(*) from indexpilot.builds"))
	exists, _ := e.ourIndex(spec("email"))
	require.False(t, exists)
}

func TestStopMidBuildCancelsCleansUpAndRequeues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20000)
	ctx := context.Background()
	s := spec("email")
	slow := func(c *config.Config) { c.Executor.LockTimeout = 5 * time.Minute }

	// An open snapshot holds CREATE INDEX CONCURRENTLY at its last phase.
	snap, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(t, err)
	defer snap.Close(ctx)
	_, err = snap.Exec(ctx, "begin isolation level repeatable read")
	require.NoError(t, err)
	_, err = snap.Exec(ctx, "select count(*) from pg_class")
	require.NoError(t, err)

	run := e.start(slow)
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))
	require.Eventually(t, func() bool {
		return e.count(`select count(*) from pg_stat_progress_create_index
 where relid = 'public.contacts'::regclass and phase = 'waiting for old snapshots'`) == 1
	}, wait, tick, "the build never reached its last phase")
	require.Equal(t, "building", e.recState(dec.RecommendationID))

	run.stop(t)

	var state string
	var attempts int
	var claimedBy *string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `select state, attempts, claimed_by from indexpilot.builds
 where recommendation_id = $1`, dec.RecommendationID).Scan(&state, &attempts, &claimedBy))
	require.Equal(t, "pending", state)
	require.Equal(t, 0, attempts, "a cancelled attempt is given back")
	require.Nil(t, claimedBy)
	require.Equal(t, "approved", e.recState(dec.RecommendationID))
	exists, _ := e.ourIndex(s)
	require.False(t, exists, "the cancelled build's INVALID leftover must be dropped")
	require.Equal(t, "retry", e.scalar(`select outcome from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1`, dec.RecommendationID))
	require.Empty(t, run.received(events.TypeIndexBuildCompleted))
	require.Empty(t, run.received(events.TypeIndexBuildFailed))

	_, err = snap.Exec(ctx, "rollback")
	require.NoError(t, err)
	again := e.start(slow)
	require.Eventually(t, func() bool { return e.recState(dec.RecommendationID) == "applied" }, wait, tick)
	require.Eventually(t, func() bool { return len(again.received(events.TypeIndexBuildCompleted)) == 1 }, wait, tick)
	_, valid := e.ourIndex(s)
	require.True(t, valid)
	require.Equal(t, int32(1), e.scalar("select attempts from indexpilot.builds where recommendation_id = $1", dec.RecommendationID))
}

func TestExpiredLeaseIsTakenOverAndLiveLeaseIsNot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1000)
	ctx := context.Background()
	dead := e.approve(spec("tenant_id"), events.VerdictApproved)
	live := e.approve(spec("email"), events.VerdictApproved)
	for _, x := range []struct {
		dec   *events.IndexDecisionMade
		lease string
	}{{dead, "now() - interval '1 minute'"}, {live, "now() + interval '1 hour'"}} {
		_, err := e.db.Pool.Exec(ctx, `update indexpilot.recommendations set state = 'building' where id = $1`, x.dec.RecommendationID)
		require.NoError(t, err)
		_, err = e.db.Pool.Exec(ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, state, attempts, claimed_by, lease_until)
values ($1, 'main', $2, $3, $4, $5, 'running', 1, 'elsewhere/1/0000', `+x.lease+`)`,
			x.dec.RecommendationID, x.dec.Index, indexdef.Name(x.dec.Index), x.dec.EventID(), x.dec.CandidateID)
		require.NoError(t, err)
	}

	run := e.start(nil)
	require.Eventually(t, func() bool { return e.recState(dead.RecommendationID) == "applied" }, wait, tick)
	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexBuildCompleted)) == 1 }, wait, tick)
	require.Equal(t, int32(2), e.scalar("select attempts from indexpilot.builds where recommendation_id = $1", dead.RecommendationID))
	require.Equal(t, "elsewhere/1/0000", e.scalar(`select evidence->>'took_over_from' from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1`, dead.RecommendationID))

	require.Equal(t, "running", e.scalar("select state from indexpilot.builds where recommendation_id = $1", live.RecommendationID))
	require.Equal(t, "elsewhere/1/0000", e.scalar("select claimed_by from indexpilot.builds where recommendation_id = $1", live.RecommendationID))
	exists, _ := e.ourIndex(live.Index)
	require.False(t, exists, "a build under a live lease belongs to its holder")
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	run := e.start(nil)
	s := spec("no_such_column")
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(context.Background(), "gatekeeper", "", dec))

	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexBuildFailed)) == 1 }, wait, tick)
	var failed events.IndexBuildFailed
	run.payload(t, events.TypeIndexBuildFailed, 0, &failed)
	require.Equal(t, "42703", failed.SQLState)
	require.True(t, failed.Permanent)
	require.Equal(t, 1, failed.Attempt)
	require.Equal(t, failed.EventID(), run.received(events.TypeIndexBuildFailed)[0])
	require.Equal(t, "failed", e.recState(dec.RecommendationID))
	require.Equal(t, "failed", e.scalar("select state from indexpilot.builds where recommendation_id = $1", dec.RecommendationID))
	require.Equal(t, "42703", e.scalar(`select evidence->>'sqlstate' from indexpilot.mutation_log
 where stage = 'executor' and outcome = 'failed' and recommendation_id = $1`, dec.RecommendationID))
	require.Empty(t, run.received(events.TypeIndexBuildCompleted))
}

func TestLockTimeoutIsRetriedThenFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1000)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(t, err)
	defer holder.Close(ctx)
	_, err = holder.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = holder.Exec(ctx, "lock table public.contacts in access exclusive mode")
	require.NoError(t, err)

	run := e.start(func(c *config.Config) {
		c.Executor.LockTimeout = 300 * time.Millisecond
		c.Executor.MaxAttempts = 2
	})
	s := spec("email")
	dec := e.approve(s, events.VerdictApproved)
	require.NoError(t, run.bus.Publish(ctx, "gatekeeper", "", dec))

	require.Eventually(t, func() bool { return len(run.received(events.TypeIndexBuildFailed)) == 1 }, wait, tick)
	var failed events.IndexBuildFailed
	run.payload(t, events.TypeIndexBuildFailed, 0, &failed)
	require.Equal(t, "55P03", failed.SQLState)
	require.False(t, failed.Permanent)
	require.Equal(t, 2, failed.Attempt)
	require.Equal(t, "failed", e.recState(dec.RecommendationID))

	rows, err := e.db.Pool.Query(ctx, `select outcome from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1 order by id`, dec.RecommendationID)
	require.NoError(t, err)
	outcomes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"retry", "failed"}, outcomes)
	_, err = holder.Exec(ctx, "rollback")
	require.NoError(t, err)
	exists, _ := e.ourIndex(s)
	require.False(t, exists)
	require.Empty(t, run.received(events.TypeIndexBuildCompleted))
}

func TestBuildOfRecommendationNoLongerApprovedIsSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	ctx := context.Background()
	dec := e.approve(spec("email"), events.VerdictApproved)
	// Rejected (e.g. by an operator) after the decision was queued.
	_, err := e.db.Pool.Exec(ctx, `update indexpilot.recommendations set state = 'rejected' where id = $1`, dec.RecommendationID)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id)
values ($1, 'main', $2, $3, $4, $5)`, dec.RecommendationID, dec.Index, indexdef.Name(dec.Index), dec.EventID(), dec.CandidateID)
	require.NoError(t, err)

	run := e.start(nil)
	require.Eventually(t, func() bool {
		return e.scalar("select state from indexpilot.builds where recommendation_id = $1", dec.RecommendationID) == "failed"
	}, wait, tick)
	require.Equal(t, "rejected", e.recState(dec.RecommendationID))
	require.Equal(t, "skipped", e.scalar(`select outcome from indexpilot.mutation_log
 where stage = 'executor' and recommendation_id = $1`, dec.RecommendationID))
	exists, _ := e.ourIndex(dec.Index)
	require.False(t, exists)
	require.Empty(t, run.received(events.TypeIndexBuildCompleted))
	require.Empty(t, run.received(events.TypeIndexBuildFailed))
}

// TestOutboxRelayPublishesWhatACrashLeft: an outcome committed with its
// outbox row but never published (the process died in between) is
// published by the next executor's relay, with its own event id, and
// marked; a row younger than the grace period is left to its writer.
func TestOutboxRelayPublishesWhatACrashLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	ctx := context.Background()
	left := &events.IndexRemovalCompleted{Target: "main", RemovalID: "5f0c6a52-4d7e-4a43-9d1b-0c2e6f1f9a10", Schema: "public",
		Table: "contacts", IndexName: "ip_contacts_email_0badc0de", Definition: "CREATE INDEX ip_contacts_email_0badc0de ON public.contacts USING btree (email)",
		DDL: `DROP INDEX CONCURRENTLY "public"."ip_contacts_email_0badc0de"`, DroppedAt: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	id, err := metadata.Enqueue(ctx, e.db.Pool, executor.Name, left.RemovalID, left)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, "update indexpilot.outbox set created_at = now() - interval '5 minutes' where id = $1", id)
	require.NoError(t, err)
	young := *left
	young.RemovalID = "0d7e4b8e-2f57-4c1a-8a65-3b7d1c9e4f21"
	youngID, err := metadata.Enqueue(ctx, e.db.Pool, executor.Name, young.RemovalID, &young)
	require.NoError(t, err)

	run := e.start(nil)
	require.Eventually(t, func() bool {
		return slices.Contains(run.received(events.TypeIndexRemovalCompleted), left.EventID())
	}, wait, tick, "the relay never published the outcome the crash left")
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.outbox where id = $1 and published_at is not null", id) == 1
	}, wait, tick, "the relayed row was not marked published")
	var got events.IndexRemovalCompleted
	run.payload(t, events.TypeIndexRemovalCompleted, 0, &got)
	require.Equal(t, left.RemovalID, got.RemovalID)
	require.Equal(t, left.DroppedAt, got.DroppedAt.UTC())
	require.Equal(t, int64(1), e.count("select count(*) from indexpilot.outbox where id = $1 and published_at is null", youngID),
		"a row inside the grace period belongs to its writer")
	require.NotContains(t, run.received(events.TypeIndexRemovalCompleted), young.EventID())
}
