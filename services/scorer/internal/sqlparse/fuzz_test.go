package sqlparse

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// firstCatalog claims every column for the first candidate, so the fuzzer
// also walks the catalog paths.
type firstCatalog struct{}

func (firstCatalog) ColumnTable(candidates []TableRef, _ string) (TableRef, bool) {
	if len(candidates) == 0 {
		return TableRef{}, false
	}
	return candidates[0], true
}

var fuzzSeeds = []string{
	"",
	";",
	"SELECT * FROM users WHERE email = $1",
	"SELECT * FROM users WHERE status IN ($1, $2) AND id = ANY($3) AND a BETWEEN $4 AND $5",
	"SELECT * FROM users WHERE deleted_at IS NULL AND name LIKE 'ab%' AND x LIKE '%y%'",
	"SELECT o.id FROM public.orders o JOIN customers c ON c.id = o.customer_id WHERE c.country = $1 ORDER BY o.created_at DESC NULLS LAST, 2",
	"SELECT * FROM a JOIN b USING (x) JOIN c USING (y) NATURAL JOIN d",
	"SELECT country, count(*) FROM t GROUP BY 1, ROLLUP (a, b), CUBE ((c, d)), GROUPING SETS ((e), ())",
	"WITH RECURSIVE r AS (SELECT id FROM n WHERE id = $1 UNION ALL SELECT n.id FROM n JOIN r ON n.parent = r.id) SELECT * FROM r",
	"SELECT * FROM (SELECT id FROM c WHERE k = $1) s CROSS JOIN LATERAL (SELECT * FROM o WHERE o.cid = s.id LIMIT 1) l",
	"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id) AND id IN (SELECT t_id FROM v) AND x = (SELECT max(y) FROM w)",
	"SELECT * FROM t WHERE (a, b) > ($1, $2) AND (c, d) = ($3, $4) AND (e, f) IN (($5, $6))",
	"SELECT * FROM t WHERE lower(email) = $1 AND created_at::date > $2 AND (data->>'k') LIKE 'a%' AND lower(x) IS NULL",
	"SELECT * FROM t WHERE NOT a AND b IS TRUE AND NOT (c = 1 OR d = 2) AND t IS NULL",
	"SELECT * FROM generate_series(1, $1) g, LATERAL (SELECT * FROM t WHERE t.id = g) x",
	"SELECT * FROM t TABLESAMPLE SYSTEM (10) WHERE a = $1",
	"SELECT * FROM XMLTABLE('/r' PASSING $1 COLUMNS a int) x WHERE a = $2",
	"SELECT a FROM t UNION SELECT b FROM u INTERSECT SELECT c FROM v ORDER BY 1",
	"VALUES ($1, (SELECT 1 FROM t WHERE a = $2))",
	"UPDATE accounts SET balance = balance - $1 WHERE id = $2",
	"UPDATE t SET (a, b) = (SELECT x, y FROM u WHERE u.id = t.id) FROM v WHERE v.k = t.k RETURNING (SELECT 1)",
	"DELETE FROM items i USING orders o WHERE i.order_id = o.id AND o.status = $1",
	"WITH d AS (DELETE FROM q WHERE id = $1 RETURNING *), i AS (INSERT INTO z SELECT * FROM d WHERE d.a = $2) SELECT * FROM d",
	"SELECT cat.sch.tbl.col FROM cat.sch.tbl WHERE cat.sch.tbl.col = $1 AND sch.tbl.x > 1",
	"SELECT * FROM t ORDER BY a USING >, 0, 99999999999, (SELECT 1)",
	`SELECT * FROM t WHERE a COLLATE "C" = $1 AND b = $2 COLLATE "C" AND (d).f = $3 AND e[1] = $4 AND CASE WHEN g THEN h END = $5`,
	"SELECT * FROM t WHERE x LIKE 'ab%' ESCAPE '!' AND y = ANY(SELECT 1) AND (SELECT 1) = z ORDER BY 0",
	"SELECT * FROM (t JOIN u ON t.id = u.tid AND u.k IN (SELECT k FROM v)) AS j WHERE j.id = $1",
	"SELECT DISTINCT ON (a) a, b, count(*) OVER (PARTITION BY c ORDER BY d) FROM t WHERE c = $1 ORDER BY a, b DESC",
	"DELETE FROM t WHERE CURRENT OF c",
	"INSERT INTO t VALUES ($1)",
	"SELECT 1; SELECT 2",
	"SELEC",
}

// FuzzExtract checks that Extract never panics and that what it returns
// keeps its promises: a known kind, a fingerprint, no empty or duplicate
// columns, and only the documented error classes.
func FuzzExtract(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, cat := range []Catalog{nil, firstCatalog{}} {
			st, err := Extract(sql, cat)
			if err != nil {
				require.Nil(t, st)
				require.True(t, errors.Is(err, ErrUnsupported) || errors.Is(err, ErrSyntax), "unexpected error %v", err)
				continue
			}
			require.Contains(t, []Kind{KindSelect, KindUpdate, KindDelete}, st.Kind)
			require.NotEmpty(t, st.Fingerprint)
			seen := map[TableRef]bool{}
			for _, u := range st.Tables {
				require.False(t, seen[u.Table], "table %v listed twice", u.Table)
				seen[u.Table] = true
				for _, list := range [][]string{u.Equality, u.Range, u.IsNull, u.IsNotNull, u.LikePrefix, u.JoinKeys, u.GroupBy} {
					requireUniqueNonEmpty(t, list)
				}
				var order []string
				for _, o := range u.OrderBy {
					order = append(order, o.Column)
				}
				requireUniqueNonEmpty(t, order)
				for _, e := range u.Expressions {
					require.NotEmpty(t, e.Expr)
					require.NotEmpty(t, e.Columns)
				}
			}
		}
	})
}

func requireUniqueNonEmpty(t *testing.T, list []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range list {
		require.NotEmpty(t, c, "empty column in %q", list)
		require.False(t, seen[c], "column %q twice in %q", c, list)
		seen[c] = true
	}
}
