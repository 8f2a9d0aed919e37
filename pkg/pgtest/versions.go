package pgtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// MatrixMajors are the PostgreSQL majors of the version matrix (issue 15).
// 15 is the machine's own server (TEST_DATABASE_URL or DefaultURL); the
// others are the throwaway clusters infra/scripts/pg-versions.sh starts and
// announces as INDEXPILOT_TEST_PG<major>_URL.
var MatrixMajors = []int{14, 15, 16, 17, 18}

// MatrixEnv, set to 1, says the whole matrix was requested (make
// test-versions sets it): under CI=true a version whose URL is missing then
// fails the test instead of being left out.
const MatrixEnv = "INDEXPILOT_TEST_PG_MATRIX"

// Version is one server of the matrix.
type Version struct {
	// Major is the server's major version, read from the server itself.
	Major int
	// AdminURL is the server's maintenance database URL.
	AdminURL string
}

// VersionURLEnv is the environment variable that holds the admin URL of the
// server of the given major.
func VersionURLEnv(major int) string {
	return fmt.Sprintf("INDEXPILOT_TEST_PG%d_URL", major)
}

// versionURL returns the admin URL of major's server, or "" when none is
// configured. 15 falls back to the default server when it has no variable
// of its own.
func versionURL(major int) string {
	if u := os.Getenv(VersionURLEnv(major)); u != "" {
		return u
	}
	if major == 15 {
		return AdminURL()
	}
	return ""
}

// ForEachVersion runs fn as a subtest "PG<major>" for every server of the
// matrix that is configured. A configured server that is unreachable or
// reports another major fails its subtest. A version without a URL is left
// out, except under CI=true with INDEXPILOT_TEST_PG_MATRIX=1, where it fails.
func ForEachVersion(t *testing.T, fn func(t *testing.T, v Version)) {
	t.Helper()
	forEachServer(t, MatrixEnv, VersionURLEnv, versionURL, "infra/scripts/pg-versions.sh", fn)
}

// EvictionEnv, set to 1, says the eviction servers were requested (the
// eviction step of make test-versions sets it): under CI=true a version
// whose eviction URL is missing then fails the test instead of being left
// out.
const EvictionEnv = "INDEXPILOT_TEST_PG_EVICT"

// EvictionURLEnv is the environment variable that holds the admin URL of
// the eviction server of the given major: a small cluster of its own
// (pg_stat_statements.max = 100) that `infra/scripts/pg-versions.sh evict`
// starts and no other test uses, for a test that overflows
// pg_stat_statements, which evicts entries server-wide.
func EvictionURLEnv(major int) string {
	return fmt.Sprintf("INDEXPILOT_TEST_PG%d_EVICT_URL", major)
}

// ForEachEvictionServer is ForEachVersion on the eviction servers, 14 to
// 18. It never falls back to the default server: without its variable a
// version is left out (or fails, under CI=true with
// INDEXPILOT_TEST_PG_EVICT=1).
func ForEachEvictionServer(t *testing.T, fn func(t *testing.T, v Version)) {
	t.Helper()
	url := func(major int) string { return os.Getenv(EvictionURLEnv(major)) }
	forEachServer(t, EvictionEnv, EvictionURLEnv, url, "infra/scripts/pg-versions.sh evict", fn)
}

// forEachServer runs fn as a subtest "PG<major>" for every major of
// MatrixMajors whose url is set; requiredEnv=1 under CI=true makes a
// missing one fail; start is the command that starts the servers.
func forEachServer(t *testing.T, requiredEnv string, urlEnv func(int) string, url func(int) string, start string,
	fn func(t *testing.T, v Version)) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped in -short mode")
	}
	required := os.Getenv("CI") == "true" && os.Getenv(requiredEnv) == "1"
	for _, major := range MatrixMajors {
		u := url(major)
		t.Run(fmt.Sprintf("PG%d", major), func(t *testing.T) {
			if u == "" {
				if required {
					t.Fatalf("%s=1 under CI=true but %s is not set; run %s", requiredEnv, urlEnv(major), start)
				}
				t.Skipf("%s not set; run: eval \"$(%s)\"", urlEnv(major), start)
			}
			got := ServerMajor(t, u)
			if got != major {
				t.Fatalf("%s points at a PostgreSQL %d server, not %d", urlEnv(major), got, major)
			}
			fn(t, Version{Major: major, AdminURL: u})
		})
	}
}

// ServerMajor reads the major version of the server at adminURL.
func ServerMajor(t testing.TB, adminURL string) int {
	t.Helper()
	c := adminOn(t, adminURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := postgres.ServerVersion(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return v / 10000
}

// FlushStats makes the cumulative statistics of session q's past
// statements visible to other sessions soon: pg_stat_force_next_flush() on
// PostgreSQL 15+. PostgreSQL 14 has no such function; its backends send
// their counters to the statistics collector at the end of a statement at
// most every 500 ms, so a 0.6 s sleep on the same session ends with a send.
// Either way the reader still polls (require.Eventually): the counters
// arrive asynchronously.
func FlushStats(t testing.TB, q postgres.Querier) {
	t.Helper()
	ctx := context.Background()
	v, err := postgres.ServerVersion(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	sql := "select pg_stat_force_next_flush()"
	if v < 150000 {
		sql = "select pg_sleep(0.6)"
	}
	if _, err := q.Exec(ctx, sql); err != nil {
		t.Fatalf("flush statistics: %v", err)
	}
}

// StatementTexts returns, sorted, the texts pg_stat_statements holds for
// db's database that start with prefix: how this server normalized the
// statements the test ran (e.g. PostgreSQL 18 squashes IN lists).
func (db *Database) StatementTexts(t testing.TB, prefix string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `select query from pg_stat_statements
 where dbid = (select oid from pg_database where datname = current_database())
   and starts_with(query, $1) order by query`, prefix)
	if err != nil {
		t.Fatalf("read pg_stat_statements: %v", err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read pg_stat_statements: %v", err)
	}
	return texts
}
