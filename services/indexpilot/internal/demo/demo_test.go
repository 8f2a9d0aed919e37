package demo

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/logtest"
)

// requireClusterPrereqs skips (fails under CI=true) when a throwaway
// cluster cannot be started on this machine.
func requireClusterPrereqs(t *testing.T) {
	t.Helper()
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a throwaway PostgreSQL cluster is required under CI=true: %s", why)
		}
		t.Skipf("cannot start a throwaway PostgreSQL cluster: %s", why)
	}
	if _, _, err := FindBinaries(); err != nil {
		missing(err.Error())
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(serverOSUser); err != nil {
			missing("running as root and there is no OS user postgres")
		}
	}
}

// clusterDir returns a fresh directory the server's OS user can reach:
// as root, t.TempDir's private parent gets o+x.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	}
	return filepath.Join(dir, "cluster")
}

func startTestCluster(t *testing.T, dir string, progress *logtest.Buffer) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, dir, progress)
	if errors.Is(err, ErrPrerequisite) && os.Getenv("CI") != "true" {
		t.Skipf("cannot start a throwaway cluster: %v", err)
	}
	require.NoError(t, err, "start cluster in %s; progress:\n%s", dir, progress)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

func portFree(t *testing.T, port int) bool {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func TestClusterLoadDriveStop(t *testing.T) {
	requireClusterPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress logtest.Buffer
	dir := clusterDir(t)

	t0 := time.Now()
	c := startTestCluster(t, dir, &progress)
	t.Logf("cluster start: %s", time.Since(t0))
	require.False(t, portFree(t, c.Port), "port %d should be taken by the cluster", c.Port)

	url, err := CreateDatabase(ctx, c.URL("postgres"), "indexpilot_demo")
	require.NoError(t, err)
	again, err := CreateDatabase(ctx, c.URL("postgres"), "indexpilot_demo")
	require.NoError(t, err, "creating an existing database is a no-op")
	require.Equal(t, url, again)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()

	var preload, track string
	require.NoError(t, pool.QueryRow(ctx, "show shared_preload_libraries").Scan(&preload))
	require.NoError(t, pool.QueryRow(ctx, "show pg_stat_statements.track").Scan(&track))
	require.Equal(t, "pg_stat_statements", preload)
	require.Equal(t, "all", track)

	scale := SmallScale
	t0 = time.Now()
	require.NoError(t, LoadSchema(ctx, pool, scale, &progress), "progress:\n%s", &progress)
	t.Logf("schema load (%+v): %s", scale, time.Since(t0))
	// A second load replaces the demo tables of the first, and everything
	// it sends carries the marker, so that the collector leaves it out.
	_, err = pool.Exec(ctx, "select pg_stat_statements_reset()")
	require.NoError(t, err)
	require.NoError(t, LoadSchema(ctx, pool, scale, &progress), "reload; progress:\n%s", &progress)
	var unmarked []string
	rows, err := pool.Query(ctx, `select query from pg_stat_statements
	  where dbid = (select oid from pg_database where datname = current_database())
	    and query not like '/* indexpilot:%' and query <> 'select pg_stat_statements_reset()'`)
	require.NoError(t, err)
	for rows.Next() {
		var q string
		require.NoError(t, rows.Scan(&q))
		unmarked = append(unmarked, q)
	}
	require.NoError(t, rows.Err())
	require.Empty(t, unmarked, "statements of LoadSchema without the marker")

	for _, table := range Tables() {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "select count(*) from "+table).Scan(&n))
		require.Equal(t, scale.rowCount(table), n, "rows in %s", table)
	}
	var exts []string
	rows, err = pool.Query(ctx, "select extname from pg_extension where extname in ('pg_stat_statements','hypopg') order by 1")
	require.NoError(t, err)
	for rows.Next() {
		var e string
		require.NoError(t, rows.Scan(&e))
		exts = append(exts, e)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"hypopg", "pg_stat_statements"}, exts)

	var indexes []string
	rows, err = pool.Query(ctx, "select indexname from pg_indexes where schemaname = 'public' order by 1")
	require.NoError(t, err)
	for rows.Next() {
		var ix string
		require.NoError(t, rows.Scan(&ix))
		indexes = append(indexes, ix)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"contacts_pkey", "interactions_pkey", "organizations_pkey", "tenants_pkey"}, indexes,
		"only primary keys, no secondary indexes")

	// The generated data is internally consistent and matches the Go side
	// of the hash, which the workload relies on.
	var mismatched int
	require.NoError(t, pool.QueryRow(ctx, `select
	  (select count(*) from contacts c join organizations o on o.id = c.organization_id where c.tenant_id <> o.tenant_id) +
	  (select count(*) from interactions i join contacts c on c.id = i.contact_id where i.tenant_id <> c.tenant_id)`).Scan(&mismatched))
	require.Zero(t, mismatched, "tenant ids disagree between tables")
	for _, x := range []int64{1, 2, 999, 123456, 99_999_999} {
		var got int64
		require.NoError(t, pool.QueryRow(ctx, "select "+mixSQL("$1::bigint", 13), x).Scan(&got), "mix(%d) in SQL", x)
		require.Equal(t, mix(x, 13), got, "mix(%d) in SQL and Go", x)
	}
	wl := Workload(scale)
	plan := argPlan(wl, 20, 7)
	for _, args := range plan[0] {
		n, err := runOnce(ctx, pool, wl[0].SQL, args)
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "%s with %v should find exactly one contact", wl[0].Name, args)
	}

	// Drive: every statement exactly perStatement times, as seen by
	// pg_stat_statements of this cluster.
	_, err = pool.Exec(ctx, "select pg_stat_statements_reset()")
	require.NoError(t, err)
	const perStatement = 25
	t0 = time.Now()
	require.NoError(t, Drive(ctx, pool, wl, perStatement, 42, &progress))
	t.Logf("drive %d x %d: %s", len(wl), perStatement, time.Since(t0))
	require.Contains(t, progress.String(), "drive: 150/150 queries")

	calls := map[string]int64{}
	rows, err = pool.Query(ctx, `select query, calls from pg_stat_statements
	  where dbid = (select oid from pg_database where datname = current_database())`)
	require.NoError(t, err)
	for rows.Next() {
		var q string
		var n int64
		require.NoError(t, rows.Scan(&q, &n))
		calls[q] += n
	}
	require.NoError(t, rows.Err())
	for _, st := range wl {
		require.Equal(t, int64(perStatement), calls[st.Normalized], "pg_stat_statements calls of %s (%s); all: %v", st.Name, st.Normalized, calls)
	}

	// Measure: equal counts, identical arguments for the same seed.
	m1, err := Measure(ctx, pool, wl, 10, 42)
	require.NoError(t, err)
	m2, err := Measure(ctx, pool, wl, 10, 42)
	require.NoError(t, err)
	require.Len(t, m1, len(wl))
	for _, st := range wl {
		require.Equal(t, 10, m1[st.Name].Count, st.Name)
		require.Positive(t, m1[st.Name].Mean, st.Name)
		require.Equal(t, m1[st.Name].Rows, m2[st.Name].Rows, "same seed, same rows for %s", st.Name)
	}
	var table bytes.Buffer
	FormatComparison(&table, m1, m2)
	for _, st := range wl {
		require.Contains(t, table.String(), st.Name)
	}
	t.Logf("progress:\n%s\ncomparison (same state twice):\n%s", &progress, &table)

	// Stop: data directory gone, port free, second Stop a no-op.
	port := c.Port
	pool.Close()
	require.NoError(t, c.Stop(ctx))
	require.NoDirExists(t, dir)
	require.True(t, portFree(t, port), "port %d still taken after Stop", port)
	require.NoError(t, c.Stop(ctx))
}

func TestStartClusterReplacesLeftover(t *testing.T) {
	requireClusterPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress logtest.Buffer
	dir := clusterDir(t)

	// A run killed before Stop leaves its server running in dir.
	old := startTestCluster(t, dir, &progress)
	c := startTestCluster(t, dir, &progress)
	require.Contains(t, progress.String(), "stopping a server left in")
	if old.Port != c.Port {
		require.True(t, portFree(t, old.Port), "leftover server still listens on %d", old.Port)
	}
	pool, err := pgxpool.New(ctx, c.URL("postgres"))
	require.NoError(t, err)
	require.NoError(t, pool.Ping(ctx))
	pool.Close()

	c.KeepDir = true
	require.NoError(t, c.Stop(ctx))
	require.DirExists(t, filepath.Join(dir, dataDirName), "KeepDir keeps the data")
	require.FileExists(t, filepath.Join(dir, logFileName))
}

func TestStartClusterRefusesForeignDirectory(t *testing.T) {
	requireClusterPrereqs(t)
	dir := clusterDir(t)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644))
	_, err := StartCluster(context.Background(), dir, nil)
	require.ErrorContains(t, err, "is not empty and holds no demo cluster")
	require.FileExists(t, filepath.Join(dir, "precious.txt"))
}
