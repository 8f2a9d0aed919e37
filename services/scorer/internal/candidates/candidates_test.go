package candidates

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

// in extracts sql and resolves unqualified tables to "public", as the
// caller of Generate does.
func in(t *testing.T, queryID, sql string) Input {
	t.Helper()
	st, err := sqlparse.Extract(sql, nil)
	require.NoError(t, err, "sql: %s", sql)
	for i := range st.Tables {
		if st.Tables[i].Table.Schema == "" {
			st.Tables[i].Table.Schema = "public"
		}
	}
	return Input{QueryID: queryID, Stmt: st}
}

// keys renders candidates as "schema.table(cols)=ids" for compact
// comparisons, leaving out the schema when it is "public".
func keys(cands []Candidate) []string {
	out := make([]string, 0, len(cands))
	for _, c := range cands {
		table := strings.TrimPrefix(c.Spec.QualifiedTable(), "public.")
		cols := make([]string, len(c.Spec.Columns))
		for i, col := range c.Spec.Columns {
			cols[i] = col
			if d := c.Spec.ColumnDirection(i); d != "" {
				cols[i] += " " + d
			}
		}
		out = append(out, table+"("+strings.Join(cols, ",")+")="+strings.Join(c.QueryIDs, ","))
	}
	return out
}

func btree(table string, cols ...string) indexdef.Existing {
	return indexdef.Existing{Schema: "public", Table: table, Name: "some_name", Method: "btree", Columns: cols, Valid: true, Ready: true}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  []string
		// want is in Spec.Key() order: "t|btree|a,b|" sorts before
		// "t|btree|a|" because ',' < '|'.
		existing map[string][]indexdef.Existing
		opts     Options
		want     []string
	}{
		{
			name: "equality columns first in appearance order, then each range column",
			sql:  []string{"SELECT * FROM t WHERE status = $1 AND created_at > $2 AND tenant_id = $3 AND score < $4"},
			want: []string{
				"t(created_at)=q0",
				"t(score)=q0",
				"t(status,tenant_id,created_at)=q0",
				"t(status,tenant_id,score)=q0",
				"t(status,tenant_id)=q0",
				"t(status)=q0",
				"t(tenant_id)=q0",
			},
		},
		{
			name: "equality then the sort column",
			sql:  []string{"SELECT * FROM posts WHERE author_id = $1 ORDER BY created_at DESC LIMIT 10"},
			want: []string{"posts(author_id,created_at)=q0", "posts(author_id)=q0", "posts(created_at)=q0"},
		},
		{
			name: "an ORDER BY column fixed by equality is skipped for the sort column",
			sql:  []string{"SELECT * FROM posts WHERE author_id = $1 ORDER BY author_id, id"},
			want: []string{"posts(author_id,id)=q0", "posts(author_id)=q0", "posts(id)=q0"},
		},
		{
			name: "ORDER BY of two columns without a filter gives the composite that delivers the order",
			sql:  []string{"SELECT * FROM t ORDER BY a, b LIMIT 10"},
			want: []string{"t(a,b)=q0", "t(a)=q0", "t(b)=q0"},
		},
		{
			name: "equality columns then every ORDER BY column in order",
			sql:  []string{"SELECT * FROM t WHERE k = $1 ORDER BY a, b LIMIT 10"},
			want: []string{"t(a)=q0", "t(b)=q0", "t(k,a,b)=q0", "t(k)=q0"},
		},
		{
			name: "uniform reverse order reuses the forward index",
			sql:  []string{"SELECT * FROM t ORDER BY a DESC, b DESC LIMIT 10", "SELECT * FROM t ORDER BY a, b LIMIT 10"},
			want: []string{"t(a,b)=q0,q1", "t(a)=q0,q1", "t(b)=q0,q1"},
		},
		{
			name: "mixed directions keep the written ones",
			sql:  []string{"SELECT * FROM t ORDER BY a DESC, b LIMIT 10"},
			want: []string{"t(a DESC,b)=q0", "t(a)=q0", "t(b)=q0"},
		},
		{
			name: "explicit NULLS that differ from the direction's default are kept",
			sql:  []string{"SELECT * FROM t WHERE k = $1 ORDER BY a NULLS FIRST LIMIT 10", "SELECT * FROM t ORDER BY a DESC NULLS LAST, b DESC LIMIT 10"},
			want: []string{"t(a DESC NULLS LAST,b DESC)=q1", "t(a)=q0,q1", "t(b)=q1", "t(k,a NULLS FIRST)=q0", "t(k)=q0"},
		},
		{
			name: "an existing index in the reverse order covers the sort candidate",
			sql:  []string{"SELECT * FROM t ORDER BY a, b LIMIT 10"},
			existing: map[string][]indexdef.Existing{"public.t": {{Schema: "public", Table: "t", Name: "t_ab_desc", Method: "btree",
				Columns: []string{"a", "b"}, Directions: []string{"DESC", "DESC"}, Valid: true, Ready: true}}},
			want: []string{"t(b)=q0"},
		},
		{
			name: "an existing index with other mixed directions does not cover",
			sql:  []string{"SELECT * FROM t ORDER BY a, b LIMIT 10"},
			existing: map[string][]indexdef.Existing{"public.t": {{Schema: "public", Table: "t", Name: "t_ab_mixed", Method: "btree",
				Columns: []string{"a", "b"}, Directions: []string{"", "DESC"}, Valid: true, Ready: true}}},
			want: []string{"t(a,b)=q0", "t(b)=q0"},
		},
		{
			name: "single columns for IS NULL, LIKE prefix and join keys; no composite without equality",
			sql: []string{"SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id " +
				"WHERE o.deleted_at IS NULL AND c.name LIKE 'ab%' AND o.created_at > $1"},
			want: []string{
				"customers(id)=q0",
				"customers(name)=q0",
				"orders(created_at)=q0",
				"orders(customer_id)=q0",
				"orders(deleted_at)=q0",
			},
		},
		{
			name: "width cap keeps the left-most equality columns and drops the range",
			sql:  []string{"SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d = $4 AND r > $5"},
			want: []string{"t(a,b,c)=q0", "t(a)=q0", "t(b)=q0", "t(c)=q0", "t(d)=q0", "t(r)=q0"},
		},
		{
			name: "width 2",
			sql:  []string{"SELECT * FROM t WHERE a = $1 AND b = $2 AND r > $3"},
			opts: Options{MaxColumns: 2},
			want: []string{"t(a,b)=q0", "t(a)=q0", "t(b)=q0", "t(r)=q0"},
		},
		{
			name: "width 2 with one equality takes the range",
			sql:  []string{"SELECT * FROM t WHERE a = $1 AND r > $2"},
			opts: Options{MaxColumns: 2},
			want: []string{"t(a,r)=q0", "t(a)=q0", "t(r)=q0"},
		},
		{
			name: "width 1 gives single columns only",
			sql:  []string{"SELECT * FROM t WHERE a = $1 AND b = $2 AND r > $3"},
			opts: Options{MaxColumns: 1},
			want: []string{"t(a)=q0", "t(b)=q0", "t(r)=q0"},
		},
		{
			name: "a column that is both equality and range is not repeated",
			sql:  []string{"SELECT * FROM t WHERE a = $1 AND a < $2"},
			want: []string{"t(a)=q0"},
		},
		{
			name:     "an existing index covers its left prefixes",
			sql:      []string{"SELECT * FROM t WHERE a = $1 AND b = $2"},
			existing: map[string][]indexdef.Existing{"public.t": {btree("t", "a", "b", "c")}},
			want:     []string{"t(b)=q0"},
		},
		{
			name:     "a different column order does not cover",
			sql:      []string{"SELECT * FROM t WHERE a = $1 AND b = $2"},
			existing: map[string][]indexdef.Existing{"public.t": {btree("t", "b", "a")}},
			want:     []string{"t(a,b)=q0", "t(a)=q0"},
		},
		{
			name: "an expression key does not cover a plain column",
			sql:  []string{"SELECT * FROM users WHERE email = $1"},
			existing: map[string][]indexdef.Existing{"public.users": {{
				Schema: "public", Table: "users", Name: "users_email_idx", Method: "btree",
				Columns: []string{""}, Valid: true, Ready: true, HasExprKeys: true,
				Definition: "CREATE INDEX users_email_idx ON public.users USING btree (lower(email))",
			}}},
			want: []string{"users(email)=q0"},
		},
		{
			name: "invalid, partial, non-btree and other tables' indexes do not cover",
			sql:  []string{"SELECT * FROM t WHERE a = $1"},
			existing: map[string][]indexdef.Existing{
				"public.t": {
					{Schema: "public", Table: "t", Name: "bad", Method: "btree", Columns: []string{"a"}, Valid: false},
					{Schema: "public", Table: "t", Name: "part", Method: "btree", Columns: []string{"a"}, Valid: true, Predicate: "(a IS NOT NULL)"},
					{Schema: "public", Table: "t", Name: "h", Method: "hash", Columns: []string{"a"}, Valid: true},
				},
				"public.u": {btree("u", "a")},
			},
			want: []string{"t(a)=q0"},
		},
		{
			name: "a same-named index in another schema does not cover",
			sql:  []string{"SELECT * FROM t WHERE a = $1"},
			existing: map[string][]indexdef.Existing{"public.t": {
				{Schema: "other", Table: "t", Name: "t_a", Method: "btree", Columns: []string{"a"}, Valid: true},
			}},
			want: []string{"t(a)=q0"},
		},
		{
			name: "dedupe across statements keeps every query id",
			sql: []string{
				"SELECT * FROM t WHERE a = $1",
				"SELECT * FROM t WHERE a = $1 AND b > $2",
				"UPDATE t SET x = $1 WHERE a = $2",
			},
			want: []string{"t(a,b)=q1", "t(a)=q0,q1,q2", "t(b)=q1"},
		},
		{
			name: "tables are kept apart and schemas respected",
			sql:  []string{"SELECT * FROM app.t x JOIN t y ON x.id = y.t_id WHERE x.a = $1 AND y.a = $2"},
			want: []string{"app.t(a,id)=q0", "app.t(a)=q0", "app.t(id)=q0", "t(a,t_id)=q0", "t(a)=q0", "t(t_id)=q0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var inputs []Input
			for i, s := range tc.sql {
				inputs = append(inputs, in(t, "q"+string(rune('0'+i)), s))
			}
			got := Generate(inputs, tc.existing, tc.opts)
			require.Equal(t, tc.want, keys(got), "sql: %q", tc.sql)
			for _, c := range got {
				require.Equal(t, "btree", c.Spec.Method)
				require.Empty(t, c.Spec.Predicate)
				require.NoError(t, indexdef.Validate(c.Spec))
				width := tc.opts.MaxColumns
				if width <= 0 {
					width = DefaultMaxColumns
				}
				require.LessOrEqual(t, len(c.Spec.Columns), width, "candidate %v", c.Spec)
			}
		})
	}
}

