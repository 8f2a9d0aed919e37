package sqlparse

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOddStatementsNeverCrash feeds the extractor what a workload can hold
// besides plain statements: DO blocks and multi-statement strings are
// refused (the scorer counts an error as unparsed), nesting deeper than the
// parser's stack is refused, never a crash; a 1 MB statement and a few
// hundred nested subqueries are read.
func TestOddStatementsNeverCrash(t *testing.T) {
	refused := map[string]string{
		"do block":          "DO $$ BEGIN PERFORM 1; END $$",
		"do block, plpgsql": "DO LANGUAGE plpgsql $$ DECLARE r record; BEGIN FOR r IN SELECT * FROM t LOOP END LOOP; END $$",
		"multi-statement":   "SELECT * FROM t WHERE a = $1; SELECT * FROM u WHERE b = $2",
		"statement + ddl":   "SELECT * FROM t WHERE a = $1; DROP TABLE t",
		"deep parentheses":  "SELECT * FROM t WHERE a = " + strings.Repeat("(", 100_000) + "$1" + strings.Repeat(")", 100_000),
		"deep NOT":          "SELECT * FROM t WHERE " + strings.Repeat("NOT ", 100_000) + "a",
		"deep subqueries":   "SELECT * FROM t WHERE a IN " + strings.Repeat("(SELECT b FROM u WHERE c IN ", 5_000) + "(1)" + strings.Repeat(")", 5_000),
		"1 MB of garbage":   strings.Repeat("x(;'\"", 200_000),
	}
	for name, sql := range refused {
		st, err := Extract(sql, firstCatalog{})
		require.Error(t, err, "%s (%d bytes) should be refused, got %+v", name, len(sql), st)
	}

	big := "SELECT * FROM t WHERE a IN (" + strings.Repeat("$1, ", 250_000) + "$1)"
	require.Greater(t, len(big), 1_000_000)
	st, err := Extract(big, firstCatalog{})
	require.NoError(t, err, "a 1 MB statement")
	require.Equal(t, []string{"a"}, st.Tables[0].Equality, "the 1 MB statement's IN list")

	nested := "SELECT * FROM t WHERE a IN " + strings.Repeat("(SELECT b FROM u WHERE c IN ", 300) + "(1)" + strings.Repeat(")", 300)
	st, err = Extract(nested, firstCatalog{})
	require.NoError(t, err, "300 nested subqueries")
	require.Len(t, st.Tables, 2, "t and u")
}

// TestHostileIdentifiers: quotes, ';', spaces, unicode and mixed case in
// schema, table and column names come back exactly, unquoted.
func TestHostileIdentifiers(t *testing.T) {
	long := strings.Repeat("ü", 31) + "x" // 63 bytes
	require.Len(t, long, 63)
	sql := `SELECT * FROM "we;ird ""schema"""."Tab le;--" WHERE "col; DROP TABLE x" = $1 AND "MiXeD" = $2 AND "` + long + `" > $3`
	st, err := Extract(sql, firstCatalog{})
	require.NoError(t, err)
	require.Len(t, st.Tables, 1)
	u := st.Tables[0]
	require.Equal(t, TableRef{Schema: `we;ird "schema"`, Name: "Tab le;--"}, u.Table)
	require.Equal(t, []string{"col; DROP TABLE x", "MiXeD"}, u.Equality)
	require.Equal(t, []string{long}, u.Range)
}
