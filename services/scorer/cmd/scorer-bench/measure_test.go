package main

import (
	"context"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestMeasureSetPricesReadsAndChargesWALOfTheWriteScript measures three
// sets of one small workload on the real server: none, an index on a column
// the reads filter on and the writes never change, and an index on the
// column the writes update. The write script is a two-statement
// transaction (an UPDATE and an INSERT).
func TestMeasureSetPricesReadsAndChargesWALOfTheWriteScript(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t,
		// a is clustered (200 rows a value, on two pages): an index on it
		// makes the lookup far cheaper than the sequential scan.
		`create table t (id int primary key, a int not null, b int not null) with (fillfactor = 90)`,
		`insert into t select g, g / 200, g from generate_series(1, 20000) g`,
		`create table log (id bigserial primary key, t_id int not null)`,
	)
	ctx := context.Background()
	b := &bench{pool: db.Pool, dsn: db.URL, runs: 1, scriptTxns: 200}
	w := workload{name: "test",
		reads: []stmt{{sql: "select id from t where a = $1", calls: 10,
			args: func(r *rand.Rand) []any { return []any{r.Intn(100)} }}},
		writes: []writeTxn{{calls: 1, sqls: []string{"UPDATE t SET b = b + $1 WHERE id = $2", "INSERT INTO log (t_id) VALUES ($1)"},
			args: func(r *rand.Rand) [][]any { id := 1 + r.Intn(20000); return [][]any{{1 + r.Intn(5), id}, {id}} }}},
	}
	on := func(col string) []events.IndexSpec {
		return []events.IndexSpec{{Schema: "public", Table: "t", Method: "btree", Columns: []string{col}}}
	}
	none := &indexSet{name: "none"}
	onA := &indexSet{name: "on a", specs: on("a")}
	onB := &indexSet{name: "on b", specs: on("b")}
	for _, set := range []*indexSet{none, onA, onB} {
		require.NoError(t, b.measureSet(ctx, w, set), set.name)
	}

	var logged, indexes int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from log").Scan(&logged))
	runs := 0
	for _, set := range []*indexSet{none, onA, onB} {
		require.GreaterOrEqual(t, set.warmRuns, minWarmRuns, set.name)
		require.LessOrEqual(t, set.warmRuns, maxWarmRuns, set.name)
		runs += 1 + set.warmRuns
	}
	require.Equal(t, runs*b.scriptTxns, logged, "every transaction of the three sets' script runs inserts one log row")
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from pg_indexes where tablename = 't'").Scan(&indexes))
	require.Equal(t, 1, indexes, "measureSet drops the indexes it built: only the primary key is left")

	t.Logf("read cost none %.0f, on a %.0f; WAL B/write txn none %.1f, on a %.1f, on b %.1f; index bytes on a %d", none.readCost, onA.readCost, none.walPerTxn, onA.walPerTxn, onB.walPerTxn, onA.indexBytes)
	t.Logf("warm runs (full-page images per write txn): none %d (%.3f), on a %d (%.3f), on b %d (%.3f)", none.warmRuns, none.warmFPI, onA.warmRuns, onA.warmFPI, onB.warmRuns, onB.warmFPI)
	require.Zero(t, none.indexBytes)
	require.Positive(t, onA.indexBytes, "the real size of the index on a")
	require.Positive(t, none.walPerTxn, "the script's UPDATE and INSERT write WAL")
	require.Less(t, onA.readCost, none.readCost/2, "an index on a prices the lookup with its constants far below the sequential scan")
	// The UPDATE changes b: with an index on b it is no longer HOT and
	// inserts an index entry. An index on a (never updated) keeps it HOT.
	require.Greater(t, onB.walPerTxn, onA.walPerTxn+20, "WAL per write txn: index on the updated column %.1f B, on the other column %.1f B, none %.1f B",
		onB.walPerTxn, onA.walPerTxn, none.walPerTxn)
	require.Greater(t, onB.walPerTxn, none.walPerTxn+20)
}
