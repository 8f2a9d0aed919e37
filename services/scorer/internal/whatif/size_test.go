package whatif

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// TestStatsSizeWithinAQuarterOfTheRealSize builds real btrees — single and
// multi-column, low and high cardinality, integer and text keys, a partial
// one — and compares the size model with pg_relation_size: within 25 %.
// Low-cardinality keys are where deduplication (PostgreSQL 13+) matters:
// without it the model overstated them about 3×. The columns of the
// multi-column keys are independent: the model takes the product of the
// columns' distinct counts, so correlated columns (a key whose values
// determine another's) make it an overestimate.
func TestStatsSizeWithinAQuarterOfTheRealSize(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		`create table public.sz (id bigint, hi int, lo int, mid int, txt text, lotxt text, note text, amount numeric)`,
		`insert into public.sz select g, ((g::int8 * 7919) % 300000)::int, g % 10, (g / 10) % 5000, md5(g::text),
		        (array['new','paid','shipped','void','returned'])[1 + (g / 10) % 5], case when g % 4 = 0 then null else 'n' || g end, g % 10
		   from generate_series(1, 300000) g`,
		`analyze public.sz`,
	)
	s := acquire(t, newEngine(t, db.Pool, Options{}))
	ctx := context.Background()
	sz := func(cols ...string) events.IndexSpec {
		return events.IndexSpec{Schema: "public", Table: "sz", Method: "btree", Columns: cols}
	}
	specs := []events.IndexSpec{
		sz("id"), sz("hi"), sz("lo"), sz("mid"), sz("txt"), sz("lotxt"),
		sz("lo", "hi"), sz("lo", "mid"), sz("lotxt", "lo"), sz("mid", "txt"), sz("amount"),
		{Schema: "public", Table: "sz", Method: "btree", Columns: []string{"lo"}, Predicate: "(note IS NULL)"},
	}
	var report []string
	for i, spec := range specs {
		model, err := s.StatsSize(ctx, spec)
		require.NoError(t, err)
		name := fmt.Sprintf("sz_real_%d", i)
		where := ""
		if spec.Predicate != "" {
			where = " where " + spec.Predicate
		}
		db.Exec(t, fmt.Sprintf("create index %s on public.sz (%s)%s", name, strings.Join(spec.Columns, ", "), where))
		var real int64
		require.NoError(t, db.Pool.QueryRow(ctx, "select pg_relation_size('public."+name+"')").Scan(&real))
		ratio := float64(model) / float64(real)
		report = append(report, fmt.Sprintf("%s %s: model %d real %d (%.2f)", strings.Join(spec.Columns, ","), spec.Predicate, model, real, ratio))
		require.InDelta(t, 1, ratio, 0.25, "%s: model %d bytes, real %d", spec.Key(), model, real)
	}
	t.Log("\n" + strings.Join(report, "\n"))
}
