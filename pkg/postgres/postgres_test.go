package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassify(t *testing.T) {
	for code, want := range map[string]Class{
		"55P03": Transient, "40P01": Transient, "08006": Transient, "53100": Transient, "57P01": Transient,
		"42P01": Permanent, "22P02": Permanent, "23505": Permanent, "0A000": Permanent,
	} {
		err := fmt.Errorf("wrap: %w", &pgconn.PgError{Code: code})
		if got := Classify(err); got != want {
			t.Errorf("Classify(%s) = %v, want %v", code, got, want)
		}
	}
	if Classify(fmt.Errorf("x: %w", context.Canceled)) != Canceled {
		t.Error("context.Canceled is not Canceled")
	}
	if Classify(errors.New("connection reset")) != Transient {
		t.Error("a plain network error is not transient")
	}
}

func TestIdentAndMarker(t *testing.T) {
	if got := Ident("public", `we"ird`); got != `"public"."we""ird"` {
		t.Errorf("Ident = %s", got)
	}
	if got := Marker("scorer"); got != "/* indexpilot:scorer */ " || !strings.HasPrefix(got, MarkerPrefix) {
		t.Errorf("Marker = %q", got)
	}
}

func TestConnectErrorHasNoPassword(t *testing.T) {
	_, err := Connect(context.Background(), "postgres://bob:s3cret@127.0.0.1:1/nope?connect_timeout=1", "test")
	if err == nil {
		t.Fatal("connect to port 1 succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password: %v", err)
	}
	_, err = Connect(context.Background(), "postgres://bob:s3cret@%zz", "test")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad dsn: %v", err)
	}
}

func TestConnectSetsLockTimeoutAndApplicationName(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	pool, err := Connect(context.Background(), url, "unit")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer pool.Close()
	var lt, app string
	if err := pool.QueryRow(context.Background(), "select current_setting('lock_timeout'), current_setting('application_name')").Scan(&lt, &app); err != nil {
		t.Fatal(err)
	}
	if lt != DefaultLockTimeout || app != "indexpilot-unit" {
		t.Errorf("lock_timeout %q application_name %q", lt, app)
	}
}
