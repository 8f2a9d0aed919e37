package indexdef_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func spec(table string, cols ...string) events.IndexSpec {
	return events.IndexSpec{Schema: "public", Table: table, Method: "btree", Columns: cols}
}

func TestNameIsDeterministicBoundedAndDistinct(t *testing.T) {
	a := indexdef.Name(spec("contacts", "tenant_id", "email"))
	require.Equal(t, a, indexdef.Name(spec("contacts", "tenant_id", "email")))
	require.True(t, strings.HasPrefix(a, "ip_contacts_tenant_id_email_"), a)
	require.NotEqual(t, a, indexdef.Name(spec("contacts", "email", "tenant_id")), "column order must change the name")

	long := strings.Repeat("very_long_table_name_", 5)
	n1 := indexdef.Name(spec(long, strings.Repeat("c", 60), "x"))
	n2 := indexdef.Name(spec(long, strings.Repeat("c", 60), "y"))
	require.LessOrEqual(t, len(n1), indexdef.MaxNameBytes, n1)
	require.NotEqual(t, n1, n2, "truncated names of different definitions collide")

	multibyte := indexdef.Name(spec(strings.Repeat("é", 40), "ü"))
	require.LessOrEqual(t, len(multibyte), indexdef.MaxNameBytes)
	require.True(t, utf8.ValidString(multibyte), "name cut inside a UTF-8 sequence: %q", multibyte)
}

func TestCreateSQLQuotesEverything(t *testing.T) {
	s := events.IndexSpec{Schema: "Sales", Table: `we"ird`, Columns: []string{"Email", "a b"}}
	got := indexdef.CreateSQL(s, "ip_x", true)
	require.Equal(t, `CREATE INDEX CONCURRENTLY "ip_x" ON "Sales"."we""ird" USING btree ("Email", "a b")`, got)
	require.Equal(t, `DROP INDEX CONCURRENTLY IF EXISTS "public"."ip_x"`, indexdef.DropSQL("public", "ip_x"))
}

func TestValidate(t *testing.T) {
	require.NoError(t, indexdef.Validate(spec("t", "a")))
	require.Error(t, indexdef.Validate(spec("t")))
	require.Error(t, indexdef.Validate(events.IndexSpec{Table: "t", Columns: []string{"a"}}))
	bad := spec("t", "a")
	bad.Method = "btree; drop table x"
	require.Error(t, indexdef.Validate(bad))
}

func TestCoversComparesParsedDefinitions(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		"create table t (id int primary key, a int, b int, c text, d int)",
		"create index t_ab on t (a, b)",
		"create index t_lower_c on t (lower(c))",
		"create index t_d_partial on t (d) where d > 0",
		"create index t_c_hash on t using hash (c)",
		// A name that contains the column names as a substring but
		// indexes something else must not count.
		"create index t_b_a_idx_for_a on t (b)",
	)
	list, err := indexdef.Load(context.Background(), db.Pool, "public", "t")
	require.NoError(t, err)
	require.Len(t, list, 6)

	cases := []struct {
		spec   events.IndexSpec
		covers bool
	}{
		{spec("t", "a"), true},       // left prefix of (a, b)
		{spec("t", "a", "b"), true},  // exact
		{spec("t", "b", "a"), false}, // order matters
		{spec("t", "a", "b", "c"), false},
		{spec("t", "b"), true},  // t_b_a_idx_for_a
		{spec("t", "c"), false}, // only lower(c) and a hash index
		{spec("t", "d"), false}, // only a partial index
		{spec("t", "id"), true}, // the primary key
	}
	for _, c := range cases {
		_, got := indexdef.FindCovering(list, c.spec)
		require.Equal(t, c.covers, got, "covers %v", c.spec.Columns)
	}
	e, ok := indexdef.FindEqual(list, spec("t", "a", "b"))
	require.True(t, ok)
	require.Equal(t, "t_ab", e.Name)
	_, ok = indexdef.FindEqual(list, spec("t", "a"))
	require.False(t, ok, "a prefix is not equal")
	for _, x := range list {
		if x.Name == "t_lower_c" {
			require.True(t, x.HasExprKeys)
			require.Equal(t, []string{""}, x.Columns)
		}
		if x.Name == "t_d_partial" {
			require.Equal(t, "(d > 0)", x.Predicate)
		}
	}
}

func TestDirectionsRoundTripThroughTheCatalog(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.Exec(t, "create table t (id int primary key, a int, b int, c int)",
		"create index t_ab_desc on t (a desc, b desc)",
		"create index t_c_nulls on t (c nulls first)")
	built := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"b", "a"},
		Directions: []string{events.DirDesc, events.DirAsc}}
	require.NoError(t, indexdef.Validate(built))
	ddl := indexdef.CreateSQL(built, indexdef.Name(built), false)
	require.Equal(t, `CREATE INDEX "`+indexdef.Name(built)+`" ON "public"."t" USING btree ("b" DESC, "a")`, ddl)
	db.Exec(t, ddl)
	require.NotEqual(t, indexdef.Name(built), indexdef.Name(spec("t", "b", "a")), "direction changes the name")

	list, err := indexdef.Load(context.Background(), db.Pool, "public", "t")
	require.NoError(t, err)
	e, ok := indexdef.FindEqual(list, built)
	require.True(t, ok, "the built index is found equal to its spec")
	require.Equal(t, []string{"DESC", ""}, e.Directions)
	_, ok = indexdef.FindEqual(list, spec("t", "b", "a"))
	require.False(t, ok, "an index in other directions is not equal")

	for _, c := range []struct {
		spec   events.IndexSpec
		covers bool
	}{
		{spec("t", "a", "b"), true}, // backward scan of (a desc, b desc)
		{events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a", "b"}, Directions: []string{"DESC", "DESC"}}, true},
		{events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a", "b"}, Directions: []string{"DESC", ""}}, false},
		{spec("t", "c"), false}, // (c nulls first) reversed is (c desc nulls last)
		{events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"c"}, Directions: []string{"NULLS FIRST"}}, true},
		{events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"b"}, Directions: []string{"DESC"}}, true},
		{spec("t", "b"), true},
	} {
		_, got := indexdef.FindCovering(list, c.spec)
		require.Equal(t, c.covers, got, "covers %v %v", c.spec.Columns, c.spec.Directions)
	}
	bad := built
	bad.Directions = []string{"DESC; drop table t", ""}
	require.Error(t, indexdef.Validate(bad))
	bad.Directions = []string{"DESC"}
	require.Error(t, indexdef.Validate(bad))
}
