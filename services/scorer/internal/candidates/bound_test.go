package candidates

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGenerateBoundedPerUsage: past MaxUsageColumns columns of each kind
// and MaxPartialPredicates partial predicates, a longer statement on one
// table gives no more candidates, so one statement can no longer make
// Generate (and the what-if pricing after it) quadratic in its length.
func TestGenerateBoundedPerUsage(t *testing.T) {
	t.Parallel()
	opts := Options{MaxColumns: 5, TenantColumn: "tenant_id", MinShared: 2}
	count := func(sql string) int {
		st := in(t, "1", sql)
		return len(Generate([]Input{st, {QueryID: "2", Stmt: st.Stmt}}, nil, opts))
	}
	for _, shape := range adversarialShapes {
		if shape == "tables" {
			continue // one usage per table: linear, below
		}
		short, long := count(adversarial(shape, 200)), count(adversarial(shape, 600))
		require.Equal(t, short, long, "%s: 600 columns give more candidates than 200", shape)
		require.LessOrEqual(t, long, 4000, shape)
	}
	// Each table is bounded on its own: twice the tables, about twice the
	// candidates (the two ends of the join chain have one join key less).
	require.LessOrEqual(t, count(adversarial("tables", 100)), 2*count(adversarial("tables", 50))+10)
}

// TestGenerateBoundKeepsTenant: the tenant column past the first
// MaxUsageColumns equality columns still leads the composites.
func TestGenerateBoundKeepsTenant(t *testing.T) {
	t.Parallel()
	var terms []string
	for i := 0; i < MaxUsageColumns+8; i++ {
		terms = append(terms, fmt.Sprintf("c%d = $%d", i, i+1))
	}
	terms = append(terms, "tenant_id = $100")
	got := keys(Generate([]Input{in(t, "q", "SELECT * FROM t WHERE "+strings.Join(terms, " AND "))}, nil,
		Options{MaxColumns: 3, TenantColumn: "tenant_id"}))
	require.Contains(t, got, "t(tenant_id,c0,c1)=q")
	require.Contains(t, got, "t(tenant_id)=q")
	require.Contains(t, got, "t(c30)=q")
	require.NotContains(t, got, "t(c31)=q", "the 32nd equality column makes way for the tenant column")
	require.NotContains(t, got, "t(c39)=q")
}

// TestGenerateBoundKeepsPartials: the first MaxPartialPredicates IS NOT
// NULL columns give their partial variants, the later ones only the
// partial index on the column itself.
func TestGenerateBoundKeepsPartials(t *testing.T) {
	t.Parallel()
	sql := "SELECT * FROM t WHERE a = $1 AND n0 IS NOT NULL AND n1 IS NOT NULL AND n2 IS NOT NULL" +
		" AND n3 IS NOT NULL AND n4 IS NOT NULL AND n5 IS NOT NULL"
	got := partials(t, Generate([]Input{in(t, "q", sql)}, nil, Options{}))
	want := []string{}
	for i := 0; i < 4; i++ {
		want = append(want, fmt.Sprintf("public.t|btree|a|(n%d IS NOT NULL) q", i))
	}
	for i := 0; i < 6; i++ {
		want = append(want, fmt.Sprintf("public.t|btree|n%d|(n%d IS NOT NULL) q", i, i))
	}
	require.ElementsMatch(t, want, got)
}
