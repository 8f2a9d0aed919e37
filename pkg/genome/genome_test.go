package genome_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/genome"
)

func TestParse(t *testing.T) {
	c, err := genome.Parse([]byte(`
tenant_column: tenant_id
tables:
  public.contacts:
    fields:
      notes: {indexable: false}
      email: {required: true, feature_group: crm}
  orders:
    fields:
      memo: {indexable: false}
`))
	require.NoError(t, err)
	require.Equal(t, "tenant_id", c.TenantColumn)
	require.False(t, c.Indexable("public", "contacts", "notes"))
	require.True(t, c.Indexable("public", "contacts", "email"))
	require.False(t, c.Indexable("public", "orders", "memo"), "an unqualified table name means public")
	require.True(t, c.Indexable("sales", "orders", "memo"), "sales.orders is another table")
	require.True(t, *c.Tables["public.contacts"].Fields["email"].Required)
}

func TestParseStrict(t *testing.T) {
	_, err := genome.Parse([]byte("tables:\n  t:\n    fields:\n      a: {indexabel: false}\n"))
	require.ErrorContains(t, err, "indexabel")
	_, err = genome.Parse([]byte("tenant_colum: x\n"))
	require.ErrorContains(t, err, "tenant_colum")
}

func TestLoad(t *testing.T) {
	c, err := genome.Load("")
	require.NoError(t, err)
	require.Empty(t, c.TenantColumn)
	p := filepath.Join(t.TempDir(), "schema_config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("tenant_column: org_id\n"), 0o600))
	c, err = genome.Load(p)
	require.NoError(t, err)
	require.Equal(t, "org_id", c.TenantColumn)
	_, err = genome.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.Error(t, err)
}