func TestGenerateSpecs(t *testing.T) {
	t.Parallel()
	got := Generate([]Input{in(t, "7", "SELECT * FROM app.orders WHERE customer_id = $1 AND created_at >= $2")}, nil, Options{})
	require.Equal(t, []Candidate{
		{Spec: events.IndexSpec{Schema: "app", Table: "orders", Method: "btree", Columns: []string{"created_at"}}, QueryIDs: []string{"7"}},
		{Spec: events.IndexSpec{Schema: "app", Table: "orders", Method: "btree", Columns: []string{"customer_id", "created_at"}}, QueryIDs: []string{"7"}},
		{Spec: events.IndexSpec{Schema: "app", Table: "orders", Method: "btree", Columns: []string{"customer_id"}}, QueryIDs: []string{"7"}},
	}, got)
}

func TestGenerateSkips(t *testing.T) {
	t.Parallel()
	st, err := sqlparse.Extract("SELECT * FROM t WHERE a = $1", nil)
	require.NoError(t, err)
	// Schema left unresolved: skipped rather than guessed.
	require.Empty(t, Generate([]Input{{QueryID: "1", Stmt: st}, {QueryID: "2", Stmt: nil}}, nil, Options{}))
	require.Empty(t, Generate(nil, nil, Options{}))

	// An empty query id still yields the candidate, without an id.
	got := Generate([]Input{in(t, "", "SELECT * FROM t WHERE a = $1")}, nil, Options{})
	require.Equal(t, []string{"t(a)="}, keys(got))
	require.Empty(t, got[0].QueryIDs)
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	sqls := []string{
		"SELECT * FROM orders WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC",
		"SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE i.sku = $1 AND o.total > $2",
		"UPDATE items SET qty = $1 WHERE order_id = $2 AND sku = $3",
		"DELETE FROM sessions WHERE expires_at < $1",
		"SELECT * FROM orders WHERE status = $1 AND customer_id = $2",
	}
	var forward, backward []Input
	for i, s := range sqls {
		forward = append(forward, in(t, "q"+string(rune('a'+i)), s))
	}
	for i := len(forward) - 1; i >= 0; i-- {
		backward = append(backward, forward[i])
	}
	existing := map[string][]indexdef.Existing{"public.orders": {btree("orders", "id")}}
	first := Generate(forward, existing, Options{})
	require.Equal(t, first, Generate(forward, existing, Options{}), "same input, same output")
	require.Equal(t, keys(first), keys(Generate(backward, existing, Options{})), "input order must not matter for the set and order of candidates")
	for i := 1; i < len(first); i++ {
		require.Less(t, first[i-1].Spec.Key(), first[i].Spec.Key(), "candidates sorted by key")
	}
	require.NotContains(t, keys(first), "orders(id)=qb", "covered by the existing primary-key-like index")
}
