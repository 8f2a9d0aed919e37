// Package pgtest gives tests a real PostgreSQL: a fresh database per test,
// dropped afterwards. It never mocks. Under CI=true a missing server fails
// the test instead of skipping it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is used when TEST_DATABASE_URL is not set: the local
// PostgreSQL with trust auth.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the maintenance database URL tests create databases through.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// unavailable skips, or fails under CI=true.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required under CI=true: %s", why)
	}
	t.Skipf("PostgreSQL not available (%s); set TEST_DATABASE_URL", why)
}

// Admin connects to the maintenance database.
func Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	return adminOn(t, AdminURL())
}

// adminOn connects to the maintenance database at adminURL.
func adminOn(t testing.TB, adminURL string) *pgx.Conn {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		unavailable(t, err.Error())
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Database is a throwaway database for one test.
type Database struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// NewDatabase creates a database named after the test with a random suffix,
// installs pg_stat_statements and hypopg in it when the server has them, and
// drops it (forcefully) when the test ends.
func NewDatabase(t testing.TB) *Database {
	t.Helper()
	return NewDatabaseOn(t, AdminURL())
}

// NewDatabaseOn is NewDatabase on the server whose maintenance database is
// adminURL (e.g. one version's server from ForEachVersion).
func NewDatabaseOn(t testing.TB, adminURL string) *Database {
	t.Helper()
	admin := adminOn(t, adminURL)
	ctx := context.Background()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := strings.ToLower(t.Name())
	base = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, base)
	if len(base) > 40 {
		base = base[:40]
	}
	name := "ipt_" + base + "_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("parse the admin URL: %v", err)
	}
	u.Path = "/" + name
	db := &Database{Name: name, URL: u.String()}
	t.Cleanup(func() {
		if db.Pool != nil {
			db.Pool.Close()
		}
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
	})
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	db.Pool = pool
	for _, ext := range []string{"pg_stat_statements", "hypopg"} {
		var avail bool
		_ = pool.QueryRow(ctx, "select exists(select 1 from pg_available_extensions where name=$1)", ext).Scan(&avail)
		if avail {
			if _, err := pool.Exec(ctx, "create extension if not exists "+ext); err != nil {
				t.Fatalf("create extension %s: %v", ext, err)
			}
		}
	}
	return db
}

// RequireExtension fails the test (or skips it outside CI) when the
// extension is not installed in db: the setup script installs them.
func (db *Database) RequireExtension(t testing.TB, name string) {
	t.Helper()
	var ok bool
	if err := db.Pool.QueryRow(context.Background(), "select exists(select 1 from pg_extension where extname=$1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatalf("extension %s is required under CI=true; run infra/scripts/setup-postgres.sh", name)
		}
		t.Skipf("extension %s not available; run infra/scripts/setup-postgres.sh", name)
	}
}

// Exec runs statements on db, failing the test on error.
func (db *Database) Exec(t testing.TB, sql ...string) {
	t.Helper()
	for _, s := range sql {
		if _, err := db.Pool.Exec(context.Background(), s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}

// Load runs the statements of a data load on a connection of its own and
// returns once their effect is in the cumulative statistics
// (pg_stat_user_tables' n_tup_ins and the like). A backend sends its table
// counters up to a second late, but always before it leaves
// pg_stat_activity when it exits: Load closes its connection and waits for
// that. A test that starts IndexPilot after Load sees the load as history,
// not as writes between its first two polls.
func (db *Database) Load(t testing.TB, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatalf("load: connect: %v", err)
	}
	var pid int
	if err := c.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("load: %v", err)
	}
	for _, s := range sql {
		if _, err := c.Exec(ctx, s); err != nil {
			_ = c.Close(context.Background())
			t.Fatalf("load %q: %v", s, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("load: close: %v", err)
	}
	for {
		var alive bool
		if err := db.Pool.QueryRow(ctx, "select exists(select 1 from pg_stat_activity where pid = $1)", pid).Scan(&alive); err != nil {
			t.Fatalf("load: wait for the backend to exit: %v", err)
		}
		if !alive {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// URLAs is db's URL for logging in as role (trust auth: no password).
func (db *Database) URLAs(t testing.TB, role string) string {
	t.Helper()
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatalf("parse the test database URL: %v", err)
	}
	u.User = url.User(role)
	return u.String()
}

// RoleName returns a role name unique to this test, prefix followed by a
// random suffix, and drops the role when the test ends: first what it owns
// and its privileges in db (DROP OWNED), then the role. Roles are
// cluster-wide and the server is shared, so a test creating one must drop
// it; the cleanup runs before db is dropped.
func RoleName(t testing.TB, db *Database, prefix string) string {
	t.Helper()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := prefix + hex.EncodeToString(rnd[:])
	t.Cleanup(func() {
		ctx := context.Background()
		// A connection of its own: one of db.Pool may have a role set.
		c, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			t.Errorf("drop the test role %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		r := pgx.Identifier{name}.Sanitize()
		var exists bool
		if err := c.QueryRow(ctx, "select exists(select 1 from pg_roles where rolname = $1)", name).Scan(&exists); err != nil || !exists {
			return
		}
		for _, q := range []string{"drop owned by " + r, "drop role " + r} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	return name
}
