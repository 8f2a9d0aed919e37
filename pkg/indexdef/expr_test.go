package indexdef_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func exprSpec(table string, cols []string, exprs ...events.IndexExpr) events.IndexSpec {
	return events.IndexSpec{Schema: "public", Table: table, Method: "btree", Columns: cols, Expressions: exprs}
}

func TestExpressionKeys(t *testing.T) {
	lower := func(c string) events.IndexExpr { return events.IndexExpr{Function: "lower", Column: c} }
	s := exprSpec("users", []string{"tenant_id"}, lower("Email"))
	require.NoError(t, indexdef.Validate(s))
	require.Equal(t, `CREATE INDEX "ip_x" ON "public"."users" USING btree ("tenant_id", lower("Email"))`, indexdef.CreateSQL(s, "ip_x", false))
	require.Equal(t, "public.users|btree|tenant_id||lower(Email)", s.Key())
	require.Equal(t, "public.users|btree|tenant_id|", exprSpec("users", []string{"tenant_id"}).Key(), "plain keys do not change")
	require.NotEqual(t, indexdef.Name(s), indexdef.Name(exprSpec("users", []string{"tenant_id"})))
	require.Contains(t, indexdef.Name(s), "lower_Email")

	require.NoError(t, indexdef.Validate(exprSpec("users", nil, lower("email"))), "an expression alone is a key")
	require.ErrorContains(t, indexdef.Validate(exprSpec("users", nil, events.IndexExpr{Function: "pg_sleep", Column: "a"})), "not allowed")
	require.Error(t, indexdef.Validate(exprSpec("users", nil, events.IndexExpr{Function: "lower"})))
}

func TestParseExprKey(t *testing.T) {
	for in, want := range map[string][2]string{
		"lower(email)":             {"lower", "email"},
		"lower((email)::text)":     {"lower", "email"},
		`upper("Email")`:           {"upper", "Email"},
		`lower(("we""ird")::text)`: {"lower", `we"ird`},
	} {
		fn, col, ok := indexdef.ParseExprKey(in)
		require.True(t, ok, in)
		require.Equal(t, want, [2]string{fn, col}, in)
	}
	for _, in := range []string{"email", "lower(a, b)", "lower(a || b)", "(a + 1)", "lower(1)", "Lower(x)", "lower()"} {
		_, _, ok := indexdef.ParseExprKey(in)
		require.False(t, ok, in)
	}
}

func TestCoversExpressionIndexes(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		`create table u (id int primary key, tenant_id int, email varchar(200), "Name" text)`,
		`create index u_lower_email on u (lower(email))`,
		`create index u_tenant_upper_name on u (tenant_id, upper("Name"))`,
	)
	list, err := indexdef.Load(context.Background(), db.Pool, "public", "u")
	require.NoError(t, err)
	lower := events.IndexExpr{Function: "lower", Column: "email"}
	upper := events.IndexExpr{Function: "upper", Column: "Name"}
	cases := []struct {
		spec   events.IndexSpec
		covers bool
	}{
		{exprSpec("u", nil, lower), true}, // lower((email)::text) in the catalog
		{exprSpec("u", nil, events.IndexExpr{Function: "upper", Column: "email"}), false},
		{exprSpec("u", []string{"email"}), false}, // a plain column is not the expression
		{exprSpec("u", []string{"tenant_id"}, upper), true},
		{exprSpec("u", []string{"tenant_id"}), true}, // left prefix
		{exprSpec("u", nil, upper), false},           // not leading
	}
	for _, c := range cases {
		_, got := indexdef.FindCovering(list, c.spec)
		require.Equal(t, c.covers, got, "covers %s", c.spec.Key())
	}
	e, ok := indexdef.FindEqual(list, exprSpec("u", nil, lower))
	require.True(t, ok)
	require.Equal(t, "u_lower_email", e.Name)
	_, ok = indexdef.FindEqual(list, exprSpec("u", []string{"tenant_id"}))
	require.False(t, ok)

	// What CreateSQL renders is what the comparison recognises.
	s := exprSpec("u", []string{"id"}, lower)
	db.Exec(t, indexdef.CreateSQL(s, indexdef.Name(s), false))
	list, err = indexdef.Load(context.Background(), db.Pool, "public", "u")
	require.NoError(t, err)
	e, ok = indexdef.FindEqual(list, s)
	require.True(t, ok)
	require.Equal(t, indexdef.Name(s), e.Name)
}
