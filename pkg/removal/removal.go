// Package removal holds the rules that make an index removable and the
// re-check of a removal proposal against the catalog, shared by the scorer
// (which proposes), the gatekeeper (which re-checks right before it
// approves) and the executor (which re-checks right before the DROP).
//
// A proposal rests on a reason seen at one moment. Before anything acts on
// it, Recheck asks the target again: the index still exists with the same
// definition, no build is creating it (IndexPilot's own pending, running or
// stopped build, or any CREATE INDEX / REINDEX in
// pg_stat_progress_create_index), and the reason still holds — still
// INVALID; still not scanned since the time recorded; still a duplicate or
// prefix of a valid twin (an index that is INVALID by now, with no build
// creating it, is removable whatever the reason was). If not, the proposal is stale and is superseded
// with the reason Recheck gives. While a build is creating the index,
// nothing acts on it either: the proposal waits and is re-checked after.
package removal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

const marker = "/* indexpilot:removal */ "

// SameColumns reports whether a and b are the same plain key columns in
// the same order (an expression key, "", never matches).
func SameColumns(a, b []string) bool {
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

// Redundant reports whether index is made redundant by twin, and how:
// both valid, plain-column keys, same method and predicate, and either the
// same key columns (duplicate) or, for btree, index's keys a proper left
// prefix of twin's (prefix).
func Redundant(index, twin indexdef.Existing) (events.RemovalReason, bool) {
	if index.Name == twin.Name || !index.Valid || !twin.Valid || index.HasExprKeys || twin.HasExprKeys ||
		index.Method != twin.Method || index.Predicate != twin.Predicate {
		return "", false
	}
	if SameColumns(index.Columns, twin.Columns) {
		return events.RemovalDuplicate, true
	}
	if index.Method == "btree" && len(index.Columns) < len(twin.Columns) &&
		SameColumns(index.Columns, twin.Columns[:len(index.Columns)]) {
		return events.RemovalPrefix, true
	}
	return "", false
}

// OwnBuilds returns the indexes ("schema.name") IndexPilot has a build of
// on target that is not finished: pending, running, or stopped by the
// emergency stop (to be resumed). Such an index may exist INVALID for a
// while; it is never proposed for removal.
func OwnBuilds(ctx context.Context, control postgres.Querier, target string) (map[string]bool, error) {
	out := map[string]bool{}
	rows, err := control.Query(ctx, marker+`select index_spec->>'schema', index_name from indexpilot.builds
 where target = $1 and state in ('pending','running','stopped')`, target)
	if err != nil {
		return nil, fmt.Errorf("read builds of %s: %w", target, err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			return nil, fmt.Errorf("read builds of %s: %w", target, err)
		}
		out[schema+"."+name] = true
	}
	return out, rows.Err()
}

// InBuildSQL is a boolean SQL expression over x, a row of
// pg_catalog.pg_index (the query names it x): true when a CREATE INDEX or
// REINDEX of the connected database, by a backend other than the caller's,
// may be creating that index right now, as pg_stat_progress_create_index
// shows it: the build works on the index itself, or the index is INVALID
// and the build works on its table (a build about to replace it). A
// progress row whose relation is hidden from the connected role (another
// role's backend, and the role lacks pg_read_all_stats) may be working on
// any index and counts for every one: when in doubt, never drop. The
// scorer proposes no removal of such an index; Recheck makes a proposal
// wait for the build.
const InBuildSQL = `exists(
  select 1 from pg_catalog.pg_stat_progress_create_index p
   where p.datid = (select d.oid from pg_catalog.pg_database d where d.datname = current_database())
     and p.pid <> pg_backend_pid()
     and (p.relid is null or p.index_relid = x.indexrelid or (not x.indisvalid and p.relid = x.indrelid)))`

// buildingSQL asks InBuildSQL about the index $1.$2.
const buildingSQL = marker + `select ` + InBuildSQL + `
  from pg_catalog.pg_index x
  join pg_catalog.pg_class i on i.oid = x.indexrelid
  join pg_catalog.pg_namespace n on n.oid = i.relnamespace
 where n.nspname = $1 and i.relname = $2`

// scansSQL is the index's scan counter on the target.
const scansSQL = marker + `select coalesce(s.idx_scan, 0) from pg_catalog.pg_stat_all_indexes s
 where s.schemaname = $1 and s.indexrelname = $2`

// Result is the answer of Recheck.
type Result struct {
	// Stale is why the proposal no longer holds, in one line for the
	// operator; "" when it holds (or cannot be judged while Building).
	Stale string
	// Building says a build is creating the index right now: nothing may
	// act on it until the build is over, when the proposal is re-checked.
	Building string
}

// Recheck asks target (and control, IndexPilot's own builds and recorded
// index usage; control may be nil) whether proposal p still holds.
func Recheck(ctx context.Context, target, control postgres.Querier, p *events.IndexRemovalProposed) (Result, error) {
	why, building, err := recheck(ctx, target, control, p)
	if building {
		return Result{Building: why}, err
	}
	return Result{Stale: why}, err
}

func recheck(ctx context.Context, target, control postgres.Querier, p *events.IndexRemovalProposed) (string, bool, error) {
	list, err := indexdef.Load(ctx, target, p.Schema, p.Table)
	if err != nil {
		return "", false, err
	}
	var self *indexdef.Existing
	for i := range list {
		if list[i].Name == p.IndexName {
			self = &list[i]
		}
	}
	if self == nil {
		return fmt.Sprintf("index %s.%s no longer exists", p.Schema, p.IndexName), false, nil
	}
	if p.Definition != "" && self.Definition != p.Definition {
		return "the index was redefined since the proposal: " + self.Definition, false, nil
	}
	if control != nil {
		own, err := OwnBuilds(ctx, control, p.Target)
		if err != nil {
			return "", false, err
		}
		if own[p.Schema+"."+p.IndexName] {
			return "IndexPilot has a build of this index in progress", true, nil
		}
	}
	var building bool
	err = target.QueryRow(ctx, buildingSQL, p.Schema, p.IndexName).Scan(&building)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Sprintf("index %s.%s no longer exists", p.Schema, p.IndexName), false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read build progress: %w", err)
	}
	if building {
		return "a CREATE INDEX or REINDEX is working on it (pg_stat_progress_create_index)", true, nil
	}
	if !self.Valid {
		// INVALID and no build creating it: it answers no query, so
		// whatever the proposal rested on, dropping it loses nothing. It
		// is also what an interrupted DROP INDEX CONCURRENTLY leaves (the
		// drop marks the index invalid before it waits out the table's
		// transactions): the removal's retry must finish that drop, not
		// call the proposal stale and leave the half-dropped index behind.
		return "", false, nil
	}
	switch p.Reason {
	case events.RemovalInvalid:
		if self.Valid {
			return "the index is valid now", false, nil
		}
	case events.RemovalUnused:
		why, err := unusedStale(ctx, target, control, p)
		return why, false, err
	case events.RemovalDuplicate, events.RemovalPrefix:
		for _, twin := range list {
			if twin.Name != p.RedundantWith {
				continue
			}
			if !twin.Valid {
				return fmt.Sprintf("its twin %s is not valid", twin.Name), false, nil
			}
			if how, ok := Redundant(*self, twin); !ok || how != p.Reason {
				return fmt.Sprintf("%s no longer makes it %s", twin.Name, p.Reason), false, nil
			}
			return "", false, nil
		}
		return fmt.Sprintf("its twin %s no longer exists", p.RedundantWith), false, nil
	}
	return "", false, nil
}

