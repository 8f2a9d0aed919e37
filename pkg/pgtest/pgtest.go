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
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, AdminURL())
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
	admin := Admin(t)
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
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	db := &Database{Name: name, URL: u.String()}
	t.Cleanup(func() {
		if db.Pool != nil {
			db.Pool.Close()
		}
		c, err := pgx.Connect(context.Background(), AdminURL())
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
