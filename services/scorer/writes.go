package scorer

import (
	"fmt"
	"math"
	"slices"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

// The write model charges a candidate the WAL its maintenance adds per
// write transaction (docs/scorer.md, "Write model"). The per-record sizes
// were measured on PostgreSQL 15 (pg_stat_statements.wal_bytes of a fixed
// UPDATE/INSERT script on a 200 000-row table, with and without indexes,
// HOT and non-HOT; full-page images excluded): a HOT update of a ~110-byte
// row writes ~150 B, the same update made non-HOT ~40 B more heap WAL, and
// each btree entry ~66–90 B for a 4-byte key (up to ~140 B on a key with a
// handful of distinct values, whose posting lists are rewritten).
const (
	// walHeapRecord is the fixed part of a heap update record (the row's
	// own bytes come on top).
	walHeapRecord = 48.0
	// walNonHOTExtra is the extra heap WAL of a non-HOT update over a HOT
	// one (the new version's block reference and the old page's header).
	walNonHOTExtra = 40.0
	// walIndexEntryBase is the fixed part of a btree insertion record; the
	// entry's own bytes (tuple header and key) come on top.
	walIndexEntryBase = 54.0
	// walCostPerByte converts WAL bytes into the planner's cost units the
	// read saving is measured in: one index entry's WAL (~80 B) weighs one
	// random page (random_page_cost), the planner's price of the leaf page
	// the insertion must find and dirty.
	walCostPerByte = randomPageCost / 80
	// WALCostPerByte is walCostPerByte for the benchmark, which converts
	// measured WAL the same way.
	WALCostPerByte = walCostPerByte
	// hotFractionDefault is the share of HOT-eligible updates taken to be
	// HOT when the table's counters saw no update: most with a fill factor
	// below 100 (room is reserved on each page), half without.
	hotFractionDefault      = 0.9
	hotFractionDefaultFull  = 0.5
	exprKeyWidth            = 8.0
	defaultFillFactorPct    = 100.0
	minRowsPerStatementCall = 1.0
)

// writeStmt is one write statement of the workload: the table it writes,
// its kind and, for an UPDATE, the columns its SET list assigns.
type writeStmt struct {
	table string // "schema.table"
	kind  sqlparse.Kind
	set   []string
	calls float64
	// rows is the rows its calls wrote (pg_stat_statements.rows); 0 when
	// unknown.
	rows float64
}

// kindInsert is the kind of an INSERT (sqlparse does not analyse them).
const kindInsert sqlparse.Kind = "INSERT"

// parseWrite reads the target table and, for an UPDATE, the assigned
// columns of one top-level INSERT, UPDATE or DELETE (writable CTEs are
// not followed). ok is false for anything else.
//
// It is deliberately separate from sqlparse.Extract, which reports the
// columns a statement reads; the SET list is only needed here.
func parseWrite(query string) (sqlparse.Kind, sqlparse.TableRef, []string, bool) {
	tree, err := pg_query.Parse(query)
	if err != nil || len(tree.GetStmts()) != 1 {
		return "", sqlparse.TableRef{}, nil, false
	}
	ref := func(rv *pg_query.RangeVar) sqlparse.TableRef {
		return sqlparse.TableRef{Schema: rv.GetSchemaname(), Name: rv.GetRelname()}
	}
	node := tree.GetStmts()[0].GetStmt()
	switch {
	case node.GetInsertStmt() != nil:
		if rv := node.GetInsertStmt().GetRelation(); rv != nil {
			return kindInsert, ref(rv), nil, true
		}
	case node.GetUpdateStmt() != nil:
		u := node.GetUpdateStmt()
		if u.GetRelation() == nil {
			break
		}
		var set []string
		for _, t := range u.GetTargetList() {
			// SET a = .., (b, c) = (..): every ResTarget names one column;
			// SET a[1] = .. or a.f = .. still assigns column a.
			if name := t.GetResTarget().GetName(); name != "" && !slices.Contains(set, name) {
				set = append(set, name)
			}
		}
		return sqlparse.KindUpdate, ref(u.GetRelation()), set, true
	case node.GetDeleteStmt() != nil:
		if rv := node.GetDeleteStmt().GetRelation(); rv != nil {
			return sqlparse.KindDelete, ref(rv), nil, true
		}
	}
	return "", sqlparse.TableRef{}, nil, false
}

// writeStatements finds the write statements of stmts, with their tables
// resolved through cat; statements on unknown tables are left out.
func writeStatements(stmts []*statement, cat *catalog) []writeStmt {
	var out []writeStmt
	for _, st := range stmts {
		if st.parsed != nil && st.parsed.Kind == sqlparse.KindSelect {
			// Already parsed by the scoring run: a read, nothing to charge.
			// Only writes (and INSERTs, which sqlparse does not take) are
			// parsed again here.
			continue
		}
		kind, ref, set, ok := parseWrite(st.Query)
		if !ok {
			continue
		}
		schema := cat.schemaOf(ref)
		if schema == "" {
			continue
		}
		out = append(out, writeStmt{table: schema + "." + ref.Name, kind: kind, set: set, calls: float64(st.Calls), rows: float64(st.Rows)})
	}
	return out
}

// tableWrites is what the write model knows of one table's writes over
// the window.
type tableWrites struct {
	// Counter increases over the window (pg_stat_user_tables): rows
	// inserted, updated, updated HOT, deleted.
	inserts, updates, hotUpdates, deletes float64
	// room is the share of updates whose new version fitted on its own
	// page: 1 - n_tup_newpage_upd / n_tup_upd, over the window, or since
	// the statistics reset when the window counted no update. Only when
	// roomKnown: PostgreSQL 16+ counts updates to a new page, and every
	// sample read has the count.
	room      float64
	roomKnown bool
	// indexed: every column an existing index references (keys, INCLUDE,
	// expressions, predicate): updating one makes an update non-HOT.
	indexed map[string]bool
	// entries: the entry width (header and keys) of each existing index;
	// leaves, in the same order, where its new entries land.
	entries []float64
	leaves  []indexLeaves
	// span is the time the counters were observed over: from the
	// table's first sample in the window to its last (0 with fewer than
	// two).
	span time.Duration
	// fillFactor is the table's fillfactor in percent.
	fillFactor float64
}

// writeCharge is what the write model charges one candidate over the
// window.
type writeCharge struct {
	// walBytes: estimated WAL bytes the index adds over the window.
	walBytes float64
	// perTxn: walBytes per write transaction of the workload.
	perTxn float64
	// hotLost: updates over the window that are HOT today and would not
	// be with the index.
	hotLost float64
	// cost: walBytes in planner cost units.
	cost float64
	// fpiBytes is the part of walBytes that is full-page images, and
	// fpiPerTxn that part per write transaction (addImages).
	fpiBytes, fpiPerTxn float64
	// What addImages needs of the window: the write transactions,
	// the updates that maintain every index today (not HOT) and the
	// inserted rows.
	txns, nonHOT, inserts float64
}

// specColumns is every column an index on spec would reference: keys,
// expression arguments and the predicate's column.
func specColumns(spec events.IndexSpec) []string {
	cols := slices.Clone(spec.Columns)
	for _, x := range spec.Expressions {
		cols = append(cols, x.Column)
	}
	if c, ok := indexdef.ParseCondition(spec.Predicate); ok {
		cols = append(cols, c.Column)
	} else if spec.Predicate != "" {
		if col, ok := indexdef.ParseNotNullPredicate(spec.Predicate); ok {
			cols = append(cols, col)
		}
	}
	return cols
}

// entryWidth is the bytes of one entry of an index on cols of ti (an
// expression key, "", counts as exprKeyWidth).
func entryWidth(ti *tableInfo, cols []string) float64 {
	w := float64(indexTupleOverhead)
	for _, c := range cols {
		if c == "" {
			w += exprKeyWidth
			continue
		}
		w += ti.width[c]
	}
	return w
}

// walCharge is the write model: the WAL an index on spec (holding the
// fraction frac of the rows, below 1 for a partial index) adds over the
// window, given the workload's write statements and the table's counters.
//
//   - Updates that are HOT today (their SET list touches no indexed
//     column, and the page had room) and would touch the new index's
//     columns become non-HOT: each then writes the non-HOT heap extra and
//     one entry in every existing index and in the new one. No more can be
//     lost than are HOT today; updates that went to a new page for lack
//     of room are not HOT and already pay.
//   - Every other index-maintaining write (inserts, updates already
//     non-HOT) writes one entry in the new index, if the row passes its
//     predicate.
//
// txns is the number of write transactions of the workload in the window
// (windowWriteTxns: the server's transaction count capped by the calls of
// its write statements, or those calls; the table's counted row writes
// when the workload shows none).
func walCharge(ti *tableInfo, stmts []writeStmt, table string, spec events.IndexSpec, frac, txns float64) writeCharge {
	tw := ti.writes
	cand := specColumns(spec)
	var updCalls, eligible, touching, insCalls float64
	// touchingRows: the rows the touching UPDATEs wrote, when each of
	// them says (-1 otherwise).
	touchingRows := 0.0
	for _, w := range stmts {
		if w.table != table {
			continue
		}
		switch w.kind {
		case kindInsert:
			insCalls += w.calls
		case sqlparse.KindUpdate:
			updCalls += w.calls
			hot := !slices.ContainsFunc(w.set, func(c string) bool { return tw.indexed[c] })
			if !hot {
				continue
			}
			eligible += w.calls
			if slices.ContainsFunc(w.set, func(c string) bool { return slices.Contains(cand, c) }) {
				touching += w.calls
				if w.rows <= 0 || touchingRows < 0 {
					touchingRows = -1
				} else {
					touchingRows += w.rows
				}
			}
		}
	}
	// Rows per call: the counters count rows, the statements calls.
	rowsPerUpdate := minRowsPerStatementCall
	if updCalls > 0 && tw.updates > updCalls {
		rowsPerUpdate = tw.updates / updCalls
	}
	// hotFrac: the share of HOT-eligible updates that are HOT today; the
	// rest found no room on the page (fill factor, free space). Without
	// update counters in the window it is the share of updates that found
	// room (PostgreSQL 16+), else a guess from the fill factor.
	hotFrac := hotFractionDefault
	if tw.fillFactor >= defaultFillFactorPct {
		hotFrac = hotFractionDefaultFull
	}
	if tw.roomKnown {
		hotFrac = tw.room
	}
	if tw.updates > 0 && eligible > 0 {
		hotFrac = math.Min(1, (tw.hotUpdates/tw.updates)/(eligible/updCalls))
	} else if tw.updates > 0 {
		hotFrac = 0
	}
	updates := math.Max(tw.updates, updCalls*rowsPerUpdate)
	hotToday := math.Min(tw.hotUpdates, updates)
	if tw.updates == 0 {
		hotToday = eligible * rowsPerUpdate * hotFrac
	}
	lost := touching * rowsPerUpdate * hotFrac
	// An update whose new version fits on its page is HOT unless it sets
	// an indexed column; one that does not fit is never HOT. So of the
	// touching UPDATEs' own rows at most the room share were HOT, however
	// the table's HOT updates spread over the statements (some may be
	// updates the workload does not show). And no update that is not HOT
	// today can be lost.
	if tw.roomKnown && touchingRows > 0 {
		lost = math.Min(lost, touchingRows*tw.room)
	}
	lost = math.Min(lost, hotToday)
	inserts := math.Max(tw.inserts, insCalls)

	newEntry := walIndexEntryBase + entryWidth(ti, spec.Columns) + float64(len(spec.Expressions))*exprKeyWidth
	existing := 0.0
	for _, e := range ti.writes.entries {
		existing += walIndexEntryBase + e
	}
	// Writes that maintain indexes today, and would maintain this one.
	maintained := inserts + updates - hotToday
	wal := lost*(walNonHOTExtra+existing+newEntry*frac) + maintained*frac*newEntry
	if txns <= 0 {
		txns = inserts + updates + tw.deletes
	}
	ch := writeCharge{walBytes: wal, hotLost: lost, cost: wal * walCostPerByte, txns: txns, nonHOT: updates - hotToday, inserts: inserts}
	if txns > 0 {
		ch.perTxn = wal / txns
	}
	return ch
}

// Full-page images. The first change to a page after a checkpoint logs
// the whole page (full_page_writes, on by default), so an index whose new
// entries land on leaves scattered over it costs far more WAL than its
// records: on pgbench, the records of an index on the updated abalance add
// about 100 B per transaction and its images about 1,400 B
// (docs/benchmarks.md). Over one checkpoint cycle, n entries placed at
// random over an index's L leaf pages dirty L·(1 − e^(−n/L)) distinct
// pages, each logged once; entries of inserted rows whose key follows the
// insertion order (a serial id, a creation time) all go to the right edge
// and dirty one page a cycle.
const (
	// walFPIBytes is the WAL of one full-page image of a btree leaf: the
	// page less its free space ("hole"), which is not logged. Measured on
	// PostgreSQL 15: 400 inserts of random keys into a 100,000-row table
	// right after a checkpoint logged 211 images in 1.62 MB, about 7,300 B
	// an image once the records are taken off, for leaves built 90 % full;
	// leaves split by random inserts are fuller or emptier, so the model
	// takes a little less.
	walFPIBytes = 7000.0
	// appendCorrelation is the |pg_stats.correlation| of a key's first
	// column above which inserted rows' entries are taken to go to the
	// index's right edge.
	appendCorrelation = 0.9
)

// indexLeaves is where an index's new entries land.
type indexLeaves struct {
	// pages: its leaf pages (all but the metapage; inner pages are few).
	pages float64
	// appends: inserted rows' entries go to its right edge.
	appends bool
}

// imageModel is the target's checkpoint cycle.
type imageModel struct {
	// cycle is checkpoint_timeout, the longest a cycle lasts (a server that
	// fills max_wal_size first checkpoints more often, so the images
	// counted are a lower bound); 0 when full_page_writes is off: no
	// images.
	cycle time.Duration
}

// appendsInserts says whether inserted rows' entries in an index led by
// column lead (or an expression of it) go to its right edge.
func appendsInserts(ti *tableInfo, lead string) bool {
	return lead != "" && math.Abs(ti.correlation[lead]) >= appendCorrelation
}

// dirtiedPages is the expected number of distinct pages, of pages, that n
// changes placed at random dirty.
func dirtiedPages(n, pages float64) float64 {
	if n <= 0 || pages <= 0 {
		return 0
	}
	return -pages * math.Expm1(-n/pages)
}

// addImages adds to ch, walCharge's figures for an index on spec (frac of
// the rows, leaves leaf pages), the full-page images the index costs over
// the window: those of its own leaves, and those of the existing indexes'
// leaves that the updates it turns non-HOT dirty in addition.
func addImages(ch *writeCharge, ti *tableInfo, spec events.IndexSpec, frac, leaves float64, img imageModel) {
	// The window's writes were observed over the table's sample span.
	if img.cycle <= 0 || ti.writes.span <= 0 {
		return
	}
	cycles := ti.writes.span.Seconds() / img.cycle.Seconds()
	perCycle := func(n float64) float64 { return n / cycles }
	// The new index: updated rows' entries (updates not HOT today, and
	// those it makes non-HOT) land where the rows' keys are, at random;
	// inserted rows' too unless its key follows the insertion order.
	own := (ch.nonHOT + ch.hotLost) * frac
	edge := 0.0
	if (spec.Method == "" || spec.Method == "btree") && appendsInserts(ti, leadingColumn(spec)) {
		if ch.inserts*frac > 0 {
			edge = 1
		}
	} else {
		own += ch.inserts * frac
	}
	images := cycles * (dirtiedPages(perCycle(own), math.Max(leaves, 1)) + edge)
	// The existing indexes: each update the new index makes non-HOT adds
	// an entry to every one of them.
	if ch.hotLost > 0 {
		for _, l := range ti.writes.leaves {
			before := ch.nonHOT
			if !l.appends {
				before += ch.inserts
			}
			images += cycles * (dirtiedPages(perCycle(before+ch.hotLost), l.pages) - dirtiedPages(perCycle(before), l.pages))
		}
	}
	fpi := images * walFPIBytes
	ch.fpiBytes = fpi
	ch.walBytes += fpi
	// In cost units an image is one page written sequentially into the
	// WAL (seq_page_cost), not its bytes at walCostPerByte: that rate
	// prices a record as the random leaf page its insertion finds and
	// dirties, and the image is that same page, logged once a cycle.
	ch.cost += images * seqPageCost
	if ch.txns > 0 {
		ch.perTxn = ch.walBytes / ch.txns
		ch.fpiPerTxn = fpi / ch.txns
	}
}

// updatedColumns is, per "schema.table", the columns the UPDATEs of stmts
// set.
func updatedColumns(stmts []writeStmt) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, w := range stmts {
		if w.kind != sqlparse.KindUpdate {
			continue
		}
		if out[w.table] == nil {
			out[w.table] = map[string]bool{}
		}
		for _, c := range w.set {
			out[w.table][c] = true
		}
	}
	return out
}

