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
	"github.com/indexpilot/indexpilot/pkg/removal"
)

// removalIndex is one index of the target as the removal rules see it.
type removalIndex struct {
	indexdef.Existing
	// protected: primary key, unique, exclusion, backing a constraint,
	// the replica identity, or a partition of a partitioned index (it can
	// only go with its parent) — never proposed.
	protected bool
	// inBuild: a build may be creating this index: IndexPilot's own
	// (pending, running or stopped), or a CREATE INDEX / REINDEX in
	// pg_stat_progress_create_index (removal.InBuildSQL). Never proposed,
	// for any reason.
	inBuild bool
	scans   int64
	// usage is from indexpilot.index_usage; nil when never observed.
	unusedSince, observedAt *time.Time
}

// removalSQL lists every index of the target's user tables with what the
// safety rules need. The index's key columns come from indexdef.Load.
const removalSQL = `/* indexpilot:scorer */
select n.nspname, t.relname, i.relname,
       x.indisprimary or x.indisunique or x.indisexclusion or x.indisreplident or i.relispartition
         or exists(select 1 from pg_catalog.pg_constraint c where c.conindid = x.indexrelid),
       ` + removal.InBuildSQL + `,
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
//   - INVALID indexes when no CREATE INDEX or REINDEX runs on their table;
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
// replica identity) are never proposed, nor an index a build may be
// creating: IndexPilot's own pending, running or stopped build of it, or a
// CREATE INDEX / REINDEX in pg_stat_progress_create_index on it, or on its
// table when it is INVALID, or one whose relation the role may not see
// (removal.InBuildSQL).
//
// updated, when known (a scoring run), holds per "schema.table" the
// columns the workload's UPDATEs set: a partial btree whose predicate
// column is among them, next to a full btree on the same leading keys, is
// proposed as prefix_redundant too (indexdef.Supersedes).
func (s *Scorer) removals(ctx context.Context, pool *pgxpool.Pool, target, fv string, updated map[string]map[string]bool) ([]*events.IndexRemovalProposed, error) {
	if s.deps.Control == nil {
		// Advise: removals need the index usage the pipeline stores.
		return nil, nil
	}
	rows, err := pool.Query(ctx, removalSQL)
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", target, err)
	}
	type flags struct {
		protected, inBuild bool
		scans              int64
	}
	info := map[string]flags{}
	schemas := map[string]bool{}
	for rows.Next() {
		var schema, table, name string
		var f flags
		if err := rows.Scan(&schema, &table, &name, &f.protected, &f.inBuild, &f.scans); err != nil {
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
	own, err := removal.OwnBuilds(ctx, s.deps.Control, target)
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
				inBuild: f.inBuild || own[e.Schema+"."+e.Name], scans: f.scans}
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
			if ri.protected || ri.inBuild {
				continue
			}
			if !ri.Valid {
				propose(ri, events.RemovalInvalid, "", observed(ri))
			}
		}
		for _, ri := range list {
			if ri.protected || ri.inBuild || !ri.Valid || proposed[ri.Name] || ri.HasExprKeys {
				continue
			}
			for _, other := range list {
				how, ok := removal.Redundant(ri.Existing, other.Existing)
				if !ok || proposed[other.Name] {
					continue
				}
				// Of two duplicates keep the protected one, else the first name.
				if how == events.RemovalDuplicate && !other.protected && other.Name > ri.Name {
					continue
				}
				propose(ri, how, other.Name, observed(ri))
				break
			}
			if proposed[ri.Name] || ri.Predicate == "" {
				continue
			}
			// A partial index whose predicate column the workload updates,
			// next to a full one on the same leading keys.
			cols := updated[key]
			for _, other := range list {
				if other == ri || !other.Valid || proposed[other.Name] || other.HasExprKeys || other.Predicate != "" {
					continue
				}
				if indexdef.Supersedes(existingSpec(other.Existing), existingSpec(ri.Existing), func(c string) bool { return cols[c] }) {
					propose(ri, events.RemovalPrefix, other.Name, observed(ri))
					break
				}
			}
		}
		for _, ri := range list {
			if ri.protected || ri.inBuild || !ri.Valid || proposed[ri.Name] || ri.unusedSince == nil {
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

// existingSpec is the spec of an index of the catalog without expression
// keys.
func existingSpec(e indexdef.Existing) events.IndexSpec {
	return events.IndexSpec{Schema: e.Schema, Table: e.Table, Method: e.Method, Columns: e.Columns, Directions: e.Directions, Predicate: e.Predicate}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
