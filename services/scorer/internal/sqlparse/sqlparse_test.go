package sqlparse

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// mapCatalog knows the columns of each table, keyed by TableRef.String().
type mapCatalog map[string][]string

func (m mapCatalog) ColumnTable(candidates []TableRef, column string) (TableRef, bool) {
	var found []TableRef
	for _, c := range candidates {
		for _, col := range m[c.String()] {
			if col == column {
				found = append(found, c)
			}
		}
	}
	if len(found) != 1 {
		return TableRef{}, false
	}
	return found[0], true
}

func tbl(name string) TableRef { return TableRef{Name: name} }

func TestExtract(t *testing.T) {
	t.Parallel()
	shop := mapCatalog{
		"orders":    {"id", "customer_id", "status", "created_at", "total"},
		"customers": {"id", "country", "email"},
		"items":     {"id", "order_id", "sku", "qty"},
	}
	tests := []struct {
		name string
		sql  string
		cat  Catalog
		kind Kind
		want []TableUsage
	}{
		{
			name: "equality column = param",
			sql:  "SELECT * FROM users WHERE email = $1",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), Equality: []string{"email"}}},
		},
		{
			name: "equality param = column and constant",
			sql:  "SELECT id FROM users WHERE $1 = email AND tenant_id = 42",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), Equality: []string{"email", "tenant_id"}}},
		},
		{
			name: "IN list and = ANY",
			sql:  "SELECT * FROM users WHERE status IN ($1, $2, $3) AND id = ANY($4) AND role = ANY(ARRAY['a','b'])",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), Equality: []string{"status", "id", "role"}}},
		},
		{
			name: "NOT IN, <> and <> ALL are not equality",
			sql:  "SELECT * FROM users WHERE status NOT IN ($1, $2) AND kind <> $3 AND id <> ALL($4)",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users")}},
		},
		{
			name: "range operators and BETWEEN",
			sql:  "SELECT * FROM events WHERE a < $1 AND b > $2 AND c <= $3 AND $4 >= d AND e BETWEEN $5 AND $6 AND f BETWEEN SYMMETRIC $7 AND $8",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("events"), Range: []string{"a", "b", "c", "d", "e", "f"}}},
		},
		{
			name: "NOT BETWEEN is not a range",
			sql:  "SELECT * FROM events WHERE e NOT BETWEEN $1 AND $2",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("events")}},
		},
		{
			name: "value side expression without columns",
			sql:  "SELECT * FROM events WHERE created_at > now() - $1::interval AND kind = lower($2)",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("events"), Equality: []string{"kind"}, Range: []string{"created_at"}}},
		},
		{
			name: "IS NULL and IS NOT NULL",
			sql:  "SELECT * FROM users WHERE deleted_at IS NULL AND email IS NOT NULL",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), IsNull: []string{"deleted_at"}, IsNotNull: []string{"email"},
				Conditions: []Condition{{"deleted_at", CondIsNull}, {"email", CondIsNotNull}}}},
		},
		{
			name: "value-free conditions: only top-level AND terms of WHERE",
			sql: "SELECT * FROM t WHERE active AND NOT archived AND (deleted_at IS NULL) AND flag IS TRUE AND other IS FALSE " +
				"AND (x IS NULL OR y IS NULL) AND NOT (z IS NULL) AND w IS NOT TRUE AND a = $1 AND active",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t"), Equality: []string{"active", "archived", "flag", "other", "a"},
				IsNull: []string{"deleted_at", "x", "y"},
				Conditions: []Condition{{"active", CondTrue}, {"archived", CondFalse}, {"deleted_at", CondIsNull},
					{"flag", CondIsTrue}, {"other", CondIsFalse}}}},
		},
		{
			name: "conditions: outer join's nullable side, ON clauses and correlated references give none",
			sql: "SELECT * FROM orders o LEFT JOIN customers c ON c.id = o.customer_id AND c.deleted_at IS NULL " +
				"WHERE c.deleted_at IS NULL AND o.deleted_at IS NULL " +
				"AND EXISTS (SELECT 1 FROM items i WHERE i.order_id = o.id AND o.active AND i.deleted_at IS NULL)",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), JoinKeys: []string{"customer_id", "id"}, IsNull: []string{"deleted_at"}, Equality: []string{"active"},
					Conditions: []Condition{{"deleted_at", CondIsNull}}},
				{Table: tbl("customers"), JoinKeys: []string{"id"}, IsNull: []string{"deleted_at"}},
				{Table: tbl("items"), JoinKeys: []string{"order_id"}, IsNull: []string{"deleted_at"},
					Conditions: []Condition{{"deleted_at", CondIsNull}}},
			},
		},
		{
			name: "conditions: UPDATE and DELETE",
			sql:  "UPDATE t SET n = $1 WHERE id = $2 AND deleted_at IS NULL",
			kind: KindUpdate,
			want: []TableUsage{{Table: tbl("t"), Equality: []string{"id"}, IsNull: []string{"deleted_at"},
				Conditions: []Condition{{"deleted_at", CondIsNull}}, Updated: []string{"n"}}},
		},
		{
			name: "LIKE constant prefix only",
			sql: "SELECT * FROM users WHERE name LIKE 'ab%' AND a LIKE '%x%' AND b LIKE '_x%' AND c LIKE $1 " +
				"AND d ILIKE 'ab%' AND e NOT LIKE 'ab%' AND f LIKE 'exact'",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), LikePrefix: []string{"name", "f"}}},
		},
		{
			name: "JOIN ON with aliases and schema",
			sql: "SELECT o.id FROM public.orders o JOIN public.customers c ON c.id = o.customer_id " +
				"WHERE c.country = $1 AND o.status = $2",
			kind: KindSelect,
			want: []TableUsage{
				{Table: TableRef{"public", "orders"}, Equality: []string{"status"}, JoinKeys: []string{"customer_id"}},
				{Table: TableRef{"public", "customers"}, Equality: []string{"country"}, JoinKeys: []string{"id"}},
			},
		},
		{
			name: "JOIN USING and LEFT JOIN",
			sql:  "SELECT * FROM orders JOIN items USING (order_id) LEFT JOIN notes n ON n.item_id = items.id",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), JoinKeys: []string{"order_id"}},
				{Table: tbl("items"), JoinKeys: []string{"order_id", "id"}},
				{Table: tbl("notes"), JoinKeys: []string{"item_id"}},
			},
		},
		{
			name: "JOIN USING on a nested join needs the catalog",
			sql:  "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id JOIN items USING (order_id)",
			cat:  mapCatalog{"orders": {"order_id"}, "customers": {"id"}},
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), JoinKeys: []string{"customer_id", "order_id"}},
				{Table: tbl("customers"), JoinKeys: []string{"id"}},
				{Table: tbl("items"), JoinKeys: []string{"order_id"}},
			},
		},
		{
			name: "comma join in WHERE",
			sql:  "SELECT * FROM orders o, customers c WHERE o.customer_id = c.id AND c.country = $1",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), JoinKeys: []string{"customer_id"}},
				{Table: tbl("customers"), Equality: []string{"country"}, JoinKeys: []string{"id"}},
			},
		},
		{
			name: "self join keeps both keys on the one table",
			sql:  "SELECT e.name FROM emp e JOIN emp m ON m.id = e.manager_id WHERE m.dept = $1",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("emp"), Equality: []string{"dept"}, JoinKeys: []string{"id", "manager_id"}}},
		},
		{
			name: "same item column comparison is ignored",
			sql:  "SELECT * FROM t WHERE t.a = t.b AND t.c < t.d",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t")}},
		},
		{
			name: "ORDER BY direction, nulls, ordinal and output alias",
			sql: "SELECT id, created_at AS c, score FROM posts WHERE author_id = $1 " +
				"ORDER BY c DESC, score NULLS FIRST, 1, lower(title), id DESC LIMIT $2",
			kind: KindSelect,
			want: []TableUsage{{
				Table:    tbl("posts"),
				Equality: []string{"author_id"},
				OrderBy: []OrderCol{
					{Column: "created_at", Desc: true, NullsFirst: true},
					{Column: "score", NullsFirst: true},
					{Column: "id"},
				},
			}},
		},
		{
			name: "ORDER BY on an expression alias is not a column",
			sql:  "SELECT lower(name) AS name FROM users ORDER BY name DESC NULLS LAST",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users")}},
		},
		{
			name: "ORDER BY columns of two tables",
			sql:  "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY c.country, o.created_at DESC",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), JoinKeys: []string{"customer_id"}, OrderBy: []OrderCol{{Column: "created_at", Desc: true, NullsFirst: true}}},
				{Table: tbl("customers"), JoinKeys: []string{"id"}, OrderBy: []OrderCol{{Column: "country"}}},
			},
		},
		{
			name: "GROUP BY columns, ordinal and grouping sets",
			sql:  "SELECT country, status, count(*) FROM accounts WHERE plan = $1 GROUP BY 1, ROLLUP (status, region), (country, city)",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("accounts"), Equality: []string{"plan"}, GroupBy: []string{"country", "status", "region", "city"}}},
		},
		{
			name: "GROUP BY and ORDER BY output names without a catalog",
			sql:  "SELECT lower(name) AS name, d AS day FROM users GROUP BY name, day ORDER BY name, day",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), GroupBy: []string{"d"}, OrderBy: []OrderCol{{Column: "d"}}}},
		},
		{
			name: "GROUP BY prefers an input column the catalog knows, ORDER BY the output column",
			sql:  "SELECT lower(name) AS name, d AS day FROM users GROUP BY name, day ORDER BY name, day",
			cat:  mapCatalog{"users": {"name", "d"}},
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), GroupBy: []string{"name", "d"}, OrderBy: []OrderCol{{Column: "d"}}}},
		},
		{
			name: "correlated EXISTS and IN subquery",
			sql: "SELECT * FROM orders o WHERE o.status = $1 AND EXISTS (SELECT 1 FROM items i WHERE i.order_id = o.id AND i.sku = $2) " +
				"AND o.customer_id IN (SELECT id FROM customers WHERE country = $3)",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), Equality: []string{"status"}, JoinKeys: []string{"id", "customer_id"}},
				{Table: tbl("items"), Equality: []string{"sku"}, JoinKeys: []string{"order_id"}},
				{Table: tbl("customers"), Equality: []string{"country"}},
			},
		},
		{
			name: "scalar subquery as the value side",
			sql:  "SELECT * FROM orders WHERE id = (SELECT max(order_id) FROM items WHERE sku = $1)",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), Equality: []string{"id"}},
				{Table: tbl("items"), Equality: []string{"sku"}},
			},
		},
		{
			name: "subquery in the select list",
			sql:  "SELECT o.id, (SELECT count(*) FROM items i WHERE i.order_id = o.id) FROM orders o WHERE o.total > $1",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), Range: []string{"total"}, JoinKeys: []string{"id"}},
				{Table: tbl("items"), JoinKeys: []string{"order_id"}},
			},
		},
		{
			name: "MATERIALIZED CTE is not a table; its body is walked, outer predicates stay outside",
			sql: "WITH recent AS MATERIALIZED (SELECT * FROM orders WHERE created_at > $1) " +
				"SELECT * FROM recent r JOIN customers c ON c.id = r.customer_id WHERE c.email = $2 AND r.status = $3",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), Range: []string{"created_at"}},
				{Table: tbl("customers"), Equality: []string{"email"}},
			},
		},
		{
			name: "CTE referenced once is inlined: outer predicates and join keys reach its table",
			sql: "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) " +
				"SELECT * FROM recent r JOIN customers c ON c.id = r.customer_id WHERE c.email = $2 AND r.status = $3",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("customers"), Equality: []string{"email"}, JoinKeys: []string{"id"}},
				{Table: tbl("orders"), Equality: []string{"status"}, Range: []string{"created_at"}, JoinKeys: []string{"customer_id"}},
			},
		},
		{
			name: "recursive CTE",
			sql: "WITH RECURSIVE tree AS (SELECT id, parent_id FROM nodes WHERE id = $1 " +
				"UNION ALL SELECT n.id, n.parent_id FROM nodes n JOIN tree t ON n.parent_id = t.id) SELECT * FROM tree",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("nodes"), Equality: []string{"id"}}},
		},
		{
			name: "FROM subquery and LATERAL",
			sql: "SELECT * FROM (SELECT id FROM customers WHERE country = $1) c " +
				"CROSS JOIN LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id ORDER BY o.created_at DESC LIMIT 1) last",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("customers"), Equality: []string{"country"}, JoinKeys: []string{"id"}},
				{Table: tbl("orders"), Equality: []string{"customer_id"}, JoinKeys: []string{"customer_id"}, OrderBy: []OrderCol{{Column: "created_at", Desc: true, NullsFirst: true}}},
			},
		},
		{
			name: "UNION walks both sides",
			sql:  "SELECT id FROM a WHERE x = $1 UNION SELECT id FROM b WHERE y > $2 ORDER BY 1",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("a"), Equality: []string{"x"}},
				{Table: tbl("b"), Range: []string{"y"}},
			},
		},
		{
			name: "OR branches count, NOT does not",
			sql:  "SELECT * FROM t WHERE tenant = $1 AND (a = $2 OR b > $3) AND NOT (c = $4) AND NOT archived AND active",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t"), Equality: []string{"tenant", "a", "archived", "active"}, Range: []string{"b"},
				Conditions: []Condition{{"archived", CondFalse}, {"active", CondTrue}}}},
		},
		{
			name: "row comparison",
			sql:  "SELECT * FROM t WHERE (a, b) = ($1, $2) AND (c, d) > ($3, $4)",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t"), Equality: []string{"a", "b"}, Range: []string{"c"}}},
		},
		{
			name: "expression usages are not plain columns",
			sql: "SELECT * FROM users u WHERE lower(u.email) = $1 AND created_at::date = $2 AND (data->>'k') = $3 " +
				"AND upper(name) LIKE 'AB%' AND coalesce(score, 0) > $4 AND lower(nick) IS NULL",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("users"), Expressions: []ExprUsage{
				{Expr: "lower(email)", Columns: []string{"email"}, Op: OpEquality},
				{Expr: "created_at::date", Columns: []string{"created_at"}, Op: OpEquality},
				{Expr: "data ->> 'k'", Columns: []string{"data"}, Op: OpEquality},
				{Expr: "upper(name)", Columns: []string{"name"}, Op: OpLikePrefix},
				{Expr: "COALESCE(score, 0)", Columns: []string{"score"}, Op: OpRange},
				{Expr: "lower(nick)", Columns: []string{"nick"}, Op: OpIsNull},
			}}},
		},
		{
			name: "collation: on the column an expression, on the value nothing",
			sql:  `SELECT * FROM t WHERE a COLLATE "C" = $1 AND b = $2 COLLATE "C" AND c = $3`,
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t"), Equality: []string{"c"}, Expressions: []ExprUsage{
				{Expr: `a COLLATE "C"`, Columns: []string{"a"}, Op: OpEquality},
			}}},
		},
		{
			name: "LIKE with ESCAPE is not a constant prefix",
			sql:  `SELECT * FROM t WHERE x LIKE 'ab%' ESCAPE '!'`,
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t")}},
		},
		{
			name: "expression over two tables is dropped",
			sql:  "SELECT * FROM a JOIN b ON a.id = b.id WHERE a.x + b.y = $1",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("a"), JoinKeys: []string{"id"}},
				{Table: tbl("b"), JoinKeys: []string{"id"}},
			},
		},
		{
			name: "schema-qualified column reference",
			sql:  "SELECT * FROM app.users WHERE app.users.email = $1 AND users.id > $2",
			kind: KindSelect,
			want: []TableUsage{{Table: TableRef{"app", "users"}, Equality: []string{"email"}, Range: []string{"id"}}},
		},
		{
			name: "quoted identifiers keep their case",
			sql:  `SELECT * FROM "Accounts" WHERE "Email" = $1`,
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("Accounts"), Equality: []string{"Email"}}},
		},
		{
			name: "system columns and whole-row references are dropped",
			sql:  "SELECT t.* FROM t WHERE ctid = $1 AND t.xmin > $2 AND t IS NULL",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("t")}},
		},
		{
			name: "unqualified column with several tables and no catalog is dropped",
			sql:  "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE country = $1 AND o.status = $2",
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), Equality: []string{"status"}, JoinKeys: []string{"customer_id"}},
				{Table: tbl("customers"), JoinKeys: []string{"id"}},
			},
		},
		{
			name: "unqualified column resolved by the catalog",
			sql:  "SELECT * FROM orders o JOIN customers c ON c.id = customer_id WHERE country = $1 AND status = $2 ORDER BY created_at",
			cat:  shop,
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), Equality: []string{"status"}, JoinKeys: []string{"customer_id"}, OrderBy: []OrderCol{{Column: "created_at"}}},
				{Table: tbl("customers"), Equality: []string{"country"}, JoinKeys: []string{"id"}},
			},
		},
		{
			name: "correlated unqualified column falls back to the outer query with a catalog",
			sql:  "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM items WHERE order_id = id AND sku = $1)",
			cat:  mapCatalog{"orders": {"id", "status"}, "items": {"order_id", "sku"}},
			kind: KindSelect,
			want: []TableUsage{
				{Table: tbl("orders"), JoinKeys: []string{"id"}},
				{Table: tbl("items"), Equality: []string{"sku"}, JoinKeys: []string{"order_id"}},
			},
		},
		{
			name: "UPDATE with WHERE",
			sql:  "UPDATE accounts SET balance = balance - $1, updated_at = now() WHERE id = $2 AND status = $3",
			kind: KindUpdate,
			want: []TableUsage{{Table: tbl("accounts"), Equality: []string{"id", "status"}, Updated: []string{"balance", "updated_at"}}},
		},
		{
			name: "UPDATE FROM join with alias and subquery in SET",
			sql: "UPDATE public.orders AS o SET total = (SELECT sum(qty) FROM items WHERE items.order_id = o.id) " +
				"FROM customers c WHERE c.id = o.customer_id AND c.country = $1 RETURNING o.id",
			kind: KindUpdate,
			want: []TableUsage{
				{Table: TableRef{"public", "orders"}, JoinKeys: []string{"customer_id", "id"}, Updated: []string{"total"}},
				{Table: tbl("customers"), Equality: []string{"country"}, JoinKeys: []string{"id"}},
				{Table: tbl("items"), JoinKeys: []string{"order_id"}},
			},
		},
		{
			name: "DELETE with WHERE",
			sql:  "DELETE FROM sessions WHERE expires_at < $1 AND user_id = $2",
			kind: KindDelete,
			want: []TableUsage{{Table: tbl("sessions"), Equality: []string{"user_id"}, Range: []string{"expires_at"}}},
		},
		{
			name: "DELETE USING",
			sql:  "DELETE FROM items i USING orders o WHERE i.order_id = o.id AND o.status = $1",
			kind: KindDelete,
			want: []TableUsage{
				{Table: tbl("items"), JoinKeys: []string{"order_id"}},
				{Table: tbl("orders"), Equality: []string{"status"}, JoinKeys: []string{"id"}},
			},
		},
		{
			name: "DELETE without WHERE lists the table",
			sql:  "DELETE FROM tmp",
			kind: KindDelete,
			want: []TableUsage{{Table: tbl("tmp")}},
		},
		{
			name: "data-modifying CTE",
			sql:  "WITH gone AS (DELETE FROM queue WHERE id = $1 RETURNING *) SELECT * FROM gone",
			kind: KindSelect,
			want: []TableUsage{{Table: tbl("queue"), Equality: []string{"id"}}},
		},
		{
			name: "no tables",
			sql:  "SELECT $1::int + 1",
			kind: KindSelect,
			want: []TableUsage{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Extract(tc.sql, tc.cat)
			require.NoError(t, err, "sql: %s", tc.sql)
			require.Equal(t, tc.kind, got.Kind, "sql: %s", tc.sql)
			require.NotEmpty(t, got.Fingerprint, "sql: %s", tc.sql)
			require.Equal(t, tc.want, got.Tables, "sql: %s", tc.sql)
		})
	}
}

