package candidates

import (
	"fmt"
	"strings"
	"testing"

	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

// adversarial builds a statement of one shape with n columns (or tables,
// or branches): the shapes a workload could send that give one table
// usage many columns.
func adversarial(shape string, n int) string {
	var b strings.Builder
	b.WriteString("SELECT * FROM t WHERE ")
	term := func(i int, f string) {
		if i > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, f, i, i+1)
	}
	switch shape {
	case "equality": // c0 = $1 AND c1 = $2 ...
		for i := 0; i < n; i++ {
			term(i, "c%d = $%d")
		}
	case "range": // c0 > $1 AND c1 > $2 ...
		for i := 0; i < n; i++ {
			term(i, "c%d > $%d")
		}
	case "or": // c0 = $1 OR c1 = $2 ...
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(" OR ")
			}
			fmt.Fprintf(&b, "c%d = $%d", i, i+1)
		}
	case "notnull": // n/2 equalities and ranges, n/2 IS NOT NULL
		for i := 0; i < n; i++ {
			switch i % 3 {
			case 0:
				term(i, "c%d = $%d")
			case 1:
				term(i, "c%d > $%d")
			default:
				if i > 0 {
					b.WriteString(" AND ")
				}
				fmt.Fprintf(&b, "c%d IS NOT NULL", i)
			}
		}
	case "conditions": // ranges and bare booleans (shared conditions)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(" AND ")
			}
			if i%2 == 0 {
				fmt.Fprintf(&b, "c%d > $%d", i, i+1)
			} else {
				fmt.Fprintf(&b, "c%d IS NULL", i)
			}
		}
	case "orderby": // k = $1 ORDER BY c0, c1 DESC, ...
		b.WriteString("k = $1 ORDER BY ")
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "c%d", i)
			if i%2 == 1 {
				b.WriteString(" DESC")
			}
		}
	case "tables": // t0, t1, ... joined in a chain, each filtered
		b.Reset()
		b.WriteString("SELECT * FROM t0")
		for i := 1; i < n; i++ {
			fmt.Fprintf(&b, " JOIN t%d ON t%d.p = t%d.id", i, i, i-1)
		}
		b.WriteString(" WHERE ")
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(" AND ")
			}
			fmt.Fprintf(&b, "t%d.a = $%d AND t%d.b > $%d", i, 2*i+1, i, 2*i+2)
		}
	case "in": // c IN ($1, ..., $n)
		b.WriteString("c IN (")
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", i+1)
		}
		b.WriteString(")")
	default:
		panic("unknown shape " + shape)
	}
	return b.String()
}

var adversarialShapes = []string{"equality", "range", "or", "notnull", "conditions", "orderby", "tables", "in"}

// BenchmarkExtractGenerate times Extract and Generate separately, as the
// fuzz target drives them (twice the statement, tenant column, width 5),
// per shape and size, with cands/op, the candidates of the statement. On
// one table, Generate's cands/op and ns/op stop growing past
// MaxUsageColumns (before that bound: 223,445 candidates and 2.5 s for
// notnull/n=1000); across tables they grow linearly.
//
//	cd services/scorer && go test -run '^$' -bench BenchmarkExtractGenerate ./internal/candidates/
func BenchmarkExtractGenerate(b *testing.B) {
	for _, shape := range adversarialShapes {
		for _, n := range []int{10, 100, 1000} {
			sql := adversarial(shape, n)
			b.Run(fmt.Sprintf("extract/%s/n=%d", shape, n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := sqlparse.Extract(sql, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			st, err := sqlparse.Extract(sql, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range st.Tables {
				st.Tables[i].Table.Schema = "public"
			}
			stmts := []Input{{QueryID: "1", Stmt: st}, {QueryID: "2", Stmt: st}}
			opts := Options{MaxColumns: 5, TenantColumn: "tenant_id", MinShared: 2}
			b.Run(fmt.Sprintf("generate/%s/n=%d", shape, n), func(b *testing.B) {
				var cands []Candidate
				for i := 0; i < b.N; i++ {
					cands = Generate(stmts, nil, opts)
				}
				b.ReportMetric(float64(len(cands)), "cands/op")
			})
		}
	}
}
