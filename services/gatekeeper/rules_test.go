package gatekeeper_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// fakeCPU is an injectable CPU source.
type fakeCPU struct{ pct atomic.Int64 }

func (f *fakeCPU) CPUPercent(context.Context, string) (float64, error) {
	return float64(f.pct.Load()), nil
}

type direct struct {
	db  *pgtest.Database
	g   *gatekeeper.Gatekeeper
	cpu *fakeCPU
	bp  *bypass.State
	ctx context.Context
}

func newDirect(t *testing.T, mut func(*config.Config)) *direct {
	t.Helper()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Features.AutoIndexer.Mode = config.ModeApply
	cfg.Gatekeeper.CPU.Cooldown = 0
	if mut != nil {
		mut(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	t.Cleanup(func() { _ = b.Close() })
	f := &fakeCPU{}
	bp := bypass.NewState(cfg.Features.Bypass, nil)
	g, err := gatekeeper.New(stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: stage.NewTargets(cfg.Targets, "t"), Logger: logger},
		gatekeeper.Options{CPU: f, Bypass: bp})
	require.NoError(t, err)
	return &direct{db: db, g: g, cpu: f, bp: bp, ctx: ctx}
}

func (d *direct) handle(t *testing.T, c *events.IndexCandidateScored) []events.Payload {
	t.Helper()
	env, err := events.Wrap(c, "scorer", "", time.Now())
	require.NoError(t, err)
	out, err := d.g.Handle(d.ctx, env, c)
	require.NoError(t, err)
	return out
}

func (d *direct) rec(t *testing.T, c *events.IndexCandidateScored) (string, string) {
	t.Helper()
	var state, reason string
	require.NoError(t, d.db.Pool.QueryRow(d.ctx, "select state, reason from indexpilot.recommendations where id = $1",
		events.RecommendationID(c.Target, c.Index)).Scan(&state, &reason))
	return state, reason
}

func (d *direct) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, d.db.Pool.QueryRow(d.ctx, sql, args...).Scan(&n))
	return n
}

func verdicts(out []events.Payload) []events.Verdict {
	var v []events.Verdict
	for _, p := range out {
		v = append(v, p.(*events.IndexDecisionMade).Verdict)
	}
	return v
}

