package sqlparse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// viewCatalog is a mapCatalog that also knows view definitions.
type viewCatalog struct {
	mapCatalog
	views    map[string]string
	barriers map[string]bool
}

func (v viewCatalog) View(ref TableRef) (string, bool, bool) {
	def, ok := v.views[ref.String()]
	return def, v.barriers[ref.String()], ok
}

// brief renders the usage of each table compactly: "t: eq=a,b range=c".
func brief(st *Statement) []string {
	var out []string
	for _, u := range st.Tables {
		var parts []string
		add := func(name string, cols []string) {
			if len(cols) > 0 {
				parts = append(parts, name+"="+strings.Join(cols, ","))
			}
		}
		add("eq", u.Equality)
		add("range", u.Range)
		add("null", u.IsNull)
		add("like", u.LikePrefix)
		add("join", u.JoinKeys)
		var order []string
		for _, o := range u.OrderBy {
			order = append(order, fmt.Sprintf("%s%s", o.Column, map[bool]string{true: " desc"}[o.Desc]))
		}
		add("order", order)
		var exprs []string
		for _, x := range u.Expressions {
			exprs = append(exprs, x.Expr+" "+string(x.Op))
		}
		add("expr", exprs)
		var conds []string
		for _, c := range u.Conditions {
			conds = append(conds, c.Column+" "+string(c.Test))
		}
		add("cond", conds)
		add("upd", u.Updated)
		out = append(out, u.Table.String()+": "+strings.Join(parts, " "))
	}
	return out
}

