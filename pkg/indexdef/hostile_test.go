package indexdef_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// TestHostileIdentifiersBuildTheRightIndex builds indexes on a schema, a
// table and columns named with quotes, ';', spaces, unicode, mixed case
// and the full 63 bytes, from specs carrying those names as they are: each
// index lands on the right table and columns, under its own name of at
// most 63 bytes, including two whose readable part is cut to the same
// prefix.
func TestHostileIdentifiersBuildTheRightIndex(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	pad := func(s string) string { // to exactly 63 bytes
		for len(s) < indexdef.MaxNameBytes {
			s += "x"
		}
		return s
	}
	schema := `We;ird "Schéma"`
	table := pad(`Tab le;--"DROP" ünï`)
	colA := pad(`col; DROP TABLE t; -- "a"`)
	colB := pad(`col; DROP TABLE t; -- "b"`) // same 25-byte prefix as colA
	colC := "MiXeD Çase"
	require.Len(t, table, 63)
	db.Exec(t,
		"create schema "+postgres.Ident(schema),
		"create table "+postgres.Ident(schema, table)+" (id int primary key, "+postgres.Ident(colA)+" int, "+
			postgres.Ident(colB)+" int, "+postgres.Ident(colC)+" text)",
		"insert into "+postgres.Ident(schema, table)+" select g, g % 7, g % 11, 'v' || g from generate_series(1, 1000) g")

	specs := []events.IndexSpec{
		{Schema: schema, Table: table, Method: "btree", Columns: []string{colA}},
		{Schema: schema, Table: table, Method: "btree", Columns: []string{colB}},
		{Schema: schema, Table: table, Method: "btree", Columns: []string{colC, colA}},
		{Schema: schema, Table: table, Method: "btree", Expressions: []events.IndexExpr{{Function: "lower", Column: colC}}},
	}
	names := map[string]bool{}
	for _, s := range specs {
		require.NoError(t, indexdef.Validate(s))
		name := indexdef.Name(s)
		require.LessOrEqual(t, len(name), indexdef.MaxNameBytes, "name %q", name)
		require.False(t, names[name], "name %q given twice", name)
		names[name] = true
		_, err := db.Pool.Exec(ctx, indexdef.CreateSQL(s, name, true))
		require.NoError(t, err, "build %s", name)

		// The index exists under exactly that name, on that table, valid,
		// and its keys are the spec's columns and expressions in order.
		var valid bool
		var keys []string
		require.NoError(t, db.Pool.QueryRow(ctx, `
select x.indisvalid,
       array(select coalesce(a.attname::text, pg_get_indexdef(x.indexrelid, k.n::int, true))
               from unnest(x.indkey) with ordinality k(attnum, n)
               left join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum and k.attnum <> 0
              order by k.n)
  from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace
 where n.nspname = $1 and i.relname = $2 and x.indrelid = $3::regclass`,
			schema, name, postgres.Ident(schema, table)).Scan(&valid, &keys), "index %q", name)
		require.True(t, valid, "index %q", name)
		want := append([]string(nil), s.Columns...)
		for _, e := range s.Expressions {
			want = append(want, e.Function+"("+postgres.Ident(e.Column)+")")
		}
		require.Equal(t, want, keys, "keys of %q", name)

		// Found again by the catalog reader as the same definition: the
		// executor's "already exists" check sees it.
		existing, err := indexdef.Load(ctx, db.Pool, schema, table)
		require.NoError(t, err)
		got, ok := indexdef.FindEqual(existing, s)
		require.True(t, ok, "Load/FindEqual does not find %q among %+v", name, existing)
		require.Equal(t, name, got.Name)
	}
	require.True(t, strings.HasPrefix(indexdef.Name(specs[0])[:40], indexdef.Name(specs[1])[:40]), "the two names share their cut prefix")
}
