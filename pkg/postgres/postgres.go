// Package postgres holds what every stage needs to talk to PostgreSQL:
// pools opened without leaking the DSN into errors, the query marker that
// lets the collector exclude IndexPilot's own statements, identifier
// quoting, the server-version probe and SQLSTATE classification.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MarkerPrefix starts the comment on every statement IndexPilot sends.
const MarkerPrefix = "/* indexpilot:"

// DefaultLockTimeout is the lock_timeout of every pool Connect opens.
const DefaultLockTimeout = "5s"

// Marker is the comment that starts every statement a stage sends, e.g.
// "/* indexpilot:collector */ ". The collector drops statements carrying it.
func Marker(stage string) string { return MarkerPrefix + stage + " */ " }

// Ident quotes a possibly schema-qualified identifier with pgx's
// Identifier.Sanitize: Ident("public", "t") is "public"."t".
func Ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// Connect opens the pool of the control database (database_url) with
// application_name "indexpilot-<stage>" and checks it with a ping. It holds
// at most connections.control_pool connections (see Configure), or the
// DSN's pool_max_conns, none while idle for a minute. Target pools come from
// Servers().Open instead, within their server's budget. Its errors never
// include the DSN.
func Connect(ctx context.Context, dsn, stage string) (*pgxpool.Pool, error) {
	pc, err := parsePoolConfig(dsn, stage)
	if err != nil {
		return nil, err
	}
	cfg, _ := process.settings()
	if !strings.Contains(dsn, "pool_max_conns") {
		pc.MaxConns = int32(cfg.ControlPool)
	}
	pc.MinConns = 0
	pc.MaxConnIdleTime = time.Minute
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %s", Describe(err))
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s:%d/%s: %s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database, Describe(err))
	}
	return pool, nil
}

// parsePoolConfig parses dsn with IndexPilot's session settings:
// application_name "indexpilot-<stage>" and lock_timeout.
func parsePoolConfig(dsn, stage string) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("parse connection string: invalid format (details withheld, it may hold a password)")
	}
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "indexpilot-" + stage
	// IndexPilot never queues behind a user's DDL for long: a catalog read
	// stuck behind an ACCESS EXCLUSIVE lock fails (55P03, retried) instead.
	// A DSN that sets lock_timeout itself keeps its value.
	if _, set := pc.ConnConfig.RuntimeParams["lock_timeout"]; !set {
		pc.ConnConfig.RuntimeParams["lock_timeout"] = DefaultLockTimeout
	}
	return pc, nil
}

// Describe renders a database error without the connection string: the
// server message and SQLSTATE for a server error, the innermost cause
// otherwise.
func Describe(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if u := errors.Unwrap(ce); u != nil {
			return u.Error()
		}
		return "connection failed"
	}
	return err.Error()
}

// Querier is what pgx.Conn, pgxpool.Pool, pgxpool.Conn and pgx.Tx share.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ServerVersion returns server_version_num (150020 for 15.20).
func ServerVersion(ctx context.Context, q Querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "/* indexpilot:probe */ select current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("probe server version: %w", err)
	}
	return v, nil
}

// HasExtension reports whether an extension is installed in the database.
func HasExtension(ctx context.Context, q Querier, name string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "/* indexpilot:probe */ select exists(select 1 from pg_extension where extname = $1)", name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("probe extension %s: %w", name, err)
	}
	return ok, nil
}

// SQLState returns the SQLSTATE of a server error, or "".
func SQLState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Class is how a stage should react to an error.
type Class int

// Error classes.
const (
	// Transient errors are retried with backoff.
	Transient Class = iota
	// Permanent errors are never retried: the input or the schema is wrong.
	Permanent
	// Canceled means the caller gave up; never retried.
	Canceled
)

// Classify sorts an error by SQLSTATE: 08 (connection), 40001, 40P01, 53
// (resources), 55P03 (lock timeout), 57P01..57P03 (shutdown) and 57014
// (statement timeout or cancel) are transient; other 22, 23, 42 and 0A
// classes are permanent; a network error is transient; context
// cancellation is Canceled.
func Classify(err error) Class {
	if err == nil {
		return Transient
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	code := SQLState(err)
	switch {
	case code == "":
		return Transient
	case strings.HasPrefix(code, "08"), code == "40001", code == "40P01", strings.HasPrefix(code, "53"),
		code == "55P03", code == "57P01", code == "57P02", code == "57P03", code == "57014", code == "55006":
		return Transient
	case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "23"), strings.HasPrefix(code, "42"),
		strings.HasPrefix(code, "0A"), strings.HasPrefix(code, "XX"):
		return Permanent
	}
	return Transient
}