func TestThrottledCandidateIsDeferredNeverDroppedAndRedeliveryHasNoEffect(t *testing.T) {
	d := newDirect(t, nil)
	d.cpu.pct.Store(95)
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	require.Equal(t, []events.Verdict{events.VerdictDeferred}, verdicts(d.handle(t, c)))
	state, reason := d.rec(t, c)
	require.Equal(t, "deferred", state)
	require.Equal(t, string(events.ReasonCPUThrottled), reason)
	// Redelivered: no second effect.
	require.Empty(t, d.handle(t, c))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where action = 'recommend'"))
	require.Equal(t, 0, d.count(t, "select count(*) from indexpilot.rate_buckets"), "a token was charged for a deferred build")
	// Still overloaded: the recheck changes nothing.
	n, err := d.g.Recheck(d.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	// Cleared: approved once, one token charged, lineage kept.
	d.cpu.pct.Store(10)
	n, err = d.g.Recheck(d.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	state, reason = d.rec(t, c)
	require.Equal(t, "approved", state)
	require.Equal(t, string(events.ReasonApplyMode), reason)
	require.Equal(t, 1, d.count(t, `select count(*) from indexpilot.mutation_log m join indexpilot.mutation_log p on p.id = m.parent_id
 where m.outcome = 'deferred->approved' and p.outcome = 'deferred' and m.candidate_id is not null and m.event_id is not null`))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.rate_buckets where bucket = 'target:main' and tokens = 9"))
	// Redelivering the candidate event now only republishes the approval
	// (same deterministic id, deduplicated by the executor): no new row.
	out := d.handle(t, c)
	require.Equal(t, []events.Verdict{events.VerdictApproved}, verdicts(out))
	require.Equal(t, 2, d.count(t, "select count(*) from indexpilot.mutation_log where action = 'recommend'"))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.rate_buckets where bucket = 'target:main' and tokens = 9"))
}

func TestRateLimitPerTableDefersTheSecondBuild(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Gatekeeper.RateLimit.Table = config.Bucket{Burst: 1, PerHour: 1} })
	a := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	b := candidate(96, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	b.Index.Columns = []string{"status"}
	b.CandidateID = events.CandidateID("main", b.Index, "v1")
	require.Equal(t, []events.Verdict{events.VerdictApproved}, verdicts(d.handle(t, a)))
	require.Equal(t, []events.Verdict{events.VerdictDeferred}, verdicts(d.handle(t, b)))
	_, reason := d.rec(t, b)
	require.Equal(t, string(events.ReasonRateLimitedTable), reason)
	var detail string
	require.NoError(t, d.db.Pool.QueryRow(d.ctx, "select detail from indexpilot.recommendations where reason = $1", reason).Scan(&detail))
	require.Contains(t, detail, "next token at")
}

func TestBypassDefersAndRecheckApprovesWhenLifted(t *testing.T) {
	d := newDirect(t, nil)
	d.bp.Apply(bypass.Switch{Level: bypass.LevelEmergency, Disabled: true, ChangeID: 1, Reason: "incident", Actor: "ops"})
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	d.handle(t, c)
	state, reason := d.rec(t, c)
	require.Equal(t, "deferred", state)
	require.Equal(t, string(events.ReasonEmergencyStop), reason)
	d.bp.Apply(bypass.Switch{Level: bypass.LevelEmergency, Disabled: false, ChangeID: 2})
	_, err := d.g.Recheck(d.ctx)
	require.NoError(t, err)
	state, _ = d.rec(t, c)
	require.Equal(t, "approved", state)
}

func TestApprovalWorkflowAndOperatorReject(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Gatekeeper.Approval.AutoApproveMinImprovementPct = 99 })
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	require.Equal(t, []events.Verdict{events.VerdictAdvised}, verdicts(d.handle(t, c)))
	state, reason := d.rec(t, c)
	require.Equal(t, "proposed", state)
	require.Equal(t, string(events.ReasonAwaitingApproval), reason)
	id := events.RecommendationID(c.Target, c.Index)
	_, err := gatekeeper.Approve(d.ctx, d.db.Pool, id[:8], "alice", "looks right", time.Now())
	require.NoError(t, err)
	state, reason = d.rec(t, c)
	require.Equal(t, "deferred", state)
	require.Equal(t, string(events.ReasonOperatorApproved), reason)
	_, err = d.g.Recheck(d.ctx)
	require.NoError(t, err)
	state, reason = d.rec(t, c)
	require.Equal(t, "approved", state)
	require.Equal(t, string(events.ReasonOperatorApproved), reason)

	other := candidate(50, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	other.Index.Columns = []string{"status"}
	other.CandidateID = events.CandidateID("main", other.Index, "v1")
	d.handle(t, other)
	oid := events.RecommendationID(other.Target, other.Index)
	_, err = gatekeeper.Reject(d.ctx, d.db.Pool, oid, "bob", "not on this table")
	require.NoError(t, err)
	state, reason = d.rec(t, other)
	require.Equal(t, "rejected", state)
	require.Equal(t, string(events.ReasonOperatorRejected), reason)
	// A newer candidate does not reopen an operator's rejection.
	newer := *other
	newer.WindowEnd = other.WindowEnd.Add(time.Hour)
	require.Empty(t, d.handle(t, &newer))
	state, _ = d.rec(t, other)
	require.Equal(t, "rejected", state)
	_, err = gatekeeper.Approve(d.ctx, d.db.Pool, "ffffffff", "x", "y", time.Now())
	require.ErrorIs(t, err, gatekeeper.ErrNotFound)
}

