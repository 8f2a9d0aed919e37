package pgtest

import (
	"context"
	"testing"
)

// TestVersionMatrixGivesADatabaseOnEachVersion checks the matrix plumbing:
// every configured server answers with the major its variable names, and
// NewDatabaseOn creates the throwaway database on that server (not on the
// default one) with pg_stat_statements installed.
func TestVersionMatrixGivesADatabaseOnEachVersion(t *testing.T) {
	ForEachVersion(t, func(t *testing.T, v Version) {
		db := NewDatabaseOn(t, v.AdminURL)
		var num int
		var ext bool
		err := db.Pool.QueryRow(context.Background(), `select current_setting('server_version_num')::int,
			exists(select 1 from pg_extension where extname = 'pg_stat_statements')`).Scan(&num, &ext)
		if err != nil {
			t.Fatal(err)
		}
		if num/10000 != v.Major {
			t.Fatalf("database %s is on PostgreSQL %d, want %d", db.Name, num/10000, v.Major)
		}
		if !ext {
			t.Fatalf("pg_stat_statements not installed in %s on PostgreSQL %d", db.Name, v.Major)
		}
	})
}
