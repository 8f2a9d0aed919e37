package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Hold is what a held index build waits for (see HeldBuild).
type Hold int

const (
	// HoldWriters: another session has an open transaction holding ROW
	// EXCLUSIVE on the table. CREATE INDEX CONCURRENTLY waits for it
	// before it builds: the index is in the catalog, not ready, INVALID.
	HoldWriters Hold = iota
	// HoldSnapshots: another session has an open repeatable-read
	// snapshot. The build waits for it after it validated: the index is
	// ready, still INVALID.
	HoldSnapshots
)

// Phase is the pg_stat_progress_create_index phase the build waits in.
func (h Hold) Phase() string {
	if h == HoldSnapshots {
		return "waiting for old snapshots"
	}
	return "waiting for writers before build"
}

// HeldBuild runs create, a CREATE INDEX CONCURRENTLY on schema.table, in
// a session of its own (the server's superuser, like any other role's
// build that IndexPilot did not start), while a second session holds what
// the build must wait for. It returns once pg_stat_progress_create_index
// shows the build waiting in hold's phase, so that a test sees a build in
// progress for as long as it needs. release ends the holding transaction
// and returns the build's error once it is over; the test's cleanup
// releases it too.
func HeldBuild(t testing.TB, db *Database, hold Hold, schema, table, create string) (release func() error) {
	t.Helper()
	ctx := context.Background()
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			t.Fatalf("held build: connect: %v", err)
		}
		return c
	}
	holder, builder := connect(), connect()
	hold1 := "lock table " + postgres.Ident(schema, table) + " in row exclusive mode"
	if hold == HoldSnapshots {
		hold1 = "select count(*) from pg_catalog.pg_class"
	}
	for _, sql := range []string{"begin isolation level repeatable read", hold1} {
		if _, err := holder.Exec(ctx, sql); err != nil {
			t.Fatalf("held build: %s: %v", sql, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := builder.Exec(ctx, create)
		done <- err
	}()
	var buildErr error
	released := false
	release = func() error {
		if released {
			return buildErr
		}
		released = true
		_, _ = holder.Exec(ctx, "commit")
		select {
		case buildErr = <-done:
		case <-time.After(time.Minute):
			buildErr = context.DeadlineExceeded
		}
		_ = holder.Close(ctx)
		_ = builder.Close(ctx)
		return buildErr
	}
	t.Cleanup(func() { _ = release() })

	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := db.Pool.QueryRow(ctx, `select count(*) from pg_catalog.pg_stat_progress_create_index
 where relid = to_regclass($1) and phase = $2`, postgres.Ident(schema, table), hold.Phase()).Scan(&n)
		if err != nil {
			t.Fatalf("held build: read progress: %v", err)
		}
		if n == 1 {
			return release
		}
		select {
		case err := <-done:
			t.Fatalf("held build: %q ended before it waited in phase %q: %v", create, hold.Phase(), err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("held build: %q never reached phase %q", create, hold.Phase())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
