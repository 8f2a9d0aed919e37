// Package pgstat reads a target's statistics views: pg_stat_statements for
// the workload, pg_stat_user_tables and pg_stat_user_indexes for tables and
// their indexes. Every statement it sends starts with the collector marker.
package pgstat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
)

// marker starts every statement of this package.
var marker = postgres.Marker("collector")

// Source says whether and where pg_stat_statements can be read in a target
// database.
type Source struct {
	// Usable is false when the extension is missing or too old; Reason then
	// says why, in words fit for a log line.
	Usable bool
	Reason string
	// Schema is the extension's schema (the views are read qualified, so
	// search_path does not matter).
	Schema string
	// ServerVersion is server_version_num (150020 for 15.20).
	ServerVersion int
	// ExtVersion is the installed extension version ("1.10").
	ExtVersion string
}

// ErrNotLoaded is returned by ReadStatements when the extension exists in
// the database but the server did not preload its library.
var ErrNotLoaded = errors.New("pg_stat_statements is installed but not in shared_preload_libraries")

// ProbeStatements finds pg_stat_statements in the current database. A
// missing or pre-1.9 extension (no pg_stat_statements_info, no toplevel
// column) is reported through Source, not as an error.
func ProbeStatements(ctx context.Context, q postgres.Querier) (Source, error) {
	var (
		schema  string
		version string
		hasInfo bool
		server  int
	)
	err := q.QueryRow(ctx, marker+`select n.nspname, e.extversion,
       to_regclass(quote_ident(n.nspname) || '.pg_stat_statements_info') is not null,
       current_setting('server_version_num')::int
  from pg_extension e join pg_namespace n on n.oid = e.extnamespace
 where e.extname = 'pg_stat_statements'`).Scan(&schema, &version, &hasInfo, &server)
	if errors.Is(err, pgx.ErrNoRows) {
		return Source{Reason: "extension pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)"}, nil
	}
	if err != nil {
		return Source{}, fmt.Errorf("probe pg_stat_statements: %w", err)
	}
	if !hasInfo {
		return Source{Schema: schema, Reason: "pg_stat_statements " + version + " is older than 1.9 (ALTER EXTENSION pg_stat_statements UPDATE)"}, nil
	}
	return Source{Usable: true, Schema: schema, ServerVersion: server, ExtVersion: version}, nil
}

