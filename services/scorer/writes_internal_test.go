package scorer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

func TestParseWrite(t *testing.T) {
	for q, want := range map[string]struct {
		kind  sqlparse.Kind
		table string
		set   []string
	}{
		"UPDATE app.t SET a = $1, b = b + $2 WHERE id = $3":           {sqlparse.KindUpdate, "app.t", []string{"a", "b"}},
		"UPDATE t SET (c, d) = ($1, $2), c = $3 WHERE id = $4":        {sqlparse.KindUpdate, "t", []string{"c", "d"}},
		"UPDATE t SET tags[1] = $1 FROM u WHERE t.id = u.id":          {sqlparse.KindUpdate, "t", []string{"tags"}},
		"INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO NOTHING": {kindInsert, "t", nil},
		"DELETE FROM s.t WHERE id = $1":                               {sqlparse.KindDelete, "s.t", nil},
	} {
		kind, ref, set, ok := parseWrite(q)
		require.True(t, ok, q)
		require.Equal(t, want.kind, kind, q)
		require.Equal(t, want.table, ref.String(), q)
		require.Equal(t, want.set, set, q)
	}
	for _, q := range []string{"SELECT 1", "not sql", "UPDATE t SET a = 1; UPDATE t SET b = 2"} {
		_, _, _, ok := parseWrite(q)
		require.False(t, ok, q)
	}
}

// TestWALChargeHOT: an index on a column the UPDATEs set costs the HOT
// updates it stops (with every existing index's entry), one on a column
// they never set only its own entries on the writes that already maintain
// indexes.
func TestWALChargeHOT(t *testing.T) {
	ti := &tableInfo{width: map[string]float64{"id": 8, "a": 4, "b": 4, "closed_at": 8}}
	ti.writes = tableWrites{inserts: 1000, updates: 10000, hotUpdates: 9000, fillFactor: 90,
		indexed: map[string]bool{"id": true}, entries: []float64{20}}
	stmts := []writeStmt{
		{table: "public.t", kind: sqlparse.KindUpdate, set: []string{"b", "closed_at"}, calls: 10000},
		{table: "public.t", kind: kindInsert, calls: 1000},
		{table: "public.u", kind: sqlparse.KindUpdate, set: []string{"a"}, calls: 5000}, // another table
	}
	txns := writeTxns(stmts)
	onA := walCharge(ti, stmts, "public.t", events.IndexSpec{Schema: "public", Table: "t", Columns: []string{"a"}}, 1, txns)
	onB := walCharge(ti, stmts, "public.t", events.IndexSpec{Schema: "public", Table: "t", Columns: []string{"b"}}, 1, txns)
	partial := walCharge(ti, stmts, "public.t", events.IndexSpec{Schema: "public", Table: "t", Columns: []string{"a"},
		Predicate: "(closed_at IS NULL)"}, 0.1, txns)

	require.Zero(t, onA.hotLost, "a is never updated")
	require.InDelta(t, 9000, onB.hotLost, 1e-6, "every HOT update today sets b")
	require.InDelta(t, 9000, partial.hotLost, 1e-6, "the predicate's column is updated: the partial index stops HOT too")
	// a: one entry (54 + 12 + 4 bytes) per insert and per non-HOT update.
	require.InDelta(t, (1000+1000)*70.0/16000, onA.perTxn, 1e-6)
	// b: the 9000 lost updates also write the heap extra and the primary
	// key's entry.
	require.InDelta(t, (9000*(40+74+70)+2000*70.0)/16000, onB.perTxn, 1e-6)
	require.Greater(t, onB.perTxn, 10*onA.perTxn)
	require.Greater(t, partial.perTxn, 5*onA.perTxn, "a small partial index on an updated predicate column is not cheap")
	require.InDelta(t, onB.walBytes*walCostPerByte, onB.cost, 1e-9)

	// No counters: the fill factor decides how many updates are HOT.
	ti.writes.updates, ti.writes.hotUpdates, ti.writes.inserts = 0, 0, 0
	require.InDelta(t, 10000*hotFractionDefault, walCharge(ti, stmts, "public.t", events.IndexSpec{Columns: []string{"b"}}, 1, txns).hotLost, 1e-6)
	ti.writes.fillFactor = 100
	require.InDelta(t, 10000*hotFractionDefaultFull, walCharge(ti, stmts, "public.t", events.IndexSpec{Columns: []string{"b"}}, 1, txns).hotLost, 1e-6)
	// An update that already sets an indexed column is not HOT today:
	// nothing to lose.
	ti.writes.indexed["b"] = true
	require.Zero(t, walCharge(ti, stmts, "public.t", events.IndexSpec{Columns: []string{"closed_at"}}, 1, txns).hotLost)
}

