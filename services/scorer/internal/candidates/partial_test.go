package candidates

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/indexdef"
)

func TestGeneratePartialCandidates(t *testing.T) {
	t.Parallel()
	var got []string
	cands := Generate([]Input{
		in(t, "q0", "SELECT * FROM t WHERE deleted_at IS NOT NULL AND tenant_id = $1"),
	}, nil, Options{})
	for _, c := range cands {
		require.NoError(t, indexdef.Validate(c.Spec), c.Spec.Key())
		if c.Spec.Predicate != "" {
			got = append(got, c.Spec.Key())
		}
	}
	require.Equal(t, []string{
		"public.t|btree|deleted_at|(deleted_at IS NOT NULL)",
		"public.t|btree|tenant_id|(deleted_at IS NOT NULL)",
	}, got)

	// An existing partial index with the same predicate covers; a full one
	// does not make the partial one redundant, nor the other way round.
	existing := map[string][]indexdef.Existing{"public.t": {{Schema: "public", Table: "t", Name: "x", Method: "btree",
		Columns: []string{"tenant_id"}, Keys: []string{"tenant_id"}, Predicate: "(deleted_at IS NOT NULL)", Valid: true}}}
	for _, c := range Generate([]Input{in(t, "q0", "SELECT * FROM t WHERE deleted_at IS NOT NULL AND tenant_id = $1")}, existing, Options{}) {
		require.NotEqual(t, "public.t|btree|tenant_id|(deleted_at IS NOT NULL)", c.Spec.Key())
	}
}