// extAtLeast reports whether extension version v is at least major.minor.
func extAtLeast(v string, major, minor int) bool {
	a, b, _ := strings.Cut(v, ".")
	ma, err1 := strconv.Atoi(a)
	mi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// StatementsSQL is the pg_stat_statements query for a server and extension
// version. Every column it reads exists in 1.9 (PostgreSQL 14) and later:
// queryid, userid, toplevel, query, calls, total_exec_time, rows,
// shared_blks_hit and shared_blks_read. stats_since, which tells an entry
// that was evicted and came back, exists from 1.11 (PostgreSQL 17) only;
// older versions read NULL in its place. (PostgreSQL 17 also renamed
// blk_read_time and blk_write_time, which are not read.)
func StatementsSQL(serverVersion int, extVersion, schema string) string {
	since := "null::timestamptz"
	if serverVersion >= 170000 && extAtLeast(extVersion, 1, 11) {
		since = "s.stats_since"
	}
	return marker + `select s.queryid, s.userid, s.toplevel, s.query, s.calls, s.total_exec_time,
       s.rows, s.shared_blks_hit, s.shared_blks_read, ` + since + `
  from ` + postgres.Ident(schema, "pg_stat_statements") + ` s
 where s.dbid = (select oid from pg_database where datname = current_database())
 order by s.queryid, s.userid, s.toplevel`
}

// ReadStatements reads the pg_stat_statements rows of the current database
// and the time of the view's last full reset. at becomes Sample.At.
func ReadStatements(ctx context.Context, q postgres.Querier, src Source, at time.Time) (delta.Sample, error) {
	s := delta.Sample{At: at}
	if !src.Usable {
		return s, errors.New("read pg_stat_statements: source not usable")
	}
	var reset *time.Time
	err := q.QueryRow(ctx, marker+"select stats_reset from "+postgres.Ident(src.Schema, "pg_stat_statements_info")).Scan(&reset)
	if err != nil {
		return s, readErr("read pg_stat_statements_info", err)
	}
	if reset != nil {
		s.StatsReset = reset.UTC()
	}
	rows, err := q.Query(ctx, StatementsSQL(src.ServerVersion, src.ExtVersion, src.Schema))
	if err != nil {
		return s, readErr("read pg_stat_statements", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			queryID *int64
			text    *string
			since   *time.Time
			r       delta.Row
		)
		if err := rows.Scan(&queryID, &r.UserID, &r.TopLevel, &text, &r.Calls, &r.TotalExecTimeMs,
			&r.Rows, &r.SharedBlksHit, &r.SharedBlksRead, &since); err != nil {
			return s, fmt.Errorf("scan pg_stat_statements: %w", err)
		}
		if queryID == nil {
			continue
		}
		r.QueryID = strconv.FormatInt(*queryID, 10)
		if text != nil {
			r.Query = *text
		}
		if since != nil {
			r.StatsSince = since.UTC()
		}
		s.Rows = append(s.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return s, readErr("read pg_stat_statements", err)
	}
	return s, nil
}

func readErr(what string, err error) error {
	// 55000: "pg_stat_statements must be loaded via shared_preload_libraries".
	if postgres.SQLState(err) == "55000" {
		return fmt.Errorf("%s: %w", what, ErrNotLoaded)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// TablesSQL is the table and index statistics query for a server version.
// It lists the user tables of the current database with their indexes and
// skips, for this poll, tables on which an ACCESS EXCLUSIVE lock is held or
// awaited (on the table or one of its indexes): the size functions would
// queue behind it. Parameter $1 is IndexPilot's schema. PostgreSQL 16 added
// last_seq_scan and last_idx_scan to pg_stat_user_tables and last_idx_scan
// to pg_stat_user_indexes; before 16 they read NULL.
//
// avg_row_width is the planner's estimate of a row's data width, as EXPLAIN
// shows it: per live column, pg_stats.avg_width once the table has been
// analysed, otherwise the type's fixed length or 32 bytes for a
// variable-length type (the planner's own default). The tuple header is not
// included.
func TablesSQL(serverVersion int) string {
	lastSeq, lastIdx, lastIndexScan := "null::timestamptz", "null::timestamptz", "null::timestamptz"
	if serverVersion >= 160000 {
		lastSeq, lastIdx, lastIndexScan = "s.last_seq_scan", "s.last_idx_scan", "si.last_idx_scan"
	}
	return marker + `with db as (
  select oid, (select stats_reset from pg_stat_database where datname = current_database()) as stats_reset
    from pg_database where datname = current_database()
), busy as (
  select l.relation as relid
    from pg_locks l join db on l.database = db.oid
   where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock'
  union
  select i.indrelid
    from pg_locks l join db on l.database = db.oid join pg_index i on i.indexrelid = l.relation
   where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock'
)
select s.schemaname, s.relname,
       coalesce(pg_relation_size(s.relid, 'main'), 0),
       coalesce(pg_total_relation_size(s.relid), 0),
       coalesce(s.n_live_tup, 0),
       coalesce(w.width, 0),
       coalesce(s.seq_scan, 0), coalesce(s.idx_scan, 0),
       coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_hot_upd, 0), coalesce(s.n_tup_del, 0),
       coalesce(x.indexes, '[]'::json),
       (select stats_reset from db), ` + lastSeq + `, ` + lastIdx + `
  from pg_stat_user_tables s
  join pg_class c on c.oid = s.relid
  left join lateral (
    select sum(coalesce(st.avg_width, case when t.typlen > 0 then t.typlen else 32 end))::bigint as width
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      left join pg_stats st on st.schemaname = s.schemaname and st.tablename = s.relname
                           and st.attname = a.attname and st.inherited = (c.relkind = 'p')
     where a.attrelid = s.relid and a.attnum > 0 and not a.attisdropped
  ) w on true
  left join lateral (
    select json_agg(json_strip_nulls(json_build_object(
             'name', ci.relname,
             'definition', coalesce(pg_get_indexdef(i.indexrelid), ''),
             'scans', coalesce(si.idx_scan, 0),
             'size_bytes', coalesce(pg_relation_size(i.indexrelid, 'main'), 0),
             'valid', i.indisvalid,
             'primary', i.indisprimary,
             'unique', i.indisunique,
             'tuples_read', coalesce(si.idx_tup_read, 0),
             'tuples_fetched', coalesce(si.idx_tup_fetch, 0),
             'constraint', exists(select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid),
             'exclusion', i.indisexclusion,
             'replica_identity', i.indisreplident,
             'last_scan_at', ` + lastIndexScan + `)) order by ci.relname) as indexes
      from pg_index i
      join pg_class ci on ci.oid = i.indexrelid
      left join pg_stat_user_indexes si on si.indexrelid = i.indexrelid
     where i.indrelid = s.relid
  ) x on true
 where s.schemaname <> $1
   and s.schemaname !~ '^pg_(toast_)?temp_'
   and s.relid not in (select relid from busy)
 order by s.schemaname, s.relname`
}

// ReadTables returns one TableStatObserved per user table of the current
// database, ordered by schema and table, observed at at. The indexpilot
// schema, system schemas (pg_stat_user_tables already leaves out pg_catalog,
// information_schema and TOAST) and other sessions' temporary schemas are
// left out.
//
// serverVersion is server_version_num; 0 means "probe it first".
func ReadTables(ctx context.Context, q postgres.Querier, target string, serverVersion int, at time.Time) ([]*events.TableStatObserved, error) {
	if serverVersion == 0 {
		v, err := postgres.ServerVersion(ctx, q)
		if err != nil {
			return nil, err
		}
		serverVersion = v
	}
	rows, err := q.Query(ctx, TablesSQL(serverVersion), metadata.Schema)
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	defer rows.Close()
	var out []*events.TableStatObserved
	for rows.Next() {
		t := &events.TableStatObserved{Target: target, ObservedAt: at}
		if err := rows.Scan(&t.Schema, &t.Table, &t.TableSizeBytes, &t.TotalSizeBytes, &t.LiveRows,
			&t.AvgRowWidthBytes, &t.SeqScans, &t.IdxScans, &t.Inserts, &t.Updates, &t.HotUpdates,
			&t.Deletes, &t.Indexes, &t.StatsResetAt, &t.LastSeqScanAt, &t.LastIdxScanAt); err != nil {
			return nil, fmt.Errorf("scan table statistics: %w", err)
		}
		if t.Indexes == nil {
			t.Indexes = []events.IndexStat{}
		}
		t.StatsResetAt, t.LastSeqScanAt, t.LastIdxScanAt = utc(t.StatsResetAt), utc(t.LastSeqScanAt), utc(t.LastIdxScanAt)
		for i := range t.Indexes {
			t.Indexes[i].LastScanAt = utc(t.Indexes[i].LastScanAt)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	return out, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
