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
	// DBID is the oid of the current database.
	DBID uint32
}

// HasStatsSince reports whether the counters read carry stats_since.
func (s Source) HasStatsSince() bool {
	return s.ServerVersion >= 170000 && extAtLeast(s.ExtVersion, 1, 11)
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
		dbid    uint32
	)
	err := q.QueryRow(ctx, marker+`select n.nspname, e.extversion,
       to_regclass(quote_ident(n.nspname) || '.pg_stat_statements_info') is not null,
       current_setting('server_version_num')::int,
       (select oid from pg_database where datname = current_database())
  from pg_extension e join pg_namespace n on n.oid = e.extnamespace
 where e.extname = 'pg_stat_statements'`).Scan(&schema, &version, &hasInfo, &server, &dbid)
	if errors.Is(err, pgx.ErrNoRows) {
		return Source{Reason: "extension pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)"}, nil
	}
	if err != nil {
		return Source{}, fmt.Errorf("probe pg_stat_statements: %w", err)
	}
	if !hasInfo {
		return Source{Schema: schema, Reason: "pg_stat_statements " + version + " is older than 1.9 (ALTER EXTENSION pg_stat_statements UPDATE)"}, nil
	}
	return Source{Usable: true, Schema: schema, ServerVersion: server, ExtVersion: version, DBID: dbid}, nil
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
// version. It reads the counters without the statement texts
// (pg_stat_statements(false)): with texts, the server reads its whole query
// text file (every database's statements) at each call, which is most of
// the cost of a poll once the server keeps tens of thousands of statements.
// Texts are read by TextsSQL, only for query ids not seen before.
//
// Every column it reads exists in 1.9 (PostgreSQL 14) and later: queryid,
// userid, toplevel, calls, total_exec_time, rows, shared_blks_hit and
// shared_blks_read. stats_since, which tells an entry that was evicted and
// came back, exists from 1.11 (PostgreSQL 17) only; older versions read
// NULL in its place. (PostgreSQL 17 also renamed blk_read_time and
// blk_write_time, which are not read.)
func StatementsSQL(serverVersion int, extVersion, schema string) string {
	return countersSQL(Source{ServerVersion: serverVersion, ExtVersion: extVersion, Schema: schema}, false)
}

// countersSQL reads the counters of the current database, or of every
// database when all is set.
func countersSQL(src Source, all bool) string {
	since := "null::timestamptz"
	if src.HasStatsSince() {
		since = "s.stats_since"
	}
	where := "\n where s.dbid = (select oid from pg_database where datname = current_database())"
	if all {
		where = ""
	}
	return marker + `select s.dbid, s.queryid, s.userid, s.toplevel, s.calls, s.total_exec_time,
       s.rows, s.shared_blks_hit, s.shared_blks_read, ` + since + `
  from ` + postgres.Ident(src.Schema, "pg_stat_statements") + `(false) s` + where + `
 order by s.dbid, s.queryid, s.userid, s.toplevel`
}

// TextsSQL reads the texts of the query ids in $1 (bigint[]) of the current
// database.
func TextsSQL(schema string) string {
	return marker + `select distinct on (s.queryid) s.queryid, s.query
  from ` + postgres.Ident(schema, "pg_stat_statements") + `(true) s
 where s.dbid = (select oid from pg_database where datname = current_database())
   and s.queryid = any($1::bigint[]) and s.query is not null
 order by s.queryid, s.toplevel desc, s.userid`
}

// Texts remembers statement texts by query id between polls of one target,
// so that a poll reads texts only for statements it has not seen before.
// The zero value is ready to use; it is not safe for concurrent use.
type Texts struct {
	m map[int64]string
	// Fetched counts the texts read from the server so far.
	Fetched int
}

// Len is the number of texts remembered.
func (t *Texts) Len() int { return len(t.m) }

// Counters is one read of the pg_stat_statements counters, without texts.
type Counters struct {
	// At is when the read started.
	At time.Time
	// StatsReset is pg_stat_statements_info.stats_reset.
	StatsReset time.Time
	// ByDB holds the rows of each database read, by database oid, ordered
	// by query id, user and nesting level. Query is empty.
	ByDB map[uint32][]delta.Row
}