// writeTxns is the calls of the workload's write statements in the
// window: its write transactions when each statement runs in its own, an
// upper bound otherwise (windowWriteTxns).
func writeTxns(stmts []writeStmt) float64 {
	var n float64
	for _, w := range stmts {
		n += w.calls
	}
	return n
}

// loadTableWrites reads what the write model needs of one table from the
// target's catalog: the columns its indexes reference, each index's entry
// width and the fill factor. The window's counters are filled in by the
// caller.
func (sel *selector) loadTableWrites(schema, name string, ti *tableInfo) error {
	key := schema + "." + name
	ti.writes.indexed = map[string]bool{}
	ti.writes.fillFactor = defaultFillFactorPct
	err := sel.pool.QueryRow(sel.ctx, `/* indexpilot:scorer */
select coalesce((select option_value::float8 from pg_catalog.pg_options_to_table(c.reloptions) where option_name = 'fillfactor'), 100)
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relname = $2`, schema, name).Scan(&ti.writes.fillFactor)
	if err != nil {
		return fmt.Errorf("read fill factor of %s: %w", key, err)
	}
	// Each index's key and INCLUDE columns (0: an expression), plus every
	// column its expressions and predicate reference (pg_depend).
	rows, err := sel.pool.Query(sel.ctx, `/* indexpilot:scorer */
select i.indexrelid::int8, greatest(ic.relpages - 1, 1)::float8, ic.relam = (select oid from pg_catalog.pg_am where amname = 'btree'),
       array(select coalesce(a.attname, '') from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
              left join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
             order by k.ord),
       array(select a.attname from pg_catalog.pg_depend d
              join pg_catalog.pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
             where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = i.indexrelid
               and d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjid = i.indrelid and d.refobjsubid > 0)
  from pg_catalog.pg_index i
  join pg_catalog.pg_class c on c.oid = i.indrelid
  join pg_catalog.pg_class ic on ic.oid = i.indexrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relname = $2`, schema, name)
	if err != nil {
		return fmt.Errorf("read indexes of %s: %w", key, err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid int64
		var pages float64
		var btree bool
		var keys, deps []string
		if err := rows.Scan(&oid, &pages, &btree, &keys, &deps); err != nil {
			return fmt.Errorf("read indexes of %s: %w", key, err)
		}
		ti.writes.entries = append(ti.writes.entries, entryWidth(ti, keys))
		lead := ""
		if len(keys) > 0 {
			lead = keys[0]
		}
		ti.writes.leaves = append(ti.writes.leaves, indexLeaves{pages: pages, appends: btree && appendsInserts(ti, lead)})
		for _, c := range append(keys, deps...) {
			if c != "" {
				ti.writes.indexed[c] = true
			}
		}
	}
	return rows.Err()
}
