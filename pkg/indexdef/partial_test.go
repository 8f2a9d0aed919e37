package indexdef_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestNotNullPartialIndexes(t *testing.T) {
	require.Equal(t, "(deleted_at IS NOT NULL)", indexdef.NotNullPredicate("deleted_at"))
	require.Equal(t, `("Deleted" IS NOT NULL)`, indexdef.NotNullPredicate("Deleted"))
	for _, p := range []string{"(deleted_at IS NOT NULL)", `("Deleted" IS NOT NULL)`} {
		col, ok := indexdef.ParseNotNullPredicate(p)
		require.True(t, ok, p)
		require.Equal(t, p, indexdef.NotNullPredicate(col))
	}
	for _, p := range []string{"(a > 0)", "(a IS NOT NULL) OR true", "((a IS NOT NULL) AND (b IS NOT NULL))", "(a; drop table x IS NOT NULL)"} {
		_, ok := indexdef.ParseNotNullPredicate(p)
		require.False(t, ok, p)
		s := events.IndexSpec{Schema: "public", Table: "t", Columns: []string{"a"}, Predicate: p}
		require.Error(t, indexdef.Validate(s), p)
	}

	s := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a"}, Predicate: indexdef.NotNullPredicate("deleted_at")}
	require.NoError(t, indexdef.Validate(s))
	require.Equal(t, `CREATE INDEX "ip_x" ON "public"."t" USING btree ("a") WHERE "deleted_at" IS NOT NULL`, indexdef.CreateSQL(s, "ip_x", false))

	// What CreateSQL builds, the catalog comparison recognises.
	db := pgtest.NewDatabase(t)
	db.Exec(t, `create table t (id int primary key, a int, deleted_at timestamptz)`, indexdef.CreateSQL(s, indexdef.Name(s), false))
	list, err := indexdef.Load(context.Background(), db.Pool, "public", "t")
	require.NoError(t, err)
	e, ok := indexdef.FindEqual(list, s)
	require.True(t, ok)
	require.Equal(t, indexdef.Name(s), e.Name)
	_, ok = indexdef.FindCovering(list, events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a"}})
	require.False(t, ok, "a partial index does not serve every row")
}
