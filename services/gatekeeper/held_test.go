package gatekeeper_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// TestHeldCandidateIsListedAndCanBeApproved: a candidate the scorer's
// storage budget held back becomes a recommendation in state held, with
// the reason and the numbers, builds nothing, and is approved (built in
// apply mode) on an operator's word; a newer run that chooses it reopens it.
func TestHeldCandidateIsListedAndCanBeApproved(t *testing.T) {
	d := newDirect(t, nil)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := candidate(97, at)
	c.HeldReason = string(events.ReasonHeldStorageBudget)
	c.HeldDetail = "estimated size 6.0 MiB does not fit the storage budget: 0 B of 5.0 MiB already used by this run's choices"
	require.Equal(t, []events.Verdict{events.VerdictHeld}, verdicts(d.handle(t, c)))
	state, reason := d.rec(t, c)
	require.Equal(t, "held", state)
	require.Equal(t, "storage_budget", reason)
	var detail string
	require.NoError(t, d.db.Pool.QueryRow(d.ctx, "select detail from indexpilot.recommendations where id = $1",
		events.RecommendationID(c.Target, c.Index)).Scan(&detail))
	require.Equal(t, c.HeldDetail, detail, "the scorer's sentence, as recorded")
	require.Zero(t, d.count(t, "select count(*) from indexpilot.builds"))
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where outcome = 'held' and reason = 'storage_budget'"))

	// Approve it anyway: the gatekeeper's own rules then apply.
	id := events.RecommendationID(c.Target, c.Index)
	_, err := gatekeeper.Approve(d.ctx, d.db.Pool, id[:8], "alice", "worth 6 MB", time.Now())
	require.NoError(t, err)
	_, err = d.g.Recheck(d.ctx)
	require.NoError(t, err)
	state, reason = d.rec(t, c)
	require.Equal(t, "approved", state)
	require.Equal(t, string(events.ReasonOperatorApproved), reason)

	// Another held one is reopened by a newer run that chooses it.
	other := candidate(60, at)
	other.Index.Columns = []string{"status"}
	other.CandidateID = events.CandidateID("main", other.Index, "v1")
	other.HeldReason = string(events.ReasonMaxNewIndexes)
	d.handle(t, other)
	state, _ = d.rec(t, other)
	require.Equal(t, "held", state)
	newer := *other
	newer.WindowEnd, newer.HeldReason, newer.HeldDetail = at.Add(time.Hour), "", ""
	require.Equal(t, []events.Verdict{events.VerdictApproved}, verdicts(d.handle(t, &newer)))
}

// TestPartialIndexOnAnUpdatedColumnIsSuperseded: a later run's full index
// on the same keys supersedes an open partial recommendation whose
// predicate column the workload updates — and only then.
func TestPartialIndexOnAnUpdatedColumnIsSuperseded(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Features.AutoIndexer.Mode = config.ModeAdvisory })
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	mk := func(pred string, cols []string, updated []string, when time.Time) *events.IndexCandidateScored {
		c := candidate(90, when)
		c.Index.Columns, c.Index.Predicate, c.UpdatedColumns = cols, pred, updated
		c.CandidateID = events.CandidateID("main", c.Index, "v1")
		return c
	}
	partial := mk("(closed_at IS NULL)", []string{"tenant_id"}, nil, at)
	d.handle(t, partial)
	// A full index on other keys, or with nothing known to be updated,
	// leaves it alone.
	d.handle(t, mk("", []string{"tenant_id"}, nil, at.Add(time.Minute)))
	state, _ := d.rec(t, partial)
	require.Equal(t, "proposed", state)
	d.handle(t, mk("", []string{"email"}, []string{"closed_at"}, at.Add(2*time.Minute)))
	state, _ = d.rec(t, partial)
	require.Equal(t, "proposed", state)
	// The full one on the same leading keys, closed_at updated.
	d.handle(t, mk("", []string{"tenant_id", "email"}, []string{"closed_at"}, at.Add(3*time.Minute)))
	state, reason := d.rec(t, partial)
	require.Equal(t, "superseded", state)
	require.Equal(t, string(events.ReasonSuperseded), reason)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.recommendations where detail like '%stop being HOT%'"))
}

