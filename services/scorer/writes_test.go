package scorer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// ticketsScorer is a scorer on a database with an analysed 50 000-row
// table public.tickets (id, owner, status, closed_at, body) created with
// the given storage clause, and a storage budget that holds every
// candidate.
func ticketsScorer(t *testing.T, with string) *scorer.Scorer {
	t.Helper()
	_, s := ticketsSetup(t, with)
	return s
}

// ticketsSetup is ticketsScorer with its database.
func ticketsSetup(t *testing.T, with string) (*pgtest.Database, *scorer.Scorer) {
	t.Helper()
	db, d := setup(t)
	db.Exec(t,
		`create table public.tickets (id bigint primary key, owner int not null, status int not null, closed_at timestamptz, body text) `+with,
		`insert into public.tickets select g, g % 2000, g % 50, null, md5(g::text) from generate_series(1, 50000) g`,
		`analyze public.tickets`,
	)
	d.Config.Scorer.StorageBudgetMB = 1024
	s, err := scorer.New(d)
	require.NoError(t, err)
	return db, s
}

// TestHOTAwareWriteCharge: the UPDATEs set status and closed_at and are
// HOT today. An index on owner (never updated) is chosen; one on status
// would make those updates non-HOT, costs far more WAL per write
// transaction than it saves in reads, and is listed as rejected with both
// numbers.
func TestHOTAwareWriteCharge(t *testing.T) {
	s := ticketsScorer(t, "with (fillfactor = 90)")
	feed(t, s,
		querystat("1", "SELECT id FROM tickets WHERE owner = $1", 50, end),
		querystat("2", "SELECT id FROM tickets WHERE status = $1 AND owner > $2", 50, end),
		querystat("3", "UPDATE tickets SET status = $1, closed_at = $2 WHERE id = $3", 100000, end),
		querystat("4", "INSERT INTO tickets (id, owner, status, body) VALUES ($1, $2, $3, $4)", 1000, end),
	)
	for i, c := range [][3]int64{{0, 0, 0}, {1000, 100000, 95000}} {
		feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "tickets",
			ObservedAt: end.Add(-time.Hour + time.Duration(i)*30*time.Minute), Inserts: c[0], Updates: c[1], HotUpdates: c[2], LiveRows: 50000})
	}
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	byCols := map[string]*events.IndexCandidateScored{}
	for _, c := range append(append([]*events.IndexCandidateScored{}, r.Chosen...), r.Rejected...) {
		byCols[c.Index.Table+"("+strings.Join(c.Index.Columns, ",")+")"] = c
	}
	owner := byCols["tickets(owner)"]
	require.NotNil(t, owner, "owner is chosen: %v", byCols)
	require.Contains(t, r.Chosen, owner)
	require.Zero(t, owner.HotUpdatesLost)
	require.Greater(t, owner.WALBytesPerWriteTxn, 0.0, "it still costs an entry per insert and non-HOT update")

	var status *events.IndexCandidateScored
	for k, c := range byCols {
		if c.Index.Columns[0] == "status" {
			status = c
			require.NotContains(t, r.Chosen, c, k)
		}
	}
	require.NotNil(t, status, "a status index is priced and listed as rejected: %v", byCols)
	require.Greater(t, status.HotUpdatesLost, 90000.0, "the HOT updates it would stop")
	// Its records alone cost over ten times the owner index's. Both
	// indexes are small and written all over, so every checkpoint cycle
	// dirties (and logs the full image of) each of their leaves: the
	// images cost them about the same, and status still several times
	// owner in all.
	records := func(c *events.IndexCandidateScored) float64 {
		return c.WALBytesPerWriteTxn - c.WALImageBytesPerWriteTxn
	}
	require.Greater(t, records(status), 10*records(owner))
	require.Positive(t, owner.WALImageBytesPerWriteTxn, "inserts and non-HOT updates dirty the owner index's leaves")
	require.Positive(t, status.WALImageBytesPerWriteTxn)
	require.Greater(t, status.WALBytesPerWriteTxn, 5*owner.WALBytesPerWriteTxn)
	require.Greater(t, status.BenefitCost, 0.0, "its read saving is shown next to its write cost")
	require.Greater(t, status.WriteOverheadCost, status.BenefitCost)
	require.Equal(t, string(events.ReasonWriteOverhead), status.RejectedReason)
	require.Contains(t, status.RejectedDetail, "WAL bytes per write statement (no transaction count)", "no server counter in the samples")
	require.Contains(t, r.Candidates(), status, "published, so the gatekeeper lists it with its numbers")
}

