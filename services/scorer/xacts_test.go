package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// xactTxns is the number of write transactions the tests below run, each
// of three UPDATEs and one INSERT.
const xactTxns = 200

// xactWorkload runs xactTxns transactions of three UPDATEs of status and
// one INSERT on db's public.tickets, on one connection, and returns the
// table's samples before and after it, read as the collector reads them:
// the real counters of pg_stat_user_tables and, when withCounter, the
// server's next transaction id. The samples are observed at end-1h and
// end-30m.
func xactWorkload(t *testing.T, db *pgtest.Database, withCounter bool) [2]*events.TableStatObserved {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	sample := func(i int, minInserts int64) *events.TableStatObserved {
		ts := &events.TableStatObserved{Target: "main", Schema: "public", Table: "tickets", LiveRows: 50000,
			ObservedAt: end.Add(-time.Hour + time.Duration(i)*30*time.Minute)}
		pgtest.FlushStats(t, conn)
		require.Eventually(t, func() bool {
			require.NoError(t, db.Pool.QueryRow(ctx, `select n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
  from pg_stat_user_tables where relname = 'tickets'`).Scan(&ts.Inserts, &ts.Updates, &ts.HotUpdates, &ts.Deletes))
			return ts.Inserts >= minInserts
		}, 15*time.Second, 50*time.Millisecond, "the inserts into tickets never reached %d", minInserts)
		if withCounter {
			var next int64
			require.NoError(t, conn.QueryRow(ctx, "select pg_snapshot_xmax(pg_current_snapshot())::text::int8").Scan(&next))
			ts.ServerXactNext = &next
		}
		return ts
	}
	before := sample(0, 50000)
	for i := range xactTxns {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		for k := range 3 {
			_, err = tx.Exec(ctx, "update public.tickets set status = $1, closed_at = now() where id = $2", k, 1+(i*3+k)*7%50000)
			require.NoError(t, err)
		}
		_, err = tx.Exec(ctx, "insert into public.tickets (id, owner, status, body) values ($1, $2, 0, 'new')", 100000+i, i%2000)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	}
	after := sample(1, before.Inserts+xactTxns)
	return [2]*events.TableStatObserved{before, after}
}

// scoreXactWorkload feeds the statements of xactWorkload (their calls) and
// samples to s and returns the owner candidate, the one the reads want:
// its only write cost is its entries.
func scoreXactWorkload(t *testing.T, s *scorer.Scorer, samples [2]*events.TableStatObserved) *events.IndexCandidateScored {
	t.Helper()
	feed(t, s,
		querystat("1", "SELECT id FROM tickets WHERE owner = $1", 5000, end),
		querystat("3", "UPDATE tickets SET status = $1, closed_at = now() WHERE id = $2", 3*xactTxns, end),
		querystat("4", "INSERT INTO tickets (id, owner, status, body) VALUES ($1, $2, $3, $4)", xactTxns, end),
	)
	for _, ts := range samples {
		feedTable(t, s, ts)
	}
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	var owner *events.IndexCandidateScored
	r.EachCandidate(func(c *events.IndexCandidateScored, _ string) {
		if len(c.Index.Columns) == 1 && c.Index.Columns[0] == "owner" {
			owner = c
		}
	})
	require.NotNil(t, owner, "an owner index is priced: chosen %v, rejected %v", r.Chosen, r.Rejected)
	require.Greater(t, owner.WriteOverheadCost, 0.0, "the inserts write entries in the owner index")
	return owner
}

// TestWALPerWriteTransactionFromTheServerCounter: the workload ran
// xactTxns transactions of four write statements each. With the server's
// transaction counter in the samples, WAL per write transaction divides
// the estimated WAL by the write transactions the counter saw (about
// xactTxns), not by the 4 × xactTxns statement calls, and says so.
//
// Not parallel: the counter is server-wide, and the package's parallel
// tests would write in between.
func TestWALPerWriteTransactionFromTheServerCounter(t *testing.T) {
	db, s := ticketsSetup(t, "with (fillfactor = 90)")
	samples := xactWorkload(t, db, true)
	owner := scoreXactWorkload(t, s, samples)

	delta := float64(*samples[1].ServerXactNext - *samples[0].ServerXactNext)
	require.GreaterOrEqual(t, delta, float64(xactTxns), "each transaction of the workload took an xid")
	require.Less(t, delta, float64(2*xactTxns), "the server ran few other write transactions meanwhile")
	t.Logf("server write transactions %.0f for %d workload transactions", delta, xactTxns)
	wal := owner.WriteOverheadCost / scorer.WALCostPerByte
	require.InEpsilon(t, wal/delta, owner.WALBytesPerWriteTxn, 0.01,
		"estimated WAL %.0f bytes over %.0f write transactions (server counter), not over %d statements", wal, delta, 4*xactTxns)
	require.Equal(t, events.WALPerWriteTxn, owner.WALBasis)
}

// TestWALPerWriteStatementWithoutTheCounter: the same workload with
// samples from a collector that does not read the counter: WAL is divided
// by the write statements' calls, as before, and the evidence says so.
func TestWALPerWriteStatementWithoutTheCounter(t *testing.T) {
	db, s := ticketsSetup(t, "with (fillfactor = 90)")
	owner := scoreXactWorkload(t, s, xactWorkload(t, db, false))

	wal := owner.WriteOverheadCost / scorer.WALCostPerByte
	require.InEpsilon(t, wal/(4*xactTxns), owner.WALBytesPerWriteTxn, 0.01,
		"estimated WAL %.0f bytes over the %d write statements' calls", wal, 4*xactTxns)
	require.Equal(t, events.WALPerWriteStatement, owner.WALBasis)
}
