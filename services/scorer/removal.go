package scorer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
)

// removalIndex is one index of the target as the removal rules see it.
type removalIndex struct {
	indexdef.Existing
	// protected: primary key, unique, exclusion, backing a constraint,
	// the replica identity, or a partition of a partitioned index (it can
	// only go with its parent) — never proposed.
	protected bool
	// building: a CREATE INDEX or REINDEX is running on its table.
	building bool
	scans    int64
	// usage is from indexpilot.index_usage; nil when never observed.
	unusedSince, observedAt *time.Time
}

// removalSQL lists every index of the target's user tables with what the
// safety rules need. The index's key columns come from indexdef.Load.
const removalSQL = `/* indexpilot:scorer */
select n.nspname, t.relname, i.relname,
       x.indisprimary or x.indisunique or x.indisexclusion or x.indisreplident or i.relispartition
         or exists(select 1 from pg_catalog.pg_constraint c where c.conindid = x.indexrelid),
       exists(select 1 from pg_catalog.pg_stat_progress_create_index p where p.relid = x.indrelid),
       coalesce(s.idx_scan, 0)
  from pg_catalog.pg_index x
  join pg_catalog.pg_class i on i.oid = x.indexrelid
  join pg_catalog.pg_class t on t.oid = x.indrelid
  join pg_catalog.pg_namespace n on n.oid = t.relnamespace
  left join pg_catalog.pg_stat_all_indexes s on s.indexrelid = x.indexrelid
 where t.relkind in ('r', 'p', 'm')
   and n.nspname not in ('pg_catalog', 'information_schema', 'indexpilot') and n.nspname not like 'pg_toast%'
 order by n.nspname, i.relname`