func TestBlocklistAndSupersede(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Features.AutoIndexer.Mode = config.ModeAdvisory })
	narrow := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	narrow.Index.Columns = []string{"tenant_id"}
	narrow.CandidateID = events.CandidateID("main", narrow.Index, "v1")
	d.handle(t, narrow)
	wide := candidate(98, time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC))
	d.handle(t, wide)
	state, reason := d.rec(t, narrow)
	require.Equal(t, "superseded", state)
	require.Equal(t, string(events.ReasonSuperseded), reason)
	state, _ = d.rec(t, wide)
	require.Equal(t, "proposed", state)

	blocked := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	blocked.Index.Columns = []string{"email"}
	blocked.CandidateID = events.CandidateID("main", blocked.Index, "v1")
	_, err := d.db.Pool.Exec(d.ctx, `insert into indexpilot.blocklist (target, query_fingerprint, index_key, reason) values ('main', '42', $1, 'regressed')`,
		blocked.Index.Key())
	require.NoError(t, err)
	require.Equal(t, []events.Verdict{events.VerdictRejected}, verdicts(d.handle(t, blocked)))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where candidate_id = $1 and outcome = 'rejected' and reason = 'blocklisted'", blocked.CandidateID))
	require.Equal(t, 0, d.count(t, "select count(*) from indexpilot.recommendations where id = $1", events.RecommendationID("main", blocked.Index)),
		"a blocklisted pair was proposed again")
}

func TestWriteLimitRejectsFromTableStatistics(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Gatekeeper.Write.MaxIndexesPerTable = 2 })
	st := events.TableStatObserved{Target: "main", Schema: "public", Table: "contacts", LiveRows: 10,
		Indexes: []events.IndexStat{{Name: "a"}, {Name: "b"}}}
	_, err := d.db.Pool.Exec(d.ctx, `insert into indexpilot.table_stats (target, schema_name, table_name, observed_at, stats) values ('main','public','contacts', now(), $1)`, st)
	require.NoError(t, err)
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	require.Equal(t, []events.Verdict{events.VerdictRejected}, verdicts(d.handle(t, c)))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where outcome = 'rejected' and reason = 'max_indexes_per_table'"))
	// An open recommendation that a rule now rejects records it on the row.
	d.handle(t, candidate(97, time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC))) // older: ignored
	_, err = d.db.Pool.Exec(d.ctx, "delete from indexpilot.table_stats")
	require.NoError(t, err)
	d.cpu.pct.Store(99)
	d.handle(t, candidate(97, time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)))
	state, _ := d.rec(t, c)
	require.Equal(t, "deferred", state)
	_, err = d.db.Pool.Exec(d.ctx, `insert into indexpilot.table_stats (target, schema_name, table_name, observed_at, stats) values ('main','public','contacts', now(), $1)`, st)
	require.NoError(t, err)
	d.handle(t, candidate(97, time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)))
	state, reason := d.rec(t, c)
	require.Equal(t, "rejected", state)
	require.Equal(t, string(events.ReasonMaxIndexesPerTable), reason)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where outcome = 'deferred->rejected' and reason = 'max_indexes_per_table' and parent_id is not null"))
}

func removal(at time.Time) *events.IndexRemovalProposed {
	def := "CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)"
	return &events.IndexRemovalProposed{Target: "main", RemovalID: events.RemovalID("main", "public", "contacts_email_idx", def),
		Schema: "public", Table: "contacts", IndexName: "contacts_email_idx", Definition: def,
		Index:  events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"email"}},
		Reason: events.RemovalUnused, FormulaVersion: "v2", ObservedAt: at}
}

// withContactsEmailIndex creates the index removal() proposes, so that the
// re-check against the catalog finds its reason still holding.
func (d *direct) withContactsEmailIndex(t *testing.T) *direct {
	t.Helper()
	d.db.Exec(t, "create table if not exists public.contacts (id bigint primary key, email text)",
		"create index if not exists contacts_email_idx on public.contacts (email)")
	return d
}