// TestScorerRejectionIsListed: a candidate the scorer rejected for its
// write cost is recorded as a rejected recommendation with the sentence
// and numbers (a rule's rejection on first sight is not), and a newer run
// that chooses it reopens it.
func TestScorerRejectionIsListed(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Features.AutoIndexer.Mode = config.ModeAdvisory })
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := candidate(90, at)
	c.RejectedReason = string(events.ReasonWriteOverhead)
	c.RejectedDetail = "its read saving 100 is below its write cost 900 (74.0 WAL bytes per write transaction; 20000 updates would stop being HOT)"
	require.Equal(t, []events.Verdict{events.VerdictRejected}, verdicts(d.handle(t, c)))
	state, reason := d.rec(t, c)
	require.Equal(t, "rejected", state)
	require.Equal(t, string(events.ReasonWriteOverhead), reason)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.recommendations where detail like '%WAL bytes per write transaction%'"))
	newer := *c
	newer.WindowEnd, newer.RejectedReason, newer.RejectedDetail = at.Add(time.Hour), "", ""
	require.Equal(t, []events.Verdict{events.VerdictAdvised}, verdicts(d.handle(t, &newer)))
	state, _ = d.rec(t, c)
	require.Equal(t, "proposed", state)
}

// TestOtherChoiceForTheSameStatementsSupersedes: the scorer chose t(email)
// for a statement in one run and t(tenant_id, email) in the next (two
// alternatives, equally good): the newer one closes the older, which the
// scorer no longer emits and which would otherwise stay proposed for
// good. A candidate serving only some of its statements, or at a higher
// plan cost, leaves it open.
func TestOtherChoiceForTheSameStatementsSupersedes(t *testing.T) {
	d := newDirect(t, func(c *config.Config) { c.Features.AutoIndexer.Mode = config.ModeAdvisory })
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	mk := func(cols []string, when time.Time, stmts ...events.StatementEvidence) *events.IndexCandidateScored {
		c := candidate(90, when)
		c.Index.Columns, c.Statements = cols, stmts
		c.CandidateID = events.CandidateID("main", c.Index, "v1")
		return c
	}
	s1 := events.StatementEvidence{QueryID: "1", Query: "select 1", Calls: 10, CostBefore: 1221, CostAfter: 8.06, ImprovementPct: 99.3}
	s2 := events.StatementEvidence{QueryID: "2", Query: "select 2", Calls: 10, CostBefore: 900, CostAfter: 12, ImprovementPct: 98.6}
	email := mk([]string{"email"}, at, s1, s2)
	d.handle(t, email)
	// Only one of its statements: open.
	d.handle(t, mk([]string{"status", "email"}, at.Add(time.Minute), s1))
	state, _ := d.rec(t, email)
	require.Equal(t, "proposed", state)
	// Both, but one of them at a higher cost: open.
	worse := s2
	worse.CostAfter = 30
	d.handle(t, mk([]string{"created_at", "email"}, at.Add(2*time.Minute), s1, worse))
	state, _ = d.rec(t, email)
	require.Equal(t, "proposed", state)
	// Both, as well: superseded, and the row says by what.
	other := mk([]string{"tenant_id", "email"}, at.Add(3*time.Minute), s1, s2)
	d.handle(t, other)
	state, reason := d.rec(t, email)
	require.Equal(t, "superseded", state)
	require.Equal(t, string(events.ReasonSuperseded), reason)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.recommendations where id = $1 and detail like 'the scorer now chooses recommendation%'",
		events.RecommendationID("main", email.Index)))
	state, _ = d.rec(t, other)
	require.Equal(t, "proposed", state)
}
