package candidates

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerateTenantLeading(t *testing.T) {
	t.Parallel()
	got := keys(Generate([]Input{
		in(t, "q0", "SELECT * FROM t WHERE status = $1 AND org_id = $2 AND created_at > $3"),
		in(t, "q1", "SELECT * FROM t WHERE status = $1"),
	}, nil, Options{TenantColumn: "org_id"}))
	require.Equal(t, []string{
		"t(created_at)=q0",
		"t(org_id,created_at)=q0",
		"t(org_id,status,created_at)=q0",
		"t(org_id,status)=q0",
		"t(org_id)=q0",
		"t(status)=q0,q1",
	}, got, "the tenant column leads every composite of a statement that filters on it, and only of those")
}

func TestGenerateSkipsGenomeExclusions(t *testing.T) {
	t.Parallel()
	skip := func(schema, table, col string) bool { return schema == "public" && table == "t" && col == "secret" }
	got := keys(Generate([]Input{
		in(t, "q0", "SELECT * FROM t WHERE secret = $1 AND status = $2 ORDER BY created_at"),
	}, nil, Options{Skip: skip}))
	require.Equal(t, []string{"t(created_at)=q0", "t(status,created_at)=q0", "t(status)=q0"}, got)
}