// TestRedundancyOnAWrittenTable: the app sets closed_at, so a partial
// index WHERE closed_at IS NULL costs HOT updates. Next to a full index on
// the same keys it is never chosen, and once built it is proposed for
// removal; t(a) next to t(a, b) likewise.
func TestRedundancyOnAWrittenTable(t *testing.T) {
	db, d := setup(t)
	db.Exec(t,
		`create table public.tickets (id bigint primary key, owner int not null, status int not null, closed_at timestamptz, body text)`,
		`insert into public.tickets select g, g % 2000, g % 50, case when g % 10 = 0 then null else now() end, md5(g::text)
		   from generate_series(1, 50000) g`,
		`analyze public.tickets`,
	)
	d.Config.Scorer.StorageBudgetMB = 1024
	s, err := scorer.New(d)
	require.NoError(t, err)
	reads := []*events.QueryStatObserved{
		querystat("1", "SELECT id FROM tickets WHERE owner = $1 AND closed_at IS NULL", 4000, end),
		querystat("2", "SELECT count(*) FROM tickets WHERE status = $1 AND closed_at IS NULL", 4000, end),
		querystat("3", "SELECT id FROM tickets WHERE owner = $1", 400, end),
		querystat("5", "SELECT id FROM tickets WHERE owner = $1 AND status = $2", 400, end),
	}
	// Read-only, partial indexes are worth keeping next to full ones.
	feed(t, s, reads...)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	partial := false
	for _, c := range r.Chosen {
		partial = partial || c.Index.Predicate != ""
	}
	require.True(t, partial, "without updates of closed_at a partial index is chosen: %v", r.Chosen)

	feed(t, s, querystat("4", "UPDATE tickets SET closed_at = $1 WHERE id = $2", 50, end))
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.NotEmpty(t, r.Chosen)
	for _, c := range r.Chosen {
		require.Empty(t, c.Index.Predicate, "no partial index on an updated predicate column next to a full one: %v", c.Index)
		require.Equal(t, []string{"closed_at"}, c.UpdatedColumns)
		for _, o := range r.Chosen {
			require.False(t, o != c && len(o.Index.Columns) < len(c.Index.Columns) && o.Index.Columns[0] == c.Index.Columns[0],
				"%v next to %v", o.Index, c.Index)
		}
	}

	// Built: the partial one and the prefix are proposed for removal.
	db.Exec(t,
		`create index ip_tickets_owner_open on public.tickets (owner) where closed_at is null`,
		`create index ip_tickets_owner on public.tickets (owner)`,
		`create index ip_tickets_owner_status on public.tickets (owner, status)`,
	)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	got := map[string]*events.IndexRemovalProposed{}
	for _, rm := range r.Removals {
		got[rm.IndexName] = rm
	}
	require.Contains(t, got, "ip_tickets_owner_open")
	require.Equal(t, events.RemovalPrefix, got["ip_tickets_owner_open"].Reason)
	require.Contains(t, got, "ip_tickets_owner")
	require.Equal(t, "ip_tickets_owner_status", got["ip_tickets_owner"].RedundantWith)
	require.NotContains(t, got, "ip_tickets_owner_status")
}

// TestUpdatesToANewPageBoundTheHOTLoss: the collector's newpage_updates
// (PostgreSQL 16+) travels through the stored samples to the write model.
// Half of the table's 200 000 updates in the window went to a new page;
// the UPDATE of status wrote 100 000 rows, so an index on status can stop
// at most 50 000 HOT updates, where the statement mix alone (two rows a
// call, half of them HOT) would say 100 000.
func TestUpdatesToANewPageBoundTheHOTLoss(t *testing.T) {
	s := ticketsScorer(t, "")
	feed(t, s,
		querystat("2", "SELECT id FROM tickets WHERE status = $1 AND owner > $2", 50, end),
		querystat("3", "UPDATE tickets SET status = $1, closed_at = $2 WHERE id = $3", 100000, end),
	)
	for i, c := range [][3]int64{{0, 0, 0}, {200000, 100000, 100000}} {
		newPage := c[2]
		feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "tickets",
			ObservedAt: end.Add(-time.Hour + time.Duration(i)*30*time.Minute), Updates: c[0], HotUpdates: c[1],
			NewPageUpdates: &newPage, LiveRows: 50000})
	}
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	var status *events.IndexCandidateScored
	for _, c := range append(append([]*events.IndexCandidateScored{}, r.Chosen...), r.Rejected...) {
		if c.Index.Columns[0] == "status" {
			status = c
		}
	}
	require.NotNil(t, status, "a status index is priced: chosen %v, rejected %v", r.Chosen, r.Rejected)
	require.InDelta(t, 50000, status.HotUpdatesLost, 1e-6, "room for half of the UPDATE of status's 100 000 rows")
}
