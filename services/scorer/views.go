package scorer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

// viewDef is a view of the target as the extractor expands it.
type viewDef struct {
	definition      string
	securityBarrier bool
}

// loadViews reads the definition of every user view of the target
// (pg_get_viewdef, as the server prints it for the scorer's search_path).
// It runs with the rest of the catalog at every scoring run, so a view
// changed by DDL is seen at the next run.
func (c *catalog) loadViews(ctx context.Context, pool *pgxpool.Pool) error {
	c.views = map[string]viewDef{}
	rows, err := pool.Query(ctx, `/* indexpilot:scorer */
select n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid),
       coalesce(exists(select 1 from unnest(c.reloptions) o
                        where lower(o) in ('security_barrier=true', 'security_barrier=on', 'security_barrier=1', 'security_barrier=yes')), false)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind = 'v'
   and n.nspname not in ('pg_catalog', 'information_schema', 'indexpilot') and n.nspname not like 'pg_toast%'`)
	if err != nil {
		return fmt.Errorf("read views: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name string
		var v viewDef
		if err := rows.Scan(&schema, &name, &v.definition, &v.securityBarrier); err != nil {
			return fmt.Errorf("read views: %w", err)
		}
		c.views[schema+"."+name] = v
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read views: %w", err)
	}
	return nil
}

// View implements sqlparse.ViewCatalog: a qualified name as is, an
// unqualified one through search_path, where a table of the same name
// earlier in the path hides the view.
func (c *catalog) View(ref sqlparse.TableRef) (string, bool, bool) {
	if ref.Schema != "" {
		v, ok := c.views[ref.Schema+"."+ref.Name]
		return v.definition, v.securityBarrier, ok
	}
	for _, s := range c.path {
		if _, table := c.columns[s+"."+ref.Name]; table {
			return "", false, false
		}
		if v, ok := c.views[s+"."+ref.Name]; ok {
			return v.definition, v.securityBarrier, true
		}
	}
	return "", false, false
}