// unusedStale checks that the index was not scanned since the proposal:
// its counter on the target is not above the one recorded, and the usage
// record has not seen it change since UnusedSince.
func unusedStale(ctx context.Context, target, control postgres.Querier, p *events.IndexRemovalProposed) (string, error) {
	var scans int64
	err := target.QueryRow(ctx, scansSQL, p.Schema, p.IndexName).Scan(&scans)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read index scans: %w", err)
	}
	since := "the proposal"
	if p.UnusedSince != nil {
		since = p.UnusedSince.UTC().Format(time.RFC3339)
	}
	if scans > p.Scans {
		return fmt.Sprintf("the index was scanned since %s (%d scans, %d recorded)", since, scans, p.Scans), nil
	}
	if control == nil || p.UnusedSince == nil {
		return "", nil
	}
	var changed time.Time
	err = control.QueryRow(ctx, marker+`select scans_changed_at from indexpilot.index_usage
 where target = $1 and schema_name = $2 and index_name = $3`, p.Target, p.Schema, p.IndexName).Scan(&changed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read index usage: %w", err)
	}
	if changed.After(*p.UnusedSince) {
		return fmt.Sprintf("the index was scanned since %s (at %s)", since, changed.UTC().Format(time.RFC3339)), nil
	}
	return "", nil
}