func TestExtractFollowsPlannerRewrites(t *testing.T) {
	t.Parallel()
	cat := viewCatalog{
		mapCatalog: mapCatalog{
			"orders":    {"id", "customer_id", "status", "created_at", "total", "deleted_at"},
			"customers": {"id", "country", "email"},
		},
		views: map[string]string{
			"live_orders":  " SELECT o.id, o.customer_id AS cust, o.status, o.created_at\n   FROM orders o\n  WHERE o.deleted_at IS NULL;",
			"eu_orders":    " SELECT lo.id, lo.cust, lo.status, c.email FROM live_orders lo JOIN customers c ON c.id = lo.cust WHERE c.country = 'de';",
			"secure":       " SELECT id, status FROM orders WHERE total > 0",
			"order_counts": " SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id",
		},
		barriers: map[string]bool{"secure": true},
	}
	tests := []struct {
		name string
		sql  string
		cat  Catalog
		want []string
	}{
		{
			name: "FROM subquery pulled up: outer filter and order reach the table",
			sql:  "SELECT * FROM (SELECT id, status AS s, created_at FROM orders WHERE total > $1) x WHERE x.s = $2 ORDER BY created_at DESC LIMIT 5",
			want: []string{"orders: eq=status range=total order=created_at desc"},
		},
		{
			name: "a filter on a GROUP BY column is pushed into the grouped subquery",
			sql:  "SELECT * FROM (SELECT customer_id, count(*) n FROM orders GROUP BY customer_id) x WHERE x.customer_id = $1 AND n > $2",
			want: []string{"orders: eq=customer_id"},
		},
		{
			name: "a grouped subquery is not pulled up: no join key or sort through it",
			sql:  "SELECT * FROM customers c JOIN (SELECT customer_id, count(*) n FROM orders GROUP BY customer_id) x ON x.customer_id = c.id ORDER BY x.customer_id",
			want: []string{"customers: ", "orders: "},
		},
		{
			name: "DISTINCT subquery: filters pushed",
			sql:  "SELECT * FROM (SELECT DISTINCT status, customer_id FROM orders) x WHERE status = $1",
			want: []string{"orders: eq=status"},
		},
		{
			name: "DISTINCT ON and window subqueries are fences",
			sql:  "SELECT * FROM (SELECT DISTINCT ON (status) status FROM orders) x, (SELECT id, row_number() OVER () FROM customers) y WHERE x.status = $1 AND y.id = $2",
			want: []string{"orders: ", "customers: "},
		},
		{
			name: "subquery with LIMIT stays a fence",
			sql:  "SELECT * FROM (SELECT * FROM orders ORDER BY id LIMIT 10) x WHERE status = $1",
			cat:  cat,
			want: []string{"orders: order=id"},
		},
		{
			name: "column aliases of the subquery rename by position",
			sql:  "SELECT * FROM (SELECT id, status FROM orders) AS x(k, st) WHERE st = $1 AND k > $2",
			want: []string{"orders: eq=status range=id"},
		},
		{
			name: "star subquery with a catalog",
			sql:  "SELECT * FROM (SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id) x WHERE x.country = $1 AND x.status = $2",
			cat:  cat,
			want: []string{"orders: eq=status join=customer_id", "customers: eq=country join=id"},
		},
		{
			name: "outer condition through a pulled-up query is a partial-index condition",
			sql:  "SELECT * FROM (SELECT * FROM orders) x WHERE x.deleted_at IS NULL AND x.customer_id = $1",
			want: []string{"orders: eq=customer_id null=deleted_at cond=deleted_at is_null"},
		},
		{
			name: "expression on an output column of a pulled-up query",
			sql:  "SELECT * FROM (SELECT lower(email) AS le FROM customers) x WHERE le = $1",
			want: []string{"customers: expr=lower(email) equality"},
		},
		{
			name: "CTE referenced twice is materialized",
			sql:  "WITH c AS (SELECT * FROM orders WHERE total > $1) SELECT * FROM c a JOIN c b ON a.id = b.id WHERE a.status = $2",
			want: []string{"orders: range=total"},
		},
		{
			name: "NOT MATERIALIZED CTE is inlined at each reference",
			sql:  "WITH c AS NOT MATERIALIZED (SELECT * FROM orders) SELECT * FROM c a JOIN c b ON a.customer_id = b.id WHERE a.status = $1",
			want: []string{"orders: eq=status join=customer_id,id"},
		},
		{
			name: "CTE with a volatile function is not inlined",
			sql:  "WITH c AS (SELECT id, random() r FROM orders) SELECT * FROM c WHERE id = $1",
			want: []string{"orders: "},
		},
		{
			name: "unreferenced CTE is dropped, like the planner does",
			sql:  "WITH c AS (SELECT * FROM customers WHERE country = $1) SELECT * FROM orders WHERE id = $2",
			want: []string{"orders: eq=id"},
		},
		{
			name: "CTE column list renames",
			sql:  "WITH c(k, st) AS (SELECT id, status FROM orders) SELECT * FROM c WHERE st = $1 ORDER BY k",
			want: []string{"orders: eq=status order=id"},
		},
		{
			name: "view expanded: filter on a renamed view column, the view's own condition kept",
			sql:  "SELECT * FROM live_orders WHERE cust = $1 ORDER BY created_at DESC LIMIT 10",
			cat:  cat,
			want: []string{"orders: eq=customer_id null=deleted_at order=created_at desc cond=deleted_at is_null"},
		},
		{
			name: "nested views expand to the base tables",
			sql:  "SELECT * FROM eu_orders WHERE status = $1 AND email = $2",
			cat:  cat,
			want: []string{"customers: eq=country,email join=id", "orders: eq=status null=deleted_at join=customer_id cond=deleted_at is_null"},
		},
		{
			name: "security_barrier view: leakproof comparisons reach the table, LIKE and functions do not",
			sql:  "SELECT * FROM secure WHERE status = $1 AND id > $2 AND status LIKE 'a%' AND lower(status) = $3",
			cat:  cat,
			want: []string{"orders: eq=status range=total,id"},
		},
		{
			name: "grouped view: a filter on an aggregate stays above it",
			sql:  "SELECT * FROM order_counts WHERE n > $1",
			cat:  cat,
			want: []string{"orders: "},
		},
		{
			name: "grouped view: a filter on the grouping column is pushed down",
			sql:  "SELECT * FROM order_counts WHERE customer_id = $1",
			cat:  cat,
			want: []string{"orders: eq=customer_id"},
		},
		{
			name: "UPDATE of an auto-updatable view writes its base table",
			sql:  "UPDATE live_orders SET status = $1, cust = $2 WHERE cust = $3 AND created_at < $4",
			cat:  cat,
			want: []string{"orders: eq=customer_id range=created_at null=deleted_at cond=deleted_at is_null upd=status,customer_id"},
		},
		{
			name: "DELETE from a view",
			sql:  "DELETE FROM live_orders lo WHERE lo.cust = $1",
			cat:  cat,
			want: []string{"orders: eq=customer_id null=deleted_at cond=deleted_at is_null"},
		},
		{
			name: "a view in a CTE",
			sql:  "WITH x AS (SELECT * FROM live_orders WHERE status = $1) SELECT * FROM x WHERE cust = $2",
			cat:  cat,
			want: []string{"orders: eq=status,customer_id null=deleted_at cond=deleted_at is_null"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Extract(tc.sql, tc.cat)
			require.NoError(t, err)
			require.Equal(t, tc.want, brief(got), "sql: %s", tc.sql)
		})
	}
}

func TestExtractEquivalenceClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql  string
		want []string
	}{
		{"SELECT * FROM a JOIN b ON a.x = b.y WHERE b.y = $1", []string{"a: eq=x join=x", "b: eq=y join=y"}},
		{"SELECT * FROM a, b, c WHERE a.x = b.y AND b.y = c.z AND c.z = 5", []string{"a: eq=x join=x", "b: eq=y join=y", "c: eq=z join=z"}},
		{"SELECT * FROM a JOIN b USING (k) WHERE a.k = $1", []string{"a: eq=k join=k", "b: eq=k join=k"}},
		// Under OR, or through an outer join's ON, columns are not equal.
		{"SELECT * FROM a, b WHERE a.x = b.y OR b.y = $1", []string{"a: join=x", "b: eq=y join=y"}},
		{"SELECT * FROM a LEFT JOIN b ON a.x = b.y WHERE a.x = $1", []string{"a: eq=x join=x", "b: join=y"}},
		// Through a pulled-up subquery.
		{"SELECT * FROM a JOIN (SELECT y FROM b) s ON s.y = a.x WHERE a.x = $1", []string{"a: eq=x join=x", "b: eq=y join=y"}},
	}
	for _, tc := range tests {
		got, err := Extract(tc.sql, nil)
		require.NoError(t, err)
		require.Equal(t, tc.want, brief(got), "sql: %s", tc.sql)
	}
}

func TestExtractUpdatedColumns(t *testing.T) {
	t.Parallel()
	st, err := Extract("UPDATE orders o SET status = $1, (total, note) = ($2, $3), tags[1] = $4, status = $5 FROM customers c WHERE c.id = o.customer_id AND c.country = $6 AND o.created_at < $7", nil)
	require.NoError(t, err)
	require.Equal(t, KindUpdate, st.Kind)
	orders, ok := st.Table(tbl("orders"))
	require.True(t, ok)
	require.Equal(t, []string{"status", "total", "note", "tags"}, orders.Updated)
	require.Equal(t, []string{"created_at"}, orders.Range, "the WHERE clause of an UPDATE gives candidates like a SELECT's")
	customers, ok := st.Table(tbl("customers"))
	require.True(t, ok)
	require.Empty(t, customers.Updated, "a table the UPDATE only reads")
	require.Equal(t, []string{"country"}, customers.Equality)

	st, err = Extract("WITH moved AS (UPDATE queue SET state = $1 WHERE id = $2 RETURNING id) DELETE FROM jobs WHERE queue_id IN (SELECT id FROM moved)", nil)
	require.NoError(t, err)
	queue, ok := st.Table(tbl("queue"))
	require.True(t, ok)
	require.Equal(t, []string{"state"}, queue.Updated)
	require.Equal(t, []string{"id"}, queue.Equality)
	jobs, _ := st.Table(tbl("jobs"))
	require.Equal(t, []string{"queue_id"}, jobs.JoinKeys)
}

func TestExtractSquashedInList(t *testing.T) {
	t.Parallel()
	// PostgreSQL 18 normalizes constant lists to IN ($1 /*, ... */).
	for _, pair := range [][2]string{
		{"SELECT * FROM t WHERE a IN ($1 /*, ... */) AND b = $2", "SELECT * FROM t WHERE a IN ($1, $2, $3) AND b = $4"},
		{"SELECT * FROM t WHERE a = ANY(ARRAY[$1 /*, ... */]) ORDER BY c LIMIT $2", "SELECT * FROM t WHERE a = ANY(ARRAY[$1, $2]) ORDER BY c LIMIT $3"},
	} {
		squashed, err := Extract(pair[0], nil)
		require.NoError(t, err)
		full, err := Extract(pair[1], nil)
		require.NoError(t, err)
		require.Equal(t, full.Tables, squashed.Tables, "sql: %s", pair[0])
		require.Equal(t, full.Fingerprint, squashed.Fingerprint, "PG17 and PG18 forms must not split: %s", pair[0])
		require.NotEmpty(t, squashed.Tables[0].Equality)
	}
}
