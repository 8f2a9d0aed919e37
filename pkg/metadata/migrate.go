// Package metadata owns the control schema "indexpilot": its embedded,
// versioned migrations, the mutation_log writer and the processed-event
// inbox that makes every consumer idempotent.
package metadata

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Schema is the one schema IndexPilot creates objects in.
const Schema = "indexpilot"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one versioned, embedded SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the embedded migrations in version order. File names are
// "NNNN_name.sql".
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s is not NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// migrateLock is the advisory lock key that serializes concurrent inits.
const migrateLock = 0x1d3e_91_7

// Result says what Migrate did.
type Result struct {
	Applied []Migration
	Current int
}

// Migrate applies every migration not yet recorded in
// indexpilot.schema_migrations, each in its own transaction, under an
// advisory lock so that several processes can call it at once. Running it
// again is a no-op.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	ms, err := Migrations()
	if err != nil {
		return Result{}, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "/* indexpilot:init */ select pg_advisory_lock($1)", migrateLock); err != nil {
		return Result{}, fmt.Errorf("lock migrations: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "/* indexpilot:init */ select pg_advisory_unlock($1)", migrateLock)
	}()
	// CREATE SCHEMA needs CREATE on the database even when the schema
	// exists: a role that owns the schema an administrator created for it
	// (setup-role --control-schema) has no need of it.
	var exists bool
	if err := conn.QueryRow(ctx, "/* indexpilot:init */ select to_regnamespace($1) is not null", Schema).Scan(&exists); err != nil {
		return Result{}, fmt.Errorf("look up schema %s: %w", Schema, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "/* indexpilot:init */ create schema if not exists indexpilot"); err != nil {
			if postgres.SQLState(err) == "42501" {
				return Result{}, fmt.Errorf("create schema %s: %s: have an administrator create it for this role (indexpilot setup-role --control-schema, docs/connections.md)", Schema, postgres.Describe(err))
			}
			return Result{}, fmt.Errorf("create schema %s: %s", Schema, postgres.Describe(err))
		}
	}
	if _, err := conn.Exec(ctx, `/* indexpilot:init */
create table if not exists indexpilot.schema_migrations (
    version    int primary key,
    name       text not null,
    applied_at timestamptz not null default now()
)`); err != nil {
		return Result{}, fmt.Errorf("create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, "/* indexpilot:init */ select version from indexpilot.schema_migrations")
	if err != nil {
		return Result{}, fmt.Errorf("read schema_migrations: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return Result{}, fmt.Errorf("read schema_migrations: %w", err)
	}
	for _, v := range vs {
		done[v] = true
	}
	var res Result
	for _, m := range ms {
		if done[m.Version] {
			res.Current = m.Version
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "/* indexpilot:init */ set local search_path = indexpilot"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "/* indexpilot:init */ insert into indexpilot.schema_migrations (version, name) values ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("apply migration %04d_%s: %s", m.Version, m.Name, postgres.Describe(err))
		}
		res.Applied = append(res.Applied, m)
		res.Current = m.Version
	}
	return res, nil
}
