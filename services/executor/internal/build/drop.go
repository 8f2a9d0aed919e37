package build

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// ErrProtected is the cause when a removal names a primary key, unique,
// exclusion, constraint-backing or replica-identity index.
var ErrProtected = errors.New("index is protected: primary key, unique, constraint or replica identity")

// DropResult says what Drop found and did.
type DropResult struct {
	// Existed is false when there was no such index (nothing was done).
	Existed bool
	// Table is the index's table.
	Table string
	// Definition is pg_get_indexdef of the index before the drop.
	Definition string
	// DDL is the statement that was run, without the marker.
	DDL string
	// Duration is the wall time of the call.
	Duration time.Duration
}

// DropOptions tunes Drop.
type DropOptions struct {
	Options
	// RefuseProtected makes Drop fail with ErrProtected (permanent) for an
	// index that must never be removed.
	RefuseProtected bool
	// BeforeDrop, when set, is called with the definition just before the
	// DROP runs (under the table's advisory lock), so the caller can record
	// it or re-check the removal first; an error stops the drop (an *Error
	// is returned as is, anything else as "record definition").
	BeforeDrop func(ctx context.Context, table, definition string) error
}

// Drop removes schema.name from the database behind pool: DROP INDEX
// CONCURRENTLY on a dedicated autocommit connection, under the table's
// advisory lock (the same as builds), with lock_timeout and
// statement_timeout. A partitioned index cannot be dropped concurrently:
// it gets a plain DROP INDEX, still bounded by lock_timeout. An index being
// built right now is never dropped (Busy).
//
// Errors are *Error.
func Drop(ctx context.Context, pool *pgxpool.Pool, schema, name string, opts DropOptions) (DropResult, error) {
	start := time.Now()
	if pool == nil {
		return DropResult{}, &Error{Op: "connect", Class: postgres.Permanent, Err: errors.New("nil pool")}
	}
	var res DropResult
	var protected, partitioned bool
	err := pool.QueryRow(ctx, marker+`select t.relname, pg_get_indexdef(x.indexrelid),
       x.indisprimary or x.indisunique or x.indisexclusion or x.indisreplident
         or exists(select 1 from pg_constraint c where c.conindid = x.indexrelid),
       i.relkind = 'I'
  from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace
  join pg_class t on t.oid = x.indrelid
 where n.nspname = $1 and i.relname = $2`, schema, name).Scan(&res.Table, &res.Definition, &protected, &partitioned)
	if errors.Is(err, pgx.ErrNoRows) {
		res.Duration = time.Since(start)
		return res, nil
	}
	if err != nil {
		return DropResult{}, newError(ctx, "read index", err)
	}
	res.Existed = true
	if protected && opts.RefuseProtected {
		return DropResult{}, &Error{Op: "check index", Class: postgres.Permanent, Err: ErrProtected}
	}
	b := &builder{
		cfg:  pool.Config().ConnConfig,
		spec: events.IndexSpec{Schema: schema, Table: res.Table},
		opts: opts.Options.withDefaults(),
		name: name,
		key:  LockKey(schema, res.Table),
	}
	conn, release, err := b.connect(ctx)
	if err != nil {
		return DropResult{}, err
	}
	defer release()
	busy, err := inProgress(ctx, conn, schema, name)
	if err != nil {
		return DropResult{}, newError(ctx, "check build progress", err)
	}
	if busy {
		return DropResult{}, &Error{Op: "drop index", Class: postgres.Transient, Busy: true, Err: ErrBusy}
	}
	if opts.BeforeDrop != nil {
		if err := opts.BeforeDrop(ctx, res.Table, res.Definition); err != nil {
			var be *Error
			if errors.As(err, &be) {
				return DropResult{}, be // already classified by the caller
			}
			return DropResult{}, newError(ctx, "record definition", err)
		}
	}
	res.DDL = indexdef.DropSQL(schema, name)
	if partitioned {
		res.DDL = "DROP INDEX IF EXISTS " + postgres.Ident(schema, name)
	}
	if _, err := conn.Exec(ctx, marker+res.DDL); err != nil {
		return DropResult{}, newError(ctx, "drop index", err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// UsesIndex reports whether the generic plan of the normalized statement
// query uses the index schema.name on the database behind pool (or, for a
// partitioned index, any index of its partitions). It never runs the
// statement: PREPARE (protocol level, parameter types inferred by the
// server) and EXPLAIN EXECUTE with NULL parameters under
// plan_cache_mode = force_generic_plan, in a transaction that is rolled
// back, on one pooled connection. A statement that cannot be prepared
// returns an error: the caller treats it as unknown.
func UsesIndex(ctx context.Context, pool *pgxpool.Pool, query, schema, name string) (bool, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	names := map[string]bool{name: true}
	rows, err := conn.Query(ctx, marker+`select c.relname from pg_partition_tree(
  (select i.oid from pg_class i join pg_namespace n on n.oid = i.relnamespace where n.nspname = $1 and i.relname = $2)) p
  join pg_class c on c.oid = p.relid`, schema, name)
	if err != nil {
		return false, err
	}
	tree, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, err
	}
	for _, n := range tree {
		names[n] = true
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, marker+"set local plan_cache_mode = force_generic_plan"); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, marker+"set local statement_timeout = '10s'"); err != nil {
		return false, err
	}
	const stmt = "indexpilot_validate"
	sd, err := tx.Conn().Prepare(ctx, stmt, query)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Conn().Deallocate(context.WithoutCancel(ctx), stmt) }()
	args := "("
	for i := range sd.ParamOIDs {
		if i > 0 {
			args += ", "
		}
		args += "NULL"
	}
	args += ")"
	if len(sd.ParamOIDs) == 0 {
		args = ""
	}
	var plan []byte
	if err := tx.QueryRow(ctx, marker+"explain (format json) execute "+stmt+args).Scan(&plan); err != nil {
		return false, err
	}
	return planUses(plan, names), nil
}
