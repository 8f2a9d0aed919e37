package metadata_test

import (
	"context"
	"testing"

	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestMigrateIsIdempotentAndTouchesOnlyItsSchema(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	db.Exec(t, "create table public.users (id int primary key, email text)")
	before := snapshotPublic(t, db)
	res, err := metadata.Migrate(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := metadata.Migrations()
	if len(res.Applied) != len(ms) || res.Current != ms[len(ms)-1].Version {
		t.Fatalf("first migrate applied %d of %d, current %d", len(res.Applied), len(ms), res.Current)
	}
	res, err = metadata.Migrate(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 {
		t.Fatalf("second migrate applied %d migrations, want 0", len(res.Applied))
	}
	for _, tbl := range []string{"genome_catalog", "expression_profile", "mutation_log", "query_stats", "recommendations", "processed_events"} {
		var ok bool
		if err := db.Pool.QueryRow(ctx, "select to_regclass('indexpilot.'||$1) is not null", tbl).Scan(&ok); err != nil || !ok {
			t.Errorf("table indexpilot.%s missing after migrate (err %v)", tbl, err)
		}
	}
	if after := snapshotPublic(t, db); after != before {
		t.Errorf("user objects changed by migrate:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshotPublic describes every relation outside the indexpilot schema.
func snapshotPublic(t *testing.T, db *pgtest.Database) string {
	t.Helper()
	var s string
	err := db.Pool.QueryRow(context.Background(), `select coalesce(string_agg(n.nspname||'.'||c.relname||':'||c.relkind::text||':'||c.relnatts, ',' order by 1), '')
		from pg_class c join pg_namespace n on n.oid=c.relnamespace
		where n.nspname not in ('indexpilot','pg_catalog','information_schema','pg_toast')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInboxAndLog(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := metadata.Migrate(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	const ev = "6f994e4d-df26-538c-9703-d419db07f4b4"
	first, err := metadata.MarkProcessed(ctx, db.Pool, "c", ev)
	if err != nil || !first {
		t.Fatalf("first mark: %v %v", first, err)
	}
	again, err := metadata.MarkProcessed(ctx, db.Pool, "c", ev)
	if err != nil || again {
		t.Fatalf("second mark: %v %v, want false", again, err)
	}
	other, err := metadata.MarkProcessed(ctx, db.Pool, "other", ev)
	if err != nil || !other {
		t.Fatalf("other consumer: %v %v", other, err)
	}
	id, err := metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "test", Action: "recommend", Outcome: "proposed",
		Target: "main", Fields: []string{"a"}, Evidence: map[string]int{"x": 1}, EventID: ev})
	if err != nil {
		t.Fatal(err)
	}
	child, err := metadata.AppendLog(ctx, db.Pool, metadata.Entry{Stage: "test", Action: "build", Outcome: "built", ParentID: &id})
	if err != nil {
		t.Fatal(err)
	}
	var parent int64
	var x int
	if err := db.Pool.QueryRow(ctx, "select c.parent_id, (p.evidence->>'x')::int from indexpilot.mutation_log c join indexpilot.mutation_log p on p.id=c.parent_id where c.id=$1", child).Scan(&parent, &x); err != nil {
		t.Fatal(err)
	}
	if parent != id || x != 1 {
		t.Errorf("lineage: parent %d (want %d), evidence x %d", parent, id, x)
	}
}