func (d *direct) handleRemoval(t *testing.T, r *events.IndexRemovalProposed) {
	t.Helper()
	env, err := events.Wrap(r, "scorer", "", time.Now())
	require.NoError(t, err)
	_, err = d.g.HandleRemoval(d.ctx, env, r)
	require.NoError(t, err)
}

func TestRemovalModeIsSeparateAndAdvisoryByDefault(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	// Creation in apply mode does not make removal apply.
	d := newDirect(t, nil).withContactsEmailIndex(t)
	d.handleRemoval(t, removal(t0))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where action = 'removal' and outcome = 'proposed' and reason = 'advisory_mode'"))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.removal_proposals where state = 'proposed'"))
	require.Equal(t, 0, d.count(t, "select count(*) from indexpilot.removals"))

	a := newDirect(t, func(c *config.Config) { c.Features.IndexRemoval.Mode = config.ModeApply }).withContactsEmailIndex(t)
	a.bp.Apply(bypass.Switch{Level: bypass.LevelFeature, Name: config.FeatureIndexRemoval, Disabled: true, ChangeID: 1, Reason: "audit"})
	a.handleRemoval(t, removal(t0))
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.mutation_log where action = 'removal' and outcome = 'deferred' and reason = 'bypass_feature'"))
	require.Equal(t, 0, a.count(t, "select count(*) from indexpilot.removals"))
	a.bp.Apply(bypass.Switch{Level: bypass.LevelFeature, Name: config.FeatureIndexRemoval, Disabled: false, ChangeID: 2})
	// The deferred proposal is decided again by the recheck once the
	// bypass is lifted; redelivery and later proposals change nothing.
	_, err := a.g.Recheck(a.ctx)
	require.NoError(t, err)
	a.handleRemoval(t, removal(t0))
	a.handleRemoval(t, removal(t0.Add(2*time.Hour)))
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removals where state = 'pending' and index_name = 'contacts_email_idx'"))
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.mutation_log
 where action = 'removal' and outcome = 'deferred->approved' and parent_id is not null`))
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removal_proposals where state = 'approved'"))
}

// duplicatePair is a gatekeeper in removal apply mode over contacts with
// two indexes of one definition, and the proposal to remove the second as
// a duplicate of the first.
func duplicatePair(t *testing.T) (*direct, *events.IndexRemovalProposed) {
	t.Helper()
	a := newDirect(t, func(c *config.Config) { c.Features.IndexRemoval.Mode = config.ModeApply })
	a.db.Exec(t, "create table public.contacts (id bigint primary key, email text)",
		"create index contacts_email_a on public.contacts (email)", "create index contacts_email_b on public.contacts (email)")
	dup := removal(time.Now())
	dup.IndexName, dup.RedundantWith, dup.Reason = "contacts_email_b", "contacts_email_a", events.RemovalDuplicate
	dup.Definition = "CREATE INDEX contacts_email_b ON public.contacts USING btree (email)"
	dup.RemovalID = events.RemovalID("main", "public", dup.IndexName, dup.Definition)
	return a, dup
}

// A removal is re-checked against the catalog right before it is approved:
// a duplicate whose twin someone else dropped meanwhile is superseded with
// the reason, never queued; an advisory proposal whose INVALID index was
// rebuilt valid is superseded by the recheck loop.
func TestStaleRemovalIsSupersededNotApproved(t *testing.T) {
	a, dup := duplicatePair(t)
	// The gatekeeper is paused: the proposal waits, deferred.
	a.bp.Apply(bypass.Switch{Level: bypass.LevelFeature, Name: config.FeatureIndexRemoval, Disabled: true, ChangeID: 1, Reason: "audit"})
	a.handleRemoval(t, dup)
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removal_proposals where state = 'deferred'"))

	a.db.Exec(t, "drop index public.contacts_email_a") // by someone else
	a.bp.Apply(bypass.Switch{Level: bypass.LevelFeature, Name: config.FeatureIndexRemoval, Disabled: false, ChangeID: 2})
	_, err := a.g.Recheck(a.ctx)
	require.NoError(t, err)
	require.Equal(t, 0, a.count(t, "select count(*) from indexpilot.removals"), "a stale removal was queued")
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.removal_proposals
 where state = 'superseded' and reason = 'superseded' and detail = 'its twin contacts_email_a no longer exists'`))
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.mutation_log
 where action = 'removal' and outcome = 'deferred->superseded' and parent_id is not null`))

	// Advisory mode: the proposal of an INVALID index is superseded once
	// the index is valid again.
	d := newDirect(t, nil)
	d.db.Exec(t, "create table public.contacts (id bigint primary key, email text)",
		"insert into public.contacts values (1, 'a'), (2, 'a')")
	_, err = d.db.Pool.Exec(d.ctx, "create unique index concurrently contacts_email_uq on public.contacts (email)")
	require.Error(t, err)
	inv := removal(time.Now())
	inv.IndexName, inv.Reason = "contacts_email_uq", events.RemovalInvalid
	inv.Definition = "CREATE UNIQUE INDEX contacts_email_uq ON public.contacts USING btree (email)"
	inv.RemovalID = events.RemovalID("main", "public", inv.IndexName, inv.Definition)
	d.handleRemoval(t, inv)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.removal_proposals where state = 'proposed'"))
	d.db.Exec(t, "delete from public.contacts where id = 2", "reindex index public.contacts_email_uq")
	_, err = d.g.Recheck(d.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, d.count(t, `select count(*) from indexpilot.removal_proposals
 where state = 'superseded' and detail = 'the index is valid now'`))
}

// A removal the executor superseded (its reason gone at the DROP) or
// failed is queued again when a new proposal of the same index arrives and
// holds: before, the proposal was marked approved while its removals row
// stayed superseded, so nothing was ever dropped (found by the chaos
// suite, where an interrupted drop left the duplicate INVALID and its
// removal superseded).
func TestRemovalEndedWithoutADropIsQueuedAgainByANewProposal(t *testing.T) {
	a, dup := duplicatePair(t)
	a.handleRemoval(t, dup)
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removals where state = 'pending' and reason = 'duplicate'"))

	// The executor's re-check found it stale and superseded it, as its
	// removal code does.
	a.db.Exec(t, `update indexpilot.removals set state = 'superseded', attempts = 2, last_error = 'stale' where index_name = 'contacts_email_b'`,
		`update indexpilot.removal_proposals set state = 'superseded', reason = 'superseded' where index_name = 'contacts_email_b'`)
	a.handleRemoval(t, dup) // the same proposal again: one effect
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removals where state = 'superseded'"))

	// A new proposal of the same index (another reason) that holds.
	a.db.Exec(t, "create index contacts_email_id on public.contacts (email, id)")
	prefix := *dup
	prefix.Reason, prefix.RedundantWith = events.RemovalPrefix, "contacts_email_id"
	a.handleRemoval(t, &prefix)
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.removals
 where index_name = 'contacts_email_b' and state = 'pending' and reason = 'prefix_redundant' and attempts = 0 and last_error is null`))
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removal_proposals where state = 'approved'"))
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.mutation_log
 where action = 'removal' and outcome = 'superseded->approved'`))

	// A failed removal (its proposal stays approved) likewise.
	a.db.Exec(t, `update indexpilot.removals set state = 'failed' where index_name = 'contacts_email_b'`)
	a.handleRemoval(t, &prefix) // redelivered: nothing new
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removals where state = 'failed'"))
	again := prefix
	again.FormulaVersion = "v3"
	a.handleRemoval(t, &again)
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removals where state = 'pending'"))
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.mutation_log
 where action = 'removal' and outcome = 'approved->approved'`))
}

