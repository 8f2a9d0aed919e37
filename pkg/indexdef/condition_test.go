package indexdef_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestConditionRendering(t *testing.T) {
	for _, c := range []struct {
		cond      indexdef.Condition
		predicate string
		sql       string
	}{
		{indexdef.Condition{Column: "deleted_at", Test: indexdef.TestIsNull}, "(deleted_at IS NULL)", `"deleted_at" IS NULL`},
		{indexdef.Condition{Column: "deleted_at", Test: indexdef.TestIsNotNull}, "(deleted_at IS NOT NULL)", `"deleted_at" IS NOT NULL`},
		{indexdef.Condition{Column: "active", Test: indexdef.TestTrue}, "active", `"active"`},
		{indexdef.Condition{Column: "archived", Test: indexdef.TestFalse}, "(NOT archived)", `NOT "archived"`},
		{indexdef.Condition{Column: "active", Test: indexdef.TestIsTrue}, "(active IS TRUE)", `"active" IS TRUE`},
		{indexdef.Condition{Column: "active", Test: indexdef.TestIsFalse}, "(active IS FALSE)", `"active" IS FALSE`},
		{indexdef.Condition{Column: `Odd "Name"`, Test: indexdef.TestIsNull}, `("Odd ""Name""" IS NULL)`, `"Odd ""Name""" IS NULL`},
		{indexdef.Condition{Column: "not", Test: indexdef.TestTrue}, `"not"`, `"not"`},
	} {
		require.Equal(t, c.predicate, c.cond.Predicate())
		require.Equal(t, c.sql, c.cond.SQL())
		back, ok := indexdef.ParseCondition(c.predicate)
		require.True(t, ok, c.predicate)
		require.Equal(t, c.cond, back)
	}
	for _, p := range []string{"", "(a > 0)", "(a = $1)", "((a IS NULL) AND b)", "(a IS NULL) OR true", "true", "(NOT (a IS NULL))",
		"(lower(a) IS NULL)", "(a; drop table x IS NULL)", `("a"b" IS NULL)`, "1", "(NOT true)"} {
		_, ok := indexdef.ParseCondition(p)
		require.False(t, ok, p)
	}
	require.True(t, indexdef.SamePredicate("(active = true)", "active"))
	require.True(t, indexdef.SamePredicate("(flag = false)", "(NOT flag)"))
	require.True(t, indexdef.SamePredicate("", ""))
	require.False(t, indexdef.SamePredicate("active", "(active IS TRUE)"), "IS TRUE is not the same predicate text the planner matches")
	require.False(t, indexdef.SamePredicate("", "(a IS NULL)"))
}

// TestConditionIndexesMatchTheCatalog builds an index for every test with
// CreateSQL and checks that the catalog's predicate is recognised as the
// spec's, and that a user's "= true" index counts as the bare form.
func TestConditionIndexesMatchTheCatalog(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.Exec(t, `create table t (id int primary key, a int, deleted_at timestamptz, active bool, "Archived" bool)`)
	var specs []events.IndexSpec
	for _, c := range []indexdef.Condition{
		{Column: "deleted_at", Test: indexdef.TestIsNull},
		{Column: "active", Test: indexdef.TestTrue},
		{Column: "Archived", Test: indexdef.TestFalse},
		{Column: "active", Test: indexdef.TestIsTrue},
		{Column: "active", Test: indexdef.TestIsFalse},
	} {
		s := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a"}, Predicate: c.Predicate()}
		require.NoError(t, indexdef.Validate(s))
		db.Exec(t, indexdef.CreateSQL(s, indexdef.Name(s), false))
		specs = append(specs, s)
	}
	list, err := indexdef.Load(context.Background(), db.Pool, "public", "t")
	require.NoError(t, err)
	for _, s := range specs {
		e, ok := indexdef.FindEqual(list, s)
		require.True(t, ok, s.Predicate)
		require.Equal(t, indexdef.Name(s), e.Name, s.Predicate)
		_, ok = indexdef.FindCovering(list, s)
		require.True(t, ok, s.Predicate)
	}
	_, ok := indexdef.FindCovering(list, events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a"},
		Predicate: indexdef.Condition{Column: "deleted_at", Test: indexdef.TestIsNotNull}.Predicate()})
	require.False(t, ok, "IS NULL does not cover IS NOT NULL")

	db.Exec(t, `create index user_idx on t (id) where active = true`)
	list, err = indexdef.Load(context.Background(), db.Pool, "public", "t")
	require.NoError(t, err)
	e, ok := indexdef.FindEqual(list, events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"id"}, Predicate: "active"})
	require.True(t, ok)
	require.Equal(t, "user_idx", e.Name)
}
