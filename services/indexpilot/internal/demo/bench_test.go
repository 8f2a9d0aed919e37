package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/logtest"
)

// BenchmarkDefaultScale times the demo's steps at DefaultScale on a
// throwaway cluster and prints a before/after table for hand-made indexes
// like the ones the pipeline should recommend. Run it with
//
//	go test -run '^$' -bench DefaultScale -benchtime 1x ./internal/demo/
func BenchmarkDefaultScale(b *testing.B) {
	for range b.N {
		runDefaultScale(b)
	}
}

func runDefaultScale(b *testing.B) {
	ctx := context.Background()
	var progress logtest.Buffer
	dir := b.TempDir()
	if os.Geteuid() == 0 {
		require.NoError(b, os.Chmod(filepath.Dir(dir), 0o711))
	}
	dir = filepath.Join(dir, "cluster")
	t0 := time.Now()
	c, err := StartCluster(ctx, dir, &progress)
	if err != nil {
		b.Skipf("start cluster: %v", err)
	}
	defer func() { _ = c.Stop(ctx) }()
	start := time.Since(t0)

	url, err := CreateDatabase(ctx, c.URL("postgres"), "indexpilot_demo")
	require.NoError(b, err)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(b, err)
	defer pool.Close()

	t0 = time.Now()
	require.NoError(b, LoadSchema(ctx, pool, DefaultScale, &progress))
	load := time.Since(t0)

	wl := Workload(DefaultScale)
	t0 = time.Now()
	require.NoError(b, Drive(ctx, pool, wl, 200, 1, &progress))
	drive := time.Since(t0)

	t0 = time.Now()
	before, err := Measure(ctx, pool, wl, 100, 2)
	require.NoError(b, err)
	measure := time.Since(t0)
	for _, ddl := range []string{
		"create index on contacts (tenant_id, email)",
		"create index on contacts (tenant_id, status, created_at)",
		"create index on interactions (contact_id, occurred_at)",
		"create index on organizations (tenant_id, industry)",
		"create index on interactions (tenant_id, kind, occurred_at)",
	} {
		_, err := pool.Exec(ctx, ddl)
		require.NoError(b, err)
	}
	_, err = pool.Exec(ctx, "analyze")
	require.NoError(b, err)
	after, err := Measure(ctx, pool, wl, 100, 2)
	require.NoError(b, err)
	var table bytes.Buffer
	FormatComparison(&table, before, after)
	b.Logf("cluster start %s, schema load %s, drive 6x200 %s, measure 6x100 %s\n%s\n%s",
		start.Round(time.Millisecond), load.Round(time.Millisecond), drive.Round(time.Millisecond),
		measure.Round(time.Millisecond), &progress, &table)
}
