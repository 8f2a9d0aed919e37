package candidates

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

// fuzzDeadline is the longest one input may take: longer is a hang.
const fuzzDeadline = 10 * time.Second

// slowInput is when an input counts as slow: with FUZZ_SLOW_LOG set to a
// file, each input that takes longer through Extract and Generate is
// appended to it (the time, the width and the statement, quoted), to find
// what makes a run crawl without failing it; statements Extract refuses
// included.
const slowInput = 100 * time.Millisecond

// logSlow appends sql to the FUZZ_SLOW_LOG file when took is over slowInput.
func logSlow(t *testing.T, took time.Duration, width uint8, sql string) {
	path := os.Getenv("FUZZ_SLOW_LOG")
	if path == "" || took < slowInput {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("slow input log: %v", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\t%d\t%q\n", took, width, sql); err != nil {
		t.Fatalf("slow input log: %v", err)
	}
}

// candidateSeeds are statements of this package's tests and the scorer's
// demo workload shapes: equality, ranges, ORDER BY with directions, joins,
// expressions, shared conditions, UPDATEs.
var candidateSeeds = []string{
	"SELECT * FROM accounts WHERE deleted_at IS NULL AND email = $1 AND plan = $2",
	"SELECT * FROM accounts WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at",
	"SELECT * FROM accounts WHERE (deleted_at IS NULL OR purge_at IS NULL) AND plan = $1",
	"SELECT * FROM flags WHERE NOT archived AND done IS FALSE AND kind = $1",
	"SELECT * FROM flags WHERE owner = $1 AND kind = $2 AND active",
	"SELECT * FROM app.orders WHERE customer_id = $1 AND created_at >= $2",
	"SELECT * FROM app.t x JOIN t y ON x.id = y.t_id WHERE x.a = $1 AND y.a = $2",
	"SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE i.sku = $1 AND o.total > $2",
	"SELECT * FROM orders WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC",
	"SELECT * FROM posts WHERE author_id = $1 ORDER BY created_at DESC LIMIT 10",
	"SELECT * FROM t ORDER BY a DESC NULLS LAST, b DESC LIMIT 10",
	"SELECT * FROM t WHERE k = $1 ORDER BY a NULLS FIRST LIMIT 10",
	"SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d = $4 AND r > $5",
	"SELECT * FROM t WHERE deleted_at IS NOT NULL AND tenant_id = $1",
	"SELECT * FROM t WHERE status = $1 AND created_at > $2 AND tenant_id = $3 AND score < $4",
	"SELECT * FROM users WHERE lower(email) = $1 AND tenant_id = $2",
	"SELECT * FROM users WHERE org_id = $1 AND upper(name) = $2",
	"SELECT * FROM users u WHERE lower(u.email) LIKE 'ab%'",
	`SELECT * FROM "Odd Schema"."Tab;le" WHERE "Col ""q""" = $1 AND "ünï" IS NULL ORDER BY "MiXeD" DESC`,
	"UPDATE accounts SET seen = now() WHERE id = $1 AND deleted_at IS NULL AND active",
	"UPDATE items SET qty = $1 WHERE order_id = $2 AND sku = $3",
	"DELETE FROM sessions WHERE expires_at < $1",
	"SELECT c.id FROM contacts c JOIN interactions i ON i.contact_id = c.id WHERE c.tenant_id = $1 AND i.occurred_at > $2 ORDER BY i.occurred_at DESC",
}

// FuzzCandidates carries a fuzzed statement through the path the scorer
// takes: Extract, the search_path resolution, Generate with the tenant
// column and the shared-condition rule in play (the statement counts
// twice, under two query ids). It never panics or hangs, and every
// candidate is an index the executor can build: it passes
// indexdef.Validate, no key column twice,
// one spec per key, sorted, its DDL quoted (CreateSQL) under a bounded
// name, and the query ids that motivated it.
func FuzzCandidates(f *testing.F) {
	for _, s := range candidateSeeds {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, sql string, width uint8) {
		done := make(chan struct{})
		timer := time.AfterFunc(fuzzDeadline, func() {
			select {
			case <-done:
			default:
				panic(fmt.Sprintf("Extract and Generate took more than %s", fuzzDeadline))
			}
		})
		defer func() { close(done); timer.Stop() }()
		start := time.Now()
		defer func() { logSlow(t, time.Since(start), width, sql) }()

		st, err := sqlparse.Extract(sql, nil)
		if err != nil {
			return // FuzzExtract checks the errors
		}
		for i := range st.Tables {
			if st.Tables[i].Table.Schema == "" {
				st.Tables[i].Table.Schema = "public"
			}
		}
		opts := Options{MaxColumns: int(width % 6), TenantColumn: "tenant_id", MinShared: 2}
		cands := Generate([]Input{{QueryID: "1", Stmt: st}, {QueryID: "2", Stmt: st}}, nil, opts)
		prev := ""
		for _, c := range cands {
			spec := c.Spec
			require.NoError(t, indexdef.Validate(spec), "candidate %+v", spec)
			key := spec.Key()
			require.Greater(t, key, prev, "candidates not sorted by key, or a key twice")
			prev = key
			_, found := st.Table(sqlparse.TableRef{Schema: spec.Schema, Name: spec.Table})
			require.True(t, found, "candidate on %s, a table the statement does not read", spec.QualifiedTable())
			seen := map[string]bool{}
			for _, col := range spec.Columns {
				require.False(t, seen[col], "column %q twice in %s", col, key)
				seen[col] = true
			}
			if p := spec.Predicate; p != "" {
				_, ok := indexdef.ParseCondition(p)
				require.True(t, ok, "predicate %q does not read back", p)
			}
			name := indexdef.Name(spec)
			require.LessOrEqual(t, len(name), 63, "index name %q", name)
			ddl := indexdef.CreateSQL(spec, name, true)
			require.True(t, strings.HasPrefix(ddl, "CREATE INDEX CONCURRENTLY "), ddl)
			require.NotEmpty(t, c.QueryIDs)
			for _, id := range c.QueryIDs {
				_, err := strconv.Atoi(id)
				require.NoError(t, err)
			}
		}
	})
}