// ReadCounters reads the counters of the current database, or of every
// database of the server when all is set (one read then serves every
// target that is a database of the server), and the time of the view's
// last full reset. at becomes Counters.At.
func ReadCounters(ctx context.Context, q postgres.Querier, src Source, at time.Time, all bool) (Counters, error) {
	c := Counters{At: at, ByDB: map[uint32][]delta.Row{}}
	if !src.Usable {
		return c, errors.New("read pg_stat_statements: source not usable")
	}
	var reset *time.Time
	err := q.QueryRow(ctx, marker+"select stats_reset from "+postgres.Ident(src.Schema, "pg_stat_statements_info")).Scan(&reset)
	if err != nil {
		return c, readErr("read pg_stat_statements_info", err)
	}
	if reset != nil {
		c.StatsReset = reset.UTC()
	}
	rows, err := q.Query(ctx, countersSQL(src, all))
	if err != nil {
		return c, readErr("read pg_stat_statements", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			dbid    uint32
			queryID *int64
			since   *time.Time
			r       delta.Row
		)
		if err := rows.Scan(&dbid, &queryID, &r.UserID, &r.TopLevel, &r.Calls, &r.TotalExecTimeMs,
			&r.Rows, &r.SharedBlksHit, &r.SharedBlksRead, &since); err != nil {
			return c, fmt.Errorf("scan pg_stat_statements: %w", err)
		}
		if queryID == nil {
			continue
		}
		r.QueryID = strconv.FormatInt(*queryID, 10)
		if since != nil {
			r.StatsSince = since.UTC()
		}
		c.ByDB[dbid] = append(c.ByDB[dbid], r)
	}
	if err := rows.Err(); err != nil {
		return c, readErr("read pg_stat_statements", err)
	}
	return c, nil
}

// Rows returns a copy of the rows of database dbid and their query ids.
func (c Counters) Rows(dbid uint32) ([]delta.Row, []int64) {
	rows := append([]delta.Row(nil), c.ByDB[dbid]...)
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i], _ = strconv.ParseInt(r.QueryID, 10, 64)
	}
	return rows, ids
}

// AllTextsSQL reads the text of every statement of every database.
func AllTextsSQL(schema string) string {
	return marker + `select s.dbid, s.queryid, s.query
  from ` + postgres.Ident(schema, "pg_stat_statements") + `(true) s
 where s.queryid is not null and s.query is not null`
}

// ReadAllTexts reads the text of every statement of every database of the
// server, by database oid and query id: one read of the query text file
// for all targets that are databases of the server.
func ReadAllTexts(ctx context.Context, q postgres.Querier, src Source) (map[uint32]map[int64]string, error) {
	rows, err := q.Query(ctx, AllTextsSQL(src.Schema))
	if err != nil {
		return nil, readErr("read pg_stat_statements texts", err)
	}
	defer rows.Close()
	out := map[uint32]map[int64]string{}
	for rows.Next() {
		var (
			dbid uint32
			id   int64
			text string
		)
		if err := rows.Scan(&dbid, &id, &text); err != nil {
			return nil, fmt.Errorf("scan pg_stat_statements texts: %w", err)
		}
		if out[dbid] == nil {
			out[dbid] = map[int64]string{}
		}
		out[dbid][id] = text
	}
	if err := rows.Err(); err != nil {
		return nil, readErr("read pg_stat_statements texts", err)
	}
	return out, nil
}

// Sample is the sample of the database src describes: its rows of c, with
// their texts from texts (read from the server through q for query ids
// texts does not hold yet; ids no longer in the view are forgotten). c is
// not modified.
func (c Counters) Sample(ctx context.Context, q postgres.Querier, src Source, texts *Texts) (delta.Sample, error) {
	s := delta.Sample{At: c.At, StatsReset: c.StatsReset}
	var ids []int64
	s.Rows, ids = c.Rows(src.DBID)
	if texts == nil {
		texts = &Texts{}
	}
	if err := texts.fill(ctx, q, src.Schema, ids); err != nil {
		return s, err
	}
	for i := range s.Rows {
		// A statement evicted between the two reads has no text: it reads
		// as unreadable for this poll (and is left out), and is looked up
		// again at the next.
		s.Rows[i].Query = texts.m[ids[i]]
	}
	return s, nil
}

// ReadStatements reads the pg_stat_statements rows of the current database
// with their texts (see Counters.Sample) and the time of the view's last
// full reset. at becomes Sample.At. A nil texts reads every text.
func ReadStatements(ctx context.Context, q postgres.Querier, src Source, at time.Time, texts *Texts) (delta.Sample, error) {
	c, err := ReadCounters(ctx, q, src, at, false)
	if err != nil {
		return delta.Sample{At: at}, err
	}
	if len(c.ByDB) == 1 {
		// The current database's oid, for a src built by hand.
		for id := range c.ByDB {
			src.DBID = id
		}
	}
	return c.Sample(ctx, q, src, texts)
}