func TestExtractErrors(t *testing.T) {
	t.Parallel()
	unsupported := []string{
		"",
		"   ;  ",
		"INSERT INTO t (a) VALUES ($1)",
		"INSERT INTO t SELECT * FROM u WHERE id = $1",
		"SELECT 1; SELECT 2",
		"SELECT * INTO newt FROM t WHERE a = $1",
		"CREATE INDEX ON t (a)",
		"VACUUM t",
		"EXPLAIN SELECT * FROM t WHERE a = $1",
		"BEGIN",
		"SET search_path = public",
		"MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
	}
	for _, sql := range unsupported {
		_, err := Extract(sql, nil)
		require.ErrorIs(t, err, ErrUnsupported, "sql: %q", sql)
		require.NotErrorIs(t, err, ErrSyntax, "sql: %q", sql)
	}
	for _, sql := range []string{"SELEC * FROM t", "SELECT * FROM t WHERE", "SELECT 'unterminated"} {
		_, err := Extract(sql, nil)
		require.ErrorIs(t, err, ErrSyntax, "sql: %q", sql)
		require.NotErrorIs(t, err, ErrUnsupported, "sql: %q", sql)
		require.Contains(t, err.Error(), "parse statement: ", "sql: %q", sql)
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	a, err := Extract("SELECT * FROM users WHERE id = $1", nil)
	require.NoError(t, err)
	b, err := Extract("select *   from users where id = 42", nil)
	require.NoError(t, err)
	c, err := Extract("SELECT * FROM users WHERE email = $1", nil)
	require.NoError(t, err)
	require.Equal(t, a.Fingerprint, b.Fingerprint, "constants and spacing must not change the fingerprint")
	require.NotEqual(t, a.Fingerprint, c.Fingerprint, "a different column must change the fingerprint")
}

func TestStatementTable(t *testing.T) {
	t.Parallel()
	st, err := Extract("SELECT * FROM a JOIN b ON a.id = b.a_id", nil)
	require.NoError(t, err)
	u, ok := st.Table(tbl("b"))
	require.True(t, ok)
	require.Equal(t, []string{"a_id"}, u.JoinKeys)
	_, ok = st.Table(TableRef{"public", "b"})
	require.False(t, ok, "an unqualified table is not matched with a schema")
	var nilStmt *Statement
	_, ok = nilStmt.Table(tbl("a"))
	require.False(t, ok)
	require.Equal(t, "public.b", TableRef{"public", "b"}.String())
	require.Equal(t, "b", tbl("b").String())
}
