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
	d := newDirect(t, nil)
	d.handleRemoval(t, removal(t0))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where action = 'removal' and outcome = 'proposed' and reason = 'advisory_mode'"))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.removal_proposals where state = 'proposed'"))
	require.Equal(t, 0, d.count(t, "select count(*) from indexpilot.removals"))

	a := newDirect(t, func(c *config.Config) { c.Features.IndexRemoval.Mode = config.ModeApply })
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
