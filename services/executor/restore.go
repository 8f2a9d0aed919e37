package executor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// RestoreResult says what Restore did.
type RestoreResult struct {
	RemovalID string `json:"removal_id"`
	Target    string `json:"target"`
	IndexName string `json:"index_name"`
	// DDL is the statement that was run ("" when the index already existed).
	DDL            string `json:"ddl"`
	AlreadyExisted bool   `json:"already_existed"`
}

// ErrNotRestorable is returned for an id that names no dropped removal.
var ErrNotRestorable = errors.New("no dropped index with this removal id")

var createIndexPrefix = regexp.MustCompile(`^CREATE (UNIQUE )?INDEX `)

// concurrentDefinition turns a pg_get_indexdef text into the same CREATE
// INDEX run concurrently. It refuses anything else, and a partitioned
// index (ON ONLY), which PostgreSQL cannot build concurrently.
func concurrentDefinition(def string) (string, error) {
	loc := createIndexPrefix.FindStringIndex(def)
	if loc == nil || strings.Contains(def, ";") {
		return "", errors.New("stored definition is not a single CREATE INDEX")
	}
	if strings.Contains(def, " ON ONLY ") {
		return "", errors.New("a partitioned index cannot be restored concurrently; recreate it per partition")
	}
	return def[:loc[1]] + "CONCURRENTLY " + def[loc[1]:], nil
}

// Restore recreates the index that the removal id (or a unique prefix of
// it) dropped, from its recorded definition, with CREATE INDEX
// CONCURRENTLY under lock_timeout and statement_timeout; the removal
// becomes "restored" and the restore is written to mutation_log. An index
// of that name that already exists is left alone.
func Restore(ctx context.Context, control *pgxpool.Pool, targets *stage.Targets, cfg config.Executor, id string) (RestoreResult, error) {
	var res RestoreResult
	var schema, table, def string
	var matches int
	if id == "" {
		return res, fmt.Errorf("restore: %w", ErrNotRestorable)
	}
	err := control.QueryRow(ctx, marker+`select id::text, target, schema_name, index_name, coalesce(table_name, ''),
       coalesce(definition, ''), count(*) over ()
  from indexpilot.removals
 where state = 'done' and starts_with(id::text, $1)
 limit 1`, strings.ToLower(id)).Scan(&res.RemovalID, &res.Target, &schema, &res.IndexName, &table, &def, &matches)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, fmt.Errorf("restore %s: %w", id, ErrNotRestorable)
	}
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", id, err)
	}
	if matches > 1 {
		return res, fmt.Errorf("restore %s: the id prefix matches %d removals", id, matches)
	}
	ddl, err := concurrentDefinition(def)
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", id, err)
	}
	pool, err := targets.Pool(ctx, res.Target)
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", id, err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, marker+`select exists(select 1 from pg_class i join pg_namespace n on n.oid = i.relnamespace
 where n.nspname = $1 and i.relname = $2)`, schema, res.IndexName).Scan(&exists); err != nil {
		return res, fmt.Errorf("restore %s: read catalog: %w", id, err)
	}
	if exists {
		res.AlreadyExisted = true
	} else {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", id, err)
		}
		err = func() error {
			defer conn.Release()
			for _, s := range [][2]string{
				{"lock_timeout", fmt.Sprintf("%dms", cfg.LockTimeout.Milliseconds())},
				{"statement_timeout", fmt.Sprintf("%dms", cfg.StatementTimeout.Milliseconds())},
			} {
				if _, err := conn.Exec(ctx, marker+"select set_config($1, $2, false)", s[0], s[1]); err != nil {
					return err
				}
			}
			_, err := conn.Exec(ctx, marker+ddl)
			if err != nil {
				// Never leave an INVALID copy behind, nor this session's settings.
				_, _ = conn.Exec(context.WithoutCancel(ctx), marker+"DROP INDEX CONCURRENTLY IF EXISTS "+postgres.Ident(schema, res.IndexName))
			}
			for _, name := range []string{"lock_timeout", "statement_timeout"} {
				_, _ = conn.Exec(context.WithoutCancel(ctx), marker+"reset "+name)
			}
			return err
		}()
		if err != nil {
			return res, fmt.Errorf("restore %s: %s", id, postgres.Describe(err))
		}
		res.DDL = ddl
	}
	err = pgx.BeginFunc(ctx, control, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, marker+`update indexpilot.removals set state = 'restored', restored_at = now(), updated_at = now()
 where id = $1`, res.RemovalID); err != nil {
			return err
		}
		// A removed IndexPilot index is applied again.
		if _, err := tx.Exec(ctx, marker+`update indexpilot.recommendations r
   set state = 'applied', reason = 'restored', detail = 'indexpilot restore ' || d.id::text, updated_at = now()
  from indexpilot.removals d
 where d.id = $1 and r.id = d.recommendation_id and r.state = 'removed'`, res.RemovalID); err != nil {
			return err
		}
		_, err := metadata.AppendLog(ctx, tx, metadata.Entry{Stage: "cli", Action: "restore", Outcome: "restored",
			Target: res.Target, Schema: schema, Table: table, IndexName: res.IndexName, DDL: res.DDL,
			Reason: "indexpilot restore", Evidence: map[string]any{"removal_id": res.RemovalID, "definition": def,
				"already_existed": res.AlreadyExisted}})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("restore %s: record: %w", id, err)
	}
	return res, nil
}
