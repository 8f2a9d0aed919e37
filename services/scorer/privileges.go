package scorer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/scorer/internal/candidates"
)

// unreadableWarned remembers the (scorer, target, table) warnings given,
// so that a role without SELECT is named once per process, not per run.
var unreadableWarned sync.Map

// withoutUnreadable leaves out the statements on tables the connected role
// may not SELECT: EXPLAIN, which prices every what-if, checks the
// privilege, so they could not be priced. It says so once per table with
// the privilege to grant; the statements stay in the retained workload and
// are scored once the privilege is granted. inputs is parallel to parsed.
func (s *Scorer) withoutUnreadable(ctx context.Context, q postgres.Querier, target string, parsed []*statement, inputs []candidates.Input) ([]*statement, []candidates.Input, error) {
	var schemas, tables []string
	seen := map[string]bool{}
	for _, st := range parsed {
		for key := range st.tables {
			if seen[key] {
				continue
			}
			seen[key] = true
			schema, table, _ := strings.Cut(key, ".")
			schemas, tables = append(schemas, schema), append(tables, table)
		}
	}
	if len(schemas) == 0 {
		return parsed, inputs, nil
	}
	rows, err := q.Query(ctx, postgres.Marker(Name)+`select n.nspname, c.relname, current_user::text
  from unnest($1::text[], $2::text[]) as t(s, r)
  join pg_namespace n on n.nspname = t.s
  join pg_class c on c.relnamespace = n.oid and c.relname = t.r
 where not has_table_privilege(c.oid, 'SELECT')`, schemas, tables)
	if err != nil {
		return nil, nil, fmt.Errorf("check SELECT privileges: %w", err)
	}
	denied := map[string]bool{}
	role := ""
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table, &role); err != nil {
			rows.Close()
			return nil, nil, err
		}
		denied[schema+"."+table] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("check SELECT privileges: %w", err)
	}
	if len(denied) == 0 {
		return parsed, inputs, nil
	}
	left := 0
	counts := map[string]int{}
	for i, st := range parsed {
		blocked := false
		for key := range st.tables {
			if denied[key] {
				counts[key]++
				blocked = true
			}
		}
		if !blocked {
			parsed[left], inputs[left] = parsed[i], inputs[i]
			left++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if _, dup := unreadableWarned.LoadOrStore(fmt.Sprintf("%p|%s|%s", s, target, key), true); dup {
			continue
		}
		schema, table, _ := strings.Cut(key, ".")
		s.deps.Logger.Warn(fmt.Sprintf("role %s lacks SELECT on %s: what-if pricing (EXPLAIN) needs it, so its statements are not scored until it is granted (grant select on %s to %s)",
			role, postgres.Ident(schema, table), postgres.Ident(schema, table), postgres.Ident(role)),
			slog.String("target", target), slog.Int("statements", counts[key]))
	}
	return parsed[:left], inputs[:left], nil
}