// fill reads the texts of the ids it does not hold and forgets the ids not
// in ids.
func (t *Texts) fill(ctx context.Context, q postgres.Querier, schema string, ids []int64) error {
	seen := make(map[int64]bool, len(ids))
	var missing []int64
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, ok := t.m[id]; !ok {
			missing = append(missing, id)
		}
	}
	for id := range t.m {
		if !seen[id] {
			delete(t.m, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if t.m == nil {
		t.m = make(map[int64]string, len(missing))
	}
	rows, err := q.Query(ctx, TextsSQL(schema), missing)
	if err != nil {
		return readErr("read pg_stat_statements texts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   int64
			text string
		)
		if err := rows.Scan(&id, &text); err != nil {
			return fmt.Errorf("scan pg_stat_statements texts: %w", err)
		}
		t.m[id] = text
		t.Fetched++
	}
	if err := rows.Err(); err != nil {
		return readErr("read pg_stat_statements texts", err)
	}
	return nil
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
// last_seq_scan, last_idx_scan and n_tup_newpage_upd to pg_stat_user_tables
// and last_idx_scan to pg_stat_user_indexes; before 16 they read NULL.
//
// The server's next transaction id (pg_snapshot_xmax of the current
// snapshot, PostgreSQL 13+; xid8 has no cast to a number but through its
// text) is read in the same statement, so at the same instant as the
// counters: only transactions that write get an id, so its increase
// between polls counts the server's write transactions (every database).
//
// avg_row_width is the planner's estimate of a row's data width, as EXPLAIN
// shows it: per live column, pg_stats.avg_width once the table has been
// analysed, otherwise the type's fixed length or 32 bytes for a
// variable-length type (the planner's own default). The tuple header is not
// included.
func TablesSQL(serverVersion int) string {
	lastSeq, lastIdx, lastIndexScan := "null::timestamptz", "null::timestamptz", "null::timestamptz"
	newPage := "null::int8"
	if serverVersion >= 160000 {
		lastSeq, lastIdx, lastIndexScan = "s.last_seq_scan", "s.last_idx_scan", "si.last_idx_scan"
		newPage = "s.n_tup_newpage_upd"
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
       (select stats_reset from db), ` + lastSeq + `, ` + lastIdx + `, ` + newPage + `,
       xact.next
  from pg_stat_user_tables s
  cross join (select pg_snapshot_xmax(pg_current_snapshot())::text::int8 as next) xact
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
			&t.Deletes, &t.Indexes, &t.StatsResetAt, &t.LastSeqScanAt, &t.LastIdxScanAt, &t.NewPageUpdates, &t.ServerXactNext); err != nil {
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

// Running is one statement pg_stat_activity shows running.
type Running struct {
	QueryID string
	// Query is the text as the client sent it (up to
	// track_activity_query_size).
	Query      string
	PID        int32
	QueryStart time.Time
	// RunningMs is how long it has run when read: a lower bound of its
	// execution time.
	RunningMs float64
	// At is the server's time of the read.
	At time.Time
}

// ActivitySQL lists the client statements of the current database that
// have been running for at least $1 seconds, except the caller's own.
// query_id is pg_stat_activity's (PostgreSQL 14+, computed when
// compute_query_id is on, or auto with pg_stat_statements loaded); rows
// without one are left out.
const ActivitySQL = `select a.query_id, a.query, a.pid, a.query_start,
       extract(epoch from (now() - a.query_start)) * 1000, now()
  from pg_stat_activity a
 where a.datname = current_database() and a.state = 'active' and a.backend_type = 'client backend'
   and a.pid <> pg_backend_pid() and a.query_id is not null and a.query_start is not null
   and now() - a.query_start >= make_interval(secs => $1)
 order by a.query_id, a.pid`

// ReadActivity reads the statements of the current database running for
// at least threshold.
func ReadActivity(ctx context.Context, q postgres.Querier, threshold time.Duration) ([]Running, error) {
	rows, err := q.Query(ctx, marker+ActivitySQL, threshold.Seconds())
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_activity: %w", err)
	}
	defer rows.Close()
	var out []Running
	for rows.Next() {
		var (
			r  Running
			id int64
		)
		if err := rows.Scan(&id, &r.Query, &r.PID, &r.QueryStart, &r.RunningMs, &r.At); err != nil {
			return nil, fmt.Errorf("scan pg_stat_activity: %w", err)
		}
		r.QueryID = strconv.FormatInt(id, 10)
		r.QueryStart, r.At = r.QueryStart.UTC(), r.At.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pg_stat_activity: %w", err)
	}
	return out, nil
}
