package candidates

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/indexdef"
)

// partials lists the keys of the candidates with a predicate, each
// followed by its query ids.
func partials(t *testing.T, cands []Candidate) []string {
	t.Helper()
	var out []string
	for _, c := range cands {
		require.NoError(t, indexdef.Validate(c.Spec), c.Spec.Key())
		if c.Spec.Predicate != "" {
			ids := ""
			for _, id := range c.QueryIDs {
				ids += " " + id
			}
			out = append(out, c.Spec.Key()+ids)
		}
	}
	return out
}

func TestGenerateSharedConditionPartials(t *testing.T) {
	t.Parallel()
	stmts := []Input{
		in(t, "q1", "SELECT * FROM accounts WHERE deleted_at IS NULL AND email = $1"),
		in(t, "q2", "SELECT * FROM accounts WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at"),
		in(t, "q3", "UPDATE accounts SET seen = now() WHERE id = $1 AND deleted_at IS NULL AND active"),
		// Only one statement says NOT archived, and under OR nothing is
		// certain: no partial on either.
		in(t, "q4", "SELECT * FROM accounts WHERE NOT archived AND region = $1"),
		in(t, "q5", "SELECT * FROM accounts WHERE (deleted_at IS NULL OR purge_at IS NULL) AND plan = $1"),
		// Another table's deleted_at IS NULL does not count towards accounts.
		in(t, "q6", "SELECT * FROM invoices WHERE deleted_at IS NULL AND number = $1"),
	}
	require.Equal(t, []string{
		"public.accounts|btree|created_at|(deleted_at IS NULL) q2",
		"public.accounts|btree|email|(deleted_at IS NULL) q1",
		"public.accounts|btree|id|(deleted_at IS NULL) q3",
		"public.accounts|btree|tenant_id,created_at|(deleted_at IS NULL) q2",
		"public.accounts|btree|tenant_id|(deleted_at IS NULL) q2",
	}, partials(t, Generate(stmts, nil, Options{})), "the key never holds a column the statement's conditions fix")

	// Boolean conditions shared by two statements; the boolean column
	// leaves the key since the predicate fixes it.
	bools := []Input{
		in(t, "a", "SELECT * FROM flags WHERE active AND owner = $1"),
		in(t, "b", "SELECT * FROM flags WHERE owner = $1 AND kind = $2 AND active"),
		in(t, "c", "SELECT * FROM flags WHERE NOT archived AND done IS FALSE AND owner = $1"),
		in(t, "d", "SELECT * FROM flags WHERE NOT archived AND done IS FALSE AND kind = $1"),
	}
	require.Equal(t, []string{
		"public.flags|btree|kind|(NOT archived) d",
		"public.flags|btree|kind|(done IS FALSE) d",
		"public.flags|btree|kind|active b",
		"public.flags|btree|owner,kind|active b",
		"public.flags|btree|owner|(NOT archived) c",
		"public.flags|btree|owner|(done IS FALSE) c",
		"public.flags|btree|owner|active a b",
	}, partials(t, Generate(bools, nil, Options{})))

	// MinShared 3: two statements are not enough; 1: one is.
	require.Empty(t, partials(t, Generate(bools[:2], nil, Options{MinShared: 3})))
	require.Len(t, partials(t, Generate(bools[:1], nil, Options{MinShared: 1})), 1)

	// A skipped column is never a predicate.
	skip := func(_, _, c string) bool { return c == "deleted_at" }
	require.Empty(t, partials(t, Generate(stmts, nil, Options{Skip: skip})))
}

func TestGenerateSharedConditionExistingIndex(t *testing.T) {
	t.Parallel()
	stmts := []Input{
		in(t, "q1", "SELECT * FROM accounts WHERE deleted_at IS NULL AND email = $1"),
		in(t, "q2", "SELECT * FROM accounts WHERE deleted_at IS NULL AND email = $1 AND plan = $2"),
	}
	has := func(cands []Candidate, key string) bool {
		for _, c := range cands {
			if c.Spec.Key() == key {
				return true
			}
		}
		return false
	}
	const key = "public.accounts|btree|email|(deleted_at IS NULL)"
	require.True(t, has(Generate(stmts, nil, Options{}), key))
	for _, pred := range []string{"(deleted_at IS NULL)", `("deleted_at" IS NULL)`} {
		existing := map[string][]indexdef.Existing{"public.accounts": {{Schema: "public", Table: "accounts", Name: "x", Method: "btree",
			Columns: []string{"email", "plan"}, Keys: []string{"email", "plan"}, Predicate: pred, Valid: true}}}
		got := Generate(stmts, existing, Options{})
		require.False(t, has(got, key), "a partial index led by email with the same predicate serves it (%s)", pred)
		require.False(t, has(got, "public.accounts|btree|email,plan|(deleted_at IS NULL)"))
		require.True(t, has(got, "public.accounts|btree|email|"), "the full index is still a candidate")
	}
	// A different predicate does not.
	existing := map[string][]indexdef.Existing{"public.accounts": {{Schema: "public", Table: "accounts", Name: "x", Method: "btree",
		Columns: []string{"email"}, Keys: []string{"email"}, Predicate: "(deleted_at IS NOT NULL)", Valid: true}}}
	require.True(t, has(Generate(stmts, existing, Options{}), key))
}

func TestGenerateWithoutExpressions(t *testing.T) {
	t.Parallel()
	stmts := []Input{in(t, "q1", "SELECT * FROM users WHERE lower(email) = $1 AND tenant_id = $2")}
	count := func(cands []Candidate) int {
		n := 0
		for _, c := range cands {
			n += len(c.Spec.Expressions)
		}
		return n
	}
	require.Equal(t, 1, count(Generate(stmts, nil, Options{})))
	got := Generate(stmts, nil, Options{NoExpressions: true})
	require.Zero(t, count(got))
	require.NotEmpty(t, got, "the column candidates stay")
}
