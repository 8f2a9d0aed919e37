package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// BenchmarkAdviseDemo is the time to the answer of `indexpilot advise` on
// the demo database: the demo's schema at its default scale and its
// workload run as `indexpilot demo` runs it (200 times each statement),
// then advise from that history (connect, read pg_stat_statements, score
// with HypoPG, print). The storage budget is the demo's (512 MiB).
//
//	cd services/indexpilot && go test -run '^$' -bench BenchmarkAdviseDemo -benchtime 5x ./internal/cli/
func BenchmarkAdviseDemo(b *testing.B) {
	db := pgtest.NewDatabase(b)
	db.RequireExtension(b, "hypopg")
	ctx := context.Background()
	require.NoError(b, demo.LoadSchema(ctx, db.Pool, demo.DefaultScale, io.Discard))
	require.NoError(b, demo.Drive(ctx, db.Pool, demo.Workload(demo.DefaultScale), 200, demoSeed, io.Discard))
	b.Setenv("INDEXPILOT_SCORER_STORAGE_BUDGET_MB", "512")
	var out, errb bytes.Buffer
	b.ResetTimer()
	for range b.N {
		out.Reset()
		require.Equal(b, 0, Main(ctx, []string{"advise", db.URL}, &out, &errb), errb.String())
	}
	b.StopTimer()
	out.Reset()
	require.Equal(b, 0, Main(ctx, []string{"advise", db.URL, "--json"}, &out, &errb), errb.String())
	var adv Advice
	require.NoError(b, json.Unmarshal(out.Bytes(), &adv))
	require.NotEmpty(b, adv.Recommendations)
	b.ReportMetric(float64(len(adv.Recommendations)), "recommendations")
	b.ReportMetric(float64(adv.Statements), "statements")
}
