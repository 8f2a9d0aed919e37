package scorer

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestImageModelMatchesTheServer: 400 single-row inserts with random keys,
// each run right after a checkpoint (one cycle), on a 100,000-row table
// without and then with an index on the key. The full-page images the
// index adds on the server, and the WAL, are what the write model
// estimates for that index over one cycle of those inserts.
func TestImageModelMatchesTheServer(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.Exec(t,
		`create table t (id bigserial primary key, k int not null)`,
		`insert into t (k) select hashint4(g) from generate_series(1, 100000) g`,
		`analyze t`,
	)
	ctx := context.Background()
	const inserts = 400
	const insertSQL = "insert into t (k) values ($1)"
	r := rand.New(rand.NewSource(5))
	// measure runs the inserts right after a checkpoint and returns the
	// images and WAL bytes pg_stat_statements counted for them. A
	// checkpoint of the shared server that starts during a run only adds
	// images (under the whole suite, whose DROP DATABASEs force one
	// several times a second), so the run with the fewest of four is
	// kept, and the commits do not wait for the WAL flush: the same
	// records in a run several times shorter.
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "set synchronous_commit = off")
	require.NoError(t, err)
	measure := func() (images, wal float64) {
		counters := func() (fpi, bytes float64) {
			require.NoError(t, db.Pool.QueryRow(ctx, `select coalesce(sum(wal_fpi), 0)::float8, coalesce(sum(wal_bytes), 0)::float8
  from pg_stat_statements s join pg_database d on d.oid = s.dbid
 where d.datname = current_database() and s.query = $1`, insertSQL).Scan(&fpi, &bytes))
			return fpi, bytes
		}
		images = -1
		for range 4 {
			db.Exec(t, "checkpoint")
			f0, b0 := counters()
			for range inserts {
				_, err := conn.Exec(ctx, insertSQL, int32(r.Uint32())) // over the whole key range, as hashint4
				require.NoError(t, err)
			}
			f1, b1 := counters()
			if images < 0 || f1-f0 < images {
				images, wal = f1-f0, b1-b0
			}
		}
		return images, wal
	}
	imagesWithout, walWithout := measure()
	db.Exec(t, `create index t_k on t (k)`, `analyze t`)
	var pkeyPages, kPages, corr float64
	require.NoError(t, db.Pool.QueryRow(ctx, `select (select relpages from pg_class where relname = 't_pkey')::float8,
       (select relpages from pg_class where relname = 't_k')::float8,
       (select correlation from pg_stats where tablename = 't' and attname = 'k')::float8`).Scan(&pkeyPages, &kPages, &corr))
	imagesWith, walWith := measure()

	// The model, for a candidate on k over one checkpoint cycle of those
	// inserts (the primary key, in insertion order, appends).
	ti := &tableInfo{width: map[string]float64{"id": 8, "k": 4}, correlation: map[string]float64{"id": 1, "k": corr}}
	ti.writes = tableWrites{inserts: inserts, span: 5 * time.Minute, indexed: map[string]bool{"id": true},
		entries: []float64{20}, leaves: []indexLeaves{{pages: pkeyPages - 1, appends: true}}}
	spec := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"k"}}
	ch := walCharge(ti, []writeStmt{{table: "public.t", kind: kindInsert, calls: inserts}}, "public.t", spec, 1, inserts)
	records := ch.walBytes
	addImages(&ch, ti, spec, 1, kPages-1, imageModel{cycle: 5 * time.Minute})
	modelImages := ch.fpiBytes / walFPIBytes

	t.Logf("server: %.0f images and %.0f B without the index, %.0f and %.0f B with it (%.0f leaf pages); model: %.1f images, %.0f B of records, %.0f B in all",
		imagesWithout, walWithout, imagesWith, walWith, kPages-1, modelImages, records, ch.walBytes)
	added := imagesWith - imagesWithout
	require.Greater(t, added, 50.0, "random keys dirty many of the index's leaves")
	require.InEpsilon(t, added, modelImages, 0.15, "images the index adds: server %.0f, model %.1f", added, modelImages)
	require.InEpsilon(t, walWith-walWithout, ch.walBytes, 0.25, "WAL the index adds: server %.0f B, model %.0f B", walWith-walWithout, ch.walBytes)
	require.InDelta(t, ch.walBytes/inserts, ch.perTxn, 1e-9, "per write transaction, images included")
	require.InDelta(t, ch.fpiBytes/inserts, ch.fpiPerTxn, 1e-9)
}
