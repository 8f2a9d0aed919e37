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
// xactTxns transactions of four write statements each. Its samples carry
// the server's transaction counter; a second scorer, on an identical
// database, gets the same samples without it (a collector that does not
// read it). Both estimate the same WAL for the owner index. Without the
// counter it is divided by the 4 × xactTxns statement calls, and the
// evidence says so; with it, by the write transactions the counter saw
// (xactTxns, plus any other database's write transactions meanwhile, at
// most the calls), and the evidence says so.
//
// Not parallel: the counter is server-wide, and the package's parallel
// tests would write in between. Other packages' tests may still write
// meanwhile: the counter's increase is then larger, and the figure follows
// it (up to the calls, where the statements are the basis again).
func TestWALPerWriteTransactionFromTheServerCounter(t *testing.T) {
	// ANALYZE reads every row (300 × the statistics target ≥ 50,000), so
	// both databases get the same statistics, hence the same size
	// estimates.
	whole := []string{"alter table public.tickets alter column owner set statistics 1000", "analyze public.tickets"}
	db, s := ticketsSetup(t, "with (fillfactor = 90)")
	db.Exec(t, whole...)
	samples := xactWorkload(t, db, true)
	perTxn := scoreXactWorkload(t, s, samples)

	dbS, sS := ticketsSetup(t, "with (fillfactor = 90)")
	dbS.Exec(t, whole...)
	var stripped [2]*events.TableStatObserved
	for i, ts := range samples {
		c := *ts
		c.ServerXactNext = nil
		stripped[i] = &c
	}
	perStatement := scoreXactWorkload(t, sS, stripped)
	require.Equal(t, events.WALPerWriteStatement, perStatement.WALBasis)

	delta := float64(*samples[1].ServerXactNext - *samples[0].ServerXactNext)
	require.GreaterOrEqual(t, delta, float64(xactTxns), "each transaction of the workload took an xid")
	t.Logf("server write transactions %.0f for %d workload transactions; WAL per write txn %.2f (images %.2f, index %d B), per write statement %.2f (images %.2f, index %d B)",
		delta, xactTxns, perTxn.WALBytesPerWriteTxn, perTxn.WALImageBytesPerWriteTxn, perTxn.EstimatedSizeBytes,
		perStatement.WALBytesPerWriteTxn, perStatement.WALImageBytesPerWriteTxn, perStatement.EstimatedSizeBytes)
	calls := float64(4 * xactTxns)
	txns, basis := delta, events.WALPerWriteTxn
	if delta > calls {
		txns, basis = calls, events.WALPerWriteStatement
	}
	require.Equal(t, basis, perTxn.WALBasis)
	require.InEpsilon(t, perStatement.WALBytesPerWriteTxn*calls, perTxn.WALBytesPerWriteTxn*txns, 0.001,
		"the same estimated WAL over %.0f write transactions (server counter), not over %.0f statements", txns, calls)
}