// TestWALChargeRoomOnThePage: the model with and without the updates to a
// new page (PostgreSQL 16+). Half of the table's updates found no room on
// their page. The workload shows an UPDATE of b (5000 calls, one row
// each) and one of the indexed column code; the table's other HOT updates
// come from statements the workload does not show. An index on b can only
// stop the HOT updates of the UPDATE of b, of which space allowed half.
func TestWALChargeRoomOnThePage(t *testing.T) {
	ti := &tableInfo{width: map[string]float64{"id": 8, "b": 4, "code": 4}}
	ti.writes = tableWrites{updates: 20000, hotUpdates: 7500, fillFactor: 100,
		indexed: map[string]bool{"id": true, "code": true}, entries: []float64{20, 16}}
	stmts := []writeStmt{
		{table: "public.t", kind: sqlparse.KindUpdate, set: []string{"b"}, calls: 5000, rows: 5000},
		{table: "public.t", kind: sqlparse.KindUpdate, set: []string{"code"}, calls: 5000, rows: 5000},
	}
	onB := events.IndexSpec{Columns: []string{"b"}}
	charge := func() writeCharge { return walCharge(ti, stmts, "public.t", onB, 1, writeTxns(stmts)) }

	// Without the figure (PostgreSQL 14, 15): the statement mix credits
	// the UPDATE of b with all of today's HOT updates.
	without := charge()
	require.InDelta(t, 7500, without.hotLost, 1e-6, "rows per call 2, HOT share of the eligible calls 0.75")

	// With it: 10000 of the 20000 updates went to a new page. Of the 5000
	// rows the UPDATE of b wrote, at most half were HOT.
	ti.writes.room, ti.writes.roomKnown = 0.5, true
	with := charge()
	require.InDelta(t, 2500, with.hotLost, 1e-6)
	require.Less(t, with.perTxn, without.perTxn)
	// (2500 lost × (heap extra + two existing entries + the new one)
	// + 12500 updates not HOT today × the new entry) per 10000 calls.
	require.InDelta(t, (2500*(40+74+70+70)+12500*70.0)/10000, with.perTxn, 1e-6)

	// The statement does not say its rows: the bound has nothing to
	// multiply, and the mix decides as before.
	stmts[0].rows = 0
	require.InDelta(t, 7500, charge().hotLost, 1e-6)

	// The UPDATE of b writes three rows a call: its 15000 rows found room
	// half the time, which is all of today's HOT updates. Space takes
	// nothing away from what the statement really had.
	stmts[0].rows = 15000
	require.InDelta(t, 7500, charge().hotLost, 1e-6)

	// No update counted in the window (the first polls): the share that
	// found room, since the statistics reset, replaces the fill factor's
	// guess (50 % at fill factor 100).
	stmts[0].rows = 5000
	ti.writes = tableWrites{fillFactor: 100, indexed: map[string]bool{"id": true, "code": true}, entries: []float64{20, 16}}
	require.InDelta(t, 5000*hotFractionDefaultFull, charge().hotLost, 1e-6)
	ti.writes.room, ti.writes.roomKnown = 0.2, true
	require.InDelta(t, 5000*0.2, charge().hotLost, 1e-6)
}

// TestWALChargeNeverLosesMoreThanIsHOT: more UPDATE calls than counted
// rows (calls that matched nothing) cannot lose more HOT updates than the
// table had.
func TestWALChargeNeverLosesMoreThanIsHOT(t *testing.T) {
	ti := &tableInfo{width: map[string]float64{"id": 8, "b": 4}}
	ti.writes = tableWrites{updates: 100, hotUpdates: 100, fillFactor: 100, indexed: map[string]bool{"id": true}, entries: []float64{20}}
	stmts := []writeStmt{{table: "public.t", kind: sqlparse.KindUpdate, set: []string{"b"}, calls: 1000}}
	got := walCharge(ti, stmts, "public.t", events.IndexSpec{Columns: []string{"b"}}, 1, writeTxns(stmts))
	require.InDelta(t, 100, got.hotLost, 1e-6, "1000 calls, but only 100 HOT updates today")
}

// TestRoomFromTheCounters: the share of updates that found room on their
// page, from n_tup_newpage_upd over the window, or since the reset when
// the window counted no update; unknown when a sample lacks the count.
func TestRoomFromTheCounters(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	newPage := func(n int64) *int64 { return &n }
	sample := func(min int, upd, hot int64, np *int64) *events.TableStatObserved {
		return &events.TableStatObserved{Target: "main", Schema: "public", Table: "t", ObservedAt: at.Add(time.Duration(min) * time.Minute),
			Updates: upd, HotUpdates: hot, NewPageUpdates: np}
	}
	from, to := at.Add(-time.Minute), at.Add(time.Hour)
	writes := func(ts ...*events.TableStatObserved) tableWrites {
		return retainedWrites(&Retained{TableStats: ts}, "main", "public", "t", from, to)
	}

	tw := writes(sample(0, 1000, 400, newPage(100)), sample(10, 2000, 1000, newPage(400)))
	require.True(t, tw.roomKnown)
	require.InDelta(t, 1-300.0/1000, tw.room, 1e-9, "over the window: 300 of 1000 updates to a new page")
	require.Equal(t, 1000.0, tw.updates)
	require.Equal(t, 600.0, tw.hotUpdates)

	tw = writes(sample(0, 1000, 400, newPage(100)), sample(10, 1000, 400, newPage(100)))
	require.True(t, tw.roomKnown)
	require.Zero(t, tw.updates)
	require.InDelta(t, 0.9, tw.room, 1e-9, "no update in the window: since the reset")

	tw = writes(sample(0, 1000, 400, nil), sample(10, 2000, 1000, newPage(400)))
	require.False(t, tw.roomKnown, "a sample without the count (PostgreSQL 15, or stored before): unknown")
	tw = writes(sample(0, 1000, 400, nil), sample(10, 2000, 1000, nil))
	require.False(t, tw.roomKnown)
	require.Equal(t, 1000.0, tw.updates, "the other counters do not depend on it")
	tw = writes(sample(0, 0, 0, newPage(0)))
	require.False(t, tw.roomKnown, "no update ever: nothing to divide")
}
