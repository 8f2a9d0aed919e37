package sqlparse

import (
	"errors"
	"fmt"
	"testing"
	"time"

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

// View makes "v" a view on itself (the depth guard must stop it), "w" a
// plain view and "sb" a security_barrier one, so the fuzzer also walks
// view expansion.
func (firstCatalog) View(ref TableRef) (string, bool, bool) {
	switch ref.Name {
	case "v":
		return "SELECT a, b FROM v WHERE a = 1", false, true
	case "w":
		return "SELECT t.a AS x, lower(t.b) AS lb, t.* FROM t JOIN w2 ON w2.k = t.k WHERE t.c IS NULL", false, true
	case "w2":
		return "SELECT k, count(*) AS n FROM u GROUP BY k", false, true
	case "sb":
		return "SELECT * FROM t WHERE secret = false", true, true
	case "bad":
		return "not sql", false, true
	}
	return "", false, false
}

// fuzzDeadline is the longest one input may take: longer is a hang.
const fuzzDeadline = 10 * time.Second

var fuzzSeeds = []string{
	"UPDATE w SET x = $1, lb = $2 WHERE x = $3; ",
	"DELETE FROM v WHERE a = $1",
	"SELECT * FROM v JOIN w ON w.x = v.a JOIN sb USING (a) JOIN bad ON true WHERE lb = $1 AND x > 2 AND sb.b LIKE 'a%' ORDER BY n",
	"WITH c AS NOT MATERIALIZED (SELECT * FROM w), d AS (SELECT DISTINCT a FROM c) SELECT * FROM c, d, (SELECT a FROM t GROUP BY a) g WHERE c.x = d.a AND g.a = $1",
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

// FuzzExtract checks that Extract never panics or hangs and that what it
// returns keeps its promises: a known kind, a fingerprint, no empty or
// duplicate columns in any list (equality, range, null tests, LIKE
// prefixes, join keys, ORDER BY, GROUP BY, expression columns, the
// value-free conditions partial candidates are built on, the columns an
// UPDATE assigns), known predicate kinds, and only the documented error
// classes. FuzzCandidates (package candidates) carries the extraction on
// into index candidates.
func FuzzExtract(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		done := make(chan struct{})
		timer := time.AfterFunc(fuzzDeadline, func() {
			select {
			case <-done:
			default:
				panic(fmt.Sprintf("Extract took more than %s", fuzzDeadline))
			}
		})
		defer func() { close(done); timer.Stop() }()
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
					requireUniqueNonEmpty(t, e.Columns)
					require.Contains(t, []Op{OpEquality, OpRange, OpIsNull, OpLikePrefix}, e.Op, "expression %q", e.Expr)
				}
				// The partial-index conditions and the written columns the
				// candidates and the write model use.
				seenCond := map[Condition]bool{}
				for _, c := range u.Conditions {
					require.NotEmpty(t, c.Column, "condition without a column: %+v", c)
					require.Contains(t, []CondTest{CondIsNull, CondIsNotNull, CondIsTrue, CondIsFalse, CondTrue, CondFalse}, c.Test)
					require.False(t, seenCond[c], "condition %+v twice", c)
					seenCond[c] = true
				}
				requireUniqueNonEmpty(t, u.Updated)
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
