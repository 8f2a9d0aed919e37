package candidates

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
)

func TestGenerateExpressionCandidates(t *testing.T) {
	t.Parallel()
	stmts := []Input{
		in(t, "q0", "SELECT * FROM users u WHERE lower(u.email) = $1"),
		in(t, "q1", "SELECT * FROM users WHERE org_id = $1 AND upper(name) = $2"),
		in(t, "q2", "SELECT * FROM users WHERE lower(email) LIKE $1"),      // LIKE: none
		in(t, "q3", "SELECT * FROM users WHERE md5(email) = $1"),           // not allowed
		in(t, "q4", "SELECT * FROM users WHERE lower(email || name) = $1"), // two columns
	}
	var got []string
	for _, c := range Generate(stmts, nil, Options{TenantColumn: "org_id"}) {
		if len(c.Spec.Expressions) > 0 {
			got = append(got, c.Spec.Key()+"="+c.QueryIDs[0])
		}
	}
	require.Equal(t, []string{
		"public.users|btree|org_id||upper(name)=q1",
		"public.users|btree|||lower(email)=q0",
		"public.users|btree|||upper(name)=q1",
	}, got)
	for _, c := range Generate(stmts, nil, Options{}) {
		require.NoError(t, indexdef.Validate(c.Spec), c.Spec.Key())
	}

	// An existing index on lower(email) covers the candidate.
	existing := map[string][]indexdef.Existing{"public.users": {{
		Schema: "public", Table: "users", Name: "users_lower_email", Method: "btree", Valid: true,
		Columns: []string{""}, Keys: []string{"lower((email)::text)"}, HasExprKeys: true,
	}}}
	for _, c := range Generate(stmts[:1], existing, Options{}) {
		require.NotEqual(t, []events.IndexExpr{{Function: "lower", Column: "email"}}, c.Spec.Expressions)
	}

	// A skipped column gives no expression candidate either.
	skip := func(_, _, col string) bool { return col == "email" }
	for _, c := range Generate(stmts[:1], nil, Options{Skip: skip}) {
		require.Empty(t, c.Spec.Expressions)
	}
}
