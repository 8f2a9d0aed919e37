package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// relKind returns pg_class.relkind of schema.table, "" when it does not
// exist (the CREATE INDEX then reports the missing table with its SQLSTATE).
func relKind(ctx context.Context, q postgres.Querier, schema, table string) (string, error) {
	var kind string
	err := q.QueryRow(ctx, marker+`select c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relname = $2`, schema, table).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return kind, err
}

// partition is one direct partition of a partitioned table.
type partition struct{ schema, table string }

// runPartitioned builds the index of a partitioned table the only way
// PostgreSQL allows without blocking writes: a concurrent build on each
// partition (recursively for sub-partitioned ones), then CREATE INDEX ON
// ONLY the parent (an invalid, empty catalog entry) and ALTER INDEX ...
// ATTACH PARTITION of every partition's index, after which PostgreSQL marks
// the parent's index valid.
//
// Every step is idempotent, so an interrupted build resumes: a partition's
// valid index (ours, or an equal one of the user's) is reused, and an
// invalid parent index of ours is completed rather than dropped (it is
// created only after every partition is built, and holds no data).
func (b *builder) runPartitioned(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	conn, release, err := b.connect(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()

	existing, err := indexdef.Load(ctx, conn, b.spec.Schema, b.spec.Table)
	if err != nil {
		return Result{}, newError(ctx, "load indexes", err)
	}
	resume := false
	for _, e := range existing {
		if !e.Equal(b.spec) {
			continue
		}
		if e.Valid {
			return Result{Name: e.Name, Definition: e.Definition, AlreadyExisted: true,
				SizeBytes: e.SizeBytes, Duration: time.Since(b.start)}, nil
		}
		if e.Name == b.name {
			resume = true
		}
	}

	rows, err := conn.Query(ctx, marker+`select n.nspname, c.relname
  from pg_inherits i
  join pg_class c on c.oid = i.inhrelid
  join pg_namespace n on n.oid = c.relnamespace
 where i.inhparent = (select t.oid from pg_class t join pg_namespace tn on tn.oid = t.relnamespace
                       where tn.nspname = $1 and t.relname = $2)
 order by n.nspname, c.relname`, b.spec.Schema, b.spec.Table)
	if err != nil {
		return Result{}, newError(ctx, "list partitions", err)
	}
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partition, error) {
		var p partition
		return p, r.Scan(&p.schema, &p.table)
	})
	if err != nil {
		return Result{}, newError(ctx, "list partitions", err)
	}

	var ddl []string
	type childIndex struct{ schema, name string }
	childIdx := make([]childIndex, 0, len(parts))
	for _, p := range parts {
		cs := b.spec
		cs.Schema, cs.Table = p.schema, p.table
		res, err := Build(ctx, pool, cs, b.opts)
		if err != nil {
			var be *Error
			if errors.As(err, &be) {
				be.Op = "partition " + p.schema + "." + p.table + ": " + be.Op
				return Result{}, be
			}
			return Result{}, err
		}
		if res.DDL != "" {
			ddl = append(ddl, res.DDL)
		}
		childIdx = append(childIdx, childIndex{schema: p.schema, name: res.Name})
	}

	if !resume {
		cols := make([]string, len(b.spec.Columns))
		for i, c := range b.spec.Columns {
			cols[i] = postgres.Ident(c)
		}
		stmt := fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON ONLY %s USING %s (%s)", postgres.Ident(b.name),
			postgres.Ident(b.spec.Schema, b.spec.Table), indexdef.Method(b.spec), strings.Join(cols, ", "))
		if _, err := conn.Exec(ctx, marker+stmt); err != nil {
			return Result{}, newError(ctx, "create parent index", err)
		}
		ddl = append(ddl, stmt)
	}
	for _, c := range childIdx {
		var attached bool
		err := conn.QueryRow(ctx, marker+`select exists(
  select 1 from pg_inherits i
   where i.inhrelid = (select x.oid from pg_class x join pg_namespace n on n.oid = x.relnamespace
                        where n.nspname = $1 and x.relname = $2)
     and i.inhparent = (select x.oid from pg_class x join pg_namespace n on n.oid = x.relnamespace
                         where n.nspname = $3 and x.relname = $4))`,
			c.schema, c.name, b.spec.Schema, b.name).Scan(&attached)
		if err != nil {
			return Result{}, newError(ctx, "check attached index", err)
		}
		if attached {
			continue
		}
		stmt := "ALTER INDEX " + postgres.Ident(b.spec.Schema, b.name) + " ATTACH PARTITION " + postgres.Ident(c.schema, c.name)
		if _, err := conn.Exec(ctx, marker+stmt); err != nil {
			return Result{}, newError(ctx, "attach partition index", err)
		}
		ddl = append(ddl, stmt)
	}

	var res Result
	var ok bool
	err = conn.QueryRow(ctx, marker+`select x.indisvalid, pg_get_indexdef(x.indexrelid),
       coalesce((select sum(pg_relation_size(t.relid)) from pg_partition_tree(x.indexrelid) t), 0)::bigint
  from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace
 where n.nspname = $1 and i.relname = $2`, b.spec.Schema, b.name).Scan(&ok, &res.Definition, &res.SizeBytes)
	if err != nil {
		return Result{}, newError(ctx, "check index", err)
	}
	if !ok {
		return Result{}, &Error{Op: "check index", Class: postgres.Transient, Err: ErrInvalidAfterBuild}
	}
	res.Name, res.DDL, res.Duration = b.name, strings.Join(ddl, ";\n"), time.Since(b.start)
	return res, nil
}