// removals proposes the indexes of target to drop:
//
//   - INVALID indexes when no CREATE INDEX runs on their table;
//   - duplicates (same method, key columns in order and predicate as
//     another valid index) and left-prefix-redundant btrees (their key
//     columns a proper left prefix of another valid btree's, same
//     predicate), keeping the protected one, else the one whose name sorts
//     first;
//   - unused indexes: no scan for scorer.unused_retention, measured from
//     indexpilot.index_usage (fed by the table statistics events), only
//     IndexPilot's own (ip_) unless scorer.remove_user_indexes.
//
// Protected indexes (primary key, unique, exclusion, constraint-backing,
// replica identity) are never proposed.
func (s *Scorer) removals(ctx context.Context, pool *pgxpool.Pool, target, fv string) ([]*events.IndexRemovalProposed, error) {
	rows, err := pool.Query(ctx, removalSQL)
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", target, err)
	}
	type flags struct {
		protected, building bool
		scans               int64
	}
	info := map[string]flags{}
	schemas := map[string]bool{}
	for rows.Next() {
		var schema, table, name string
		var f flags
		if err := rows.Scan(&schema, &table, &name, &f.protected, &f.building, &f.scans); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read indexes of %s: %w", target, err)
		}
		info[schema+"."+name] = f
		schemas[schema] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", target, err)
	}
	usage, err := s.indexUsage(ctx, target)
	if err != nil {
		return nil, err
	}
	var latest time.Time
	for _, u := range usage {
		if u.observed.After(latest) {
			latest = u.observed
		}
	}
	byTable := map[string][]*removalIndex{}
	var tables []string
	for _, schema := range sortedKeys(schemas) {
		list, err := indexdef.Load(ctx, pool, schema, "")
		if err != nil {
			return nil, err
		}
		for _, e := range list {
			f, ok := info[e.Schema+"."+e.Name]
			if !ok {
				continue
			}
			ri := &removalIndex{Existing: e, protected: f.protected || e.Primary || e.Unique || e.Constraint,
				building: f.building, scans: f.scans}
			if u, ok := usage[e.Schema+"."+e.Name]; ok {
				ri.unusedSince, ri.observedAt = &u.changed, &u.observed
				// Scanned since the last observation: not unused.
				if f.scans > u.scans {
					ri.unusedSince = nil
				}
				ri.scans = u.scans
			}
			key := e.Schema + "." + e.Table
			if byTable[key] == nil {
				tables = append(tables, key)
			}
			byTable[key] = append(byTable[key], ri)
		}
	}
	sort.Strings(tables)
	cfg := s.deps.Config.Scorer
	var out []*events.IndexRemovalProposed
	for _, key := range tables {
		list := byTable[key]
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		proposed := map[string]bool{}
		propose := func(ri *removalIndex, reason events.RemovalReason, with string, at time.Time) {
			proposed[ri.Name] = true
			p := &events.IndexRemovalProposed{
				Target: target, RemovalID: events.RemovalID(target, ri.Schema, ri.Name, ri.Definition),
				Schema: ri.Schema, Table: ri.Table, IndexName: ri.Name, Definition: ri.Definition,
				Index:  events.IndexSpec{Schema: ri.Schema, Table: ri.Table, Method: ri.Method, Columns: ri.Columns, Predicate: ri.Predicate},
				Reason: reason, RedundantWith: with, SizeBytes: ri.SizeBytes, Scans: ri.scans,
				CreatedByIndexPilot: strings.HasPrefix(ri.Name, indexdef.NamePrefix), FormulaVersion: fv,
				ObservedAt: at.UTC().Truncate(time.Microsecond),
			}
			if reason == events.RemovalUnused {
				since := ri.unusedSince.UTC().Truncate(time.Microsecond)
				p.UnusedSince = &since
			}
			out = append(out, p)
		}
		observed := func(ri *removalIndex) time.Time {
			if ri.observedAt != nil {
				return *ri.observedAt
			}
			return latest
		}
		for _, ri := range list {
			if ri.protected {
				continue
			}
			if !ri.Valid && !ri.building {
				propose(ri, events.RemovalInvalid, "", observed(ri))
			}
		}
		for _, ri := range list {
			if ri.protected || !ri.Valid || proposed[ri.Name] || ri.HasExprKeys {
				continue
			}
			for _, other := range list {
				if other == ri || !other.Valid || proposed[other.Name] || other.HasExprKeys ||
					other.Method != ri.Method || other.Predicate != ri.Predicate {
					continue
				}
				if sameColumns(ri.Columns, other.Columns) {
					// Keep the protected one, else the first name.
					if other.protected || other.Name < ri.Name {
						propose(ri, events.RemovalDuplicate, other.Name, observed(ri))
						break
					}
					continue
				}
				if ri.Method == "btree" && len(ri.Columns) < len(other.Columns) && sameColumns(ri.Columns, other.Columns[:len(ri.Columns)]) {
					propose(ri, events.RemovalPrefix, other.Name, observed(ri))
					break
				}
			}
		}
		for _, ri := range list {
			if ri.protected || !ri.Valid || proposed[ri.Name] || ri.unusedSince == nil {
				continue
			}
			if !cfg.RemoveUserIndexes && !strings.HasPrefix(ri.Name, indexdef.NamePrefix) {
				continue
			}
			if ri.observedAt.Sub(*ri.unusedSince) >= cfg.UnusedRetention {
				propose(ri, events.RemovalUnused, "", *ri.observedAt)
			}
		}
	}
	return out, nil
}

type usageRow struct {
	observed, changed time.Time
	scans             int64
}

// indexUsage reads, per "schema.index", when its scan counter last changed
// and when it was last observed.
func (s *Scorer) indexUsage(ctx context.Context, target string) (map[string]usageRow, error) {
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select schema_name, index_name, observed_at, scans_changed_at, scans from indexpilot.index_usage where target = $1`, target)
	if err != nil {
		return nil, fmt.Errorf("read index usage of %s: %w", target, err)
	}
	out := map[string]usageRow{}
	defer rows.Close()
	for rows.Next() {
		var schema, name string
		var u usageRow
		if err := rows.Scan(&schema, &name, &u.observed, &u.changed, &u.scans); err != nil {
			return nil, fmt.Errorf("read index usage of %s: %w", target, err)
		}
		out[schema+"."+name] = u
	}
	return out, rows.Err()
}

func sameColumns(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] == "" || a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