// A removal of an index a build is creating waits (deferred,
// build_in_progress) and is approved only after the build is over.
func TestRemovalOfAnIndexBeingBuiltWaits(t *testing.T) {
	a := newDirect(t, func(c *config.Config) { c.Features.IndexRemoval.Mode = config.ModeApply }).withContactsEmailIndex(t)
	spec := events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"email"}}
	recID, cand := events.RecommendationID("main", spec), events.CandidateID("main", spec, "v1")
	_, err := a.db.Pool.Exec(a.ctx, `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, 'main', $2, 'public', 'contacts', $3, 'contacts_email_idx', 'approved', 'apply_mode', $4, $4, 'v1', 90, 1000, '{}')`,
		recID, spec.Key(), spec, cand)
	require.NoError(t, err)
	_, err = a.db.Pool.Exec(a.ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, state)
values ($1, 'main', $2, 'contacts_email_idx', $3, $3, 'running')`, recID, spec, cand)
	require.NoError(t, err)
	a.handleRemoval(t, removal(time.Now()))
	require.Equal(t, 1, a.count(t, `select count(*) from indexpilot.removal_proposals
 where state = 'deferred' and reason = 'build_in_progress'`))
	require.Equal(t, 0, a.count(t, "select count(*) from indexpilot.removals"))

	a.db.Exec(t, "update indexpilot.builds set state = 'done'")
	_, err = a.g.Recheck(a.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removals where index_name = 'contacts_email_idx'"))
	require.Equal(t, 1, a.count(t, "select count(*) from indexpilot.removal_proposals where state = 'approved'"))
}

// TestForecastCandidate: in advisory mode a candidate for a recurring peak
// is proposed with the forecast as its detail; in apply mode it is held
// until its build-from time, and an operator's approval builds at once.
func TestForecastCandidate(t *testing.T) {
	// The stage clock is the real one here: the peak is three days ahead,
	// at 14:00 UTC (build by 13:20 the same day).
	day := time.Now().UTC().AddDate(0, 0, 3)
	peak := time.Date(day.Year(), day.Month(), day.Day(), 14, 0, 0, 0, time.UTC)
	withForecast := func() *events.IndexCandidateScored {
		c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
		c.Forecast = &events.Forecast{QueryID: "42", Period: "weekly", Phase: "Mon 02:00 UTC", Amplitude: 168, Confidence: 1,
			Periods: 5, PeakAt: peak, PeakEnd: peak.Add(time.Hour), BuildSeconds: 600,
			BuildBy: peak.Add(-40 * time.Minute), BuildFrom: peak.Add(-40*time.Minute - 6*time.Hour)}
		return c
	}
	adv := newDirect(t, func(c *config.Config) { c.Features.AutoIndexer.Mode = config.ModeAdvisory })
	c := withForecast()
	require.Equal(t, []events.Verdict{events.VerdictAdvised}, verdicts(adv.handle(t, c)))
	var detail string
	require.NoError(t, adv.db.Pool.QueryRow(adv.ctx, "select detail from indexpilot.recommendations").Scan(&detail))
	require.Equal(t, c.Forecast.Summary(), detail)
	require.Equal(t, "weekly peak expected "+peak.Format("Mon 15:04")+" UTC, build by "+peak.Add(-40*time.Minute).Format("15:04")+
		" (confidence 1.00 over 5 weeks)", detail)

	app := newDirect(t, nil)
	c = withForecast()
	require.Equal(t, []events.Verdict{events.VerdictDeferred}, verdicts(app.handle(t, c)))
	state, reason := app.rec(t, c)
	require.Equal(t, []string{"deferred", string(events.ReasonForecastHold)}, []string{state, reason})
	_, err := gatekeeper.Approve(app.ctx, app.db.Pool, events.RecommendationID(c.Target, c.Index)[:8], "alice", "needed today", time.Now())
	require.NoError(t, err)
	_, err = app.g.Recheck(app.ctx)
	require.NoError(t, err)
	state, reason = app.rec(t, c)
	require.Equal(t, []string{"approved", string(events.ReasonOperatorApproved)}, []string{state, reason})
}
