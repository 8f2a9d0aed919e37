// Package indexdef turns an events.IndexSpec into SQL and compares it with
// the indexes a table already has. Comparison is by parsed definition
// (method, key columns in order, predicate), never by name or by substring
// of the definition text.
package indexdef

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// MaxNameBytes is PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MaxNameBytes = 63

// NamePrefix starts the name of every index IndexPilot builds, so its own
// indexes can be told from the user's.
const NamePrefix = "ip_"

// Name is the deterministic name of the index for spec: "ip_<table>_<cols>_"
// followed by 8 hex digits of a hash of the full definition. The readable
// part is cut (on a UTF-8 boundary) so the whole never exceeds 63 bytes; the
// hash keeps cut names distinct.
func Name(spec events.IndexSpec) string {
	sum := sha256.Sum256([]byte(spec.Key()))
	hash := hex.EncodeToString(sum[:4])
	readable := NamePrefix + spec.Table
	if len(spec.Columns) > 0 {
		readable += "_" + strings.Join(spec.Columns, "_")
	}
	for _, e := range spec.Expressions {
		readable += "_" + e.Function + "_" + e.Column
	}
	limit := MaxNameBytes - len(hash) - 1
	if len(readable) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(readable[cut]) {
			cut--
		}
		readable = readable[:cut]
	}
	return readable + "_" + hash
}

// Method returns spec's access method, btree when unset.
func Method(spec events.IndexSpec) string {
	if spec.Method == "" {
		return "btree"
	}
	return spec.Method
}

// NotNullPredicate is the predicate of a partial index on the rows where
// column is not null, in the form pg_get_expr prints it for a simple
// lower-case name: "(deleted_at IS NOT NULL)". It is
// Condition{column, TestIsNotNull}.Predicate(); CreateSQL re-renders it
// from the column.
func NotNullPredicate(column string) string {
	return Condition{Column: column, Test: TestIsNotNull}.Predicate()
}

// ParseNotNullPredicate reads a predicate made by NotNullPredicate (or
// printed by the catalog for such an index) and returns its column.
func ParseNotNullPredicate(p string) (string, bool) {
	c, ok := ParseCondition(p)
	if !ok || c.Test != TestIsNotNull {
		return "", false
	}
	return c.Column, true
}

// displayIdent writes a name as the catalog does: bare when it is a
// simple lower-case identifier, quoted otherwise (keywords aside).
func displayIdent(name string) string {
	simple := name != "" && !(name[0] >= '0' && name[0] <= '9')
	for _, r := range name {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			simple = false
		}
	}
	switch name {
	case "true", "false", "null", "not":
		// Keywords the catalog quotes and ParseCondition must not take
		// for a column.
		simple = false
	}
	if simple {
		return name
	}
	return postgres.Ident(name)
}

// ExprFunctions are the functions an expression key may apply to its
// column. The list is closed on purpose: an expression is rendered into
// DDL, so only known, immutable, single-argument functions are allowed.
var ExprFunctions = []string{"lower", "upper"}

// Validate checks that spec can be rendered: a table, at least one key
// (column or expression), a known method, expression keys from
// ExprFunctions on a named column, and no predicate other than one
// ParseCondition reads (one column, one value-free test).
func Validate(spec events.IndexSpec) error {
	switch {
	case spec.Schema == "" || spec.Table == "":
		return fmt.Errorf("index spec: missing schema or table")
	case len(spec.Columns) == 0 && len(spec.Expressions) == 0:
		return fmt.Errorf("index spec on %s: no columns", spec.QualifiedTable())
	}
	if spec.Predicate != "" {
		if _, ok := ParseCondition(spec.Predicate); !ok {
			return fmt.Errorf("index spec on %s: only a predicate of one column and a value-free test (IS [NOT] NULL, IS TRUE/FALSE, col, NOT col) is supported", spec.QualifiedTable())
		}
	}
	switch Method(spec) {
	case "btree", "hash", "brin", "gin", "gist":
	default:
		return fmt.Errorf("index spec on %s: unknown method %q", spec.QualifiedTable(), spec.Method)
	}
	for _, c := range spec.Columns {
		if c == "" {
			return fmt.Errorf("index spec on %s: empty column name", spec.QualifiedTable())
		}
	}
	if len(spec.Directions) > 0 && len(spec.Directions) != len(spec.Columns) {
		return fmt.Errorf("index spec on %s: %d directions for %d columns", spec.QualifiedTable(), len(spec.Directions), len(spec.Columns))
	}
	for _, d := range spec.Directions {
		if !validDirection(d) {
			return fmt.Errorf("index spec on %s: unknown column direction %q", spec.QualifiedTable(), d)
		}
		if d != events.DirAsc && Method(spec) != "btree" {
			return fmt.Errorf("index spec on %s: column directions need a btree", spec.QualifiedTable())
		}
	}
	for _, e := range spec.Expressions {
		if !slices.Contains(ExprFunctions, e.Function) {
			return fmt.Errorf("index spec on %s: function %q is not allowed in an expression key", spec.QualifiedTable(), e.Function)
		}
		if e.Column == "" {
			return fmt.Errorf("index spec on %s: expression key without a column", spec.QualifiedTable())
		}
	}
	return nil
}

func validDirection(d string) bool {
	switch d {
	case events.DirAsc, events.DirDesc, events.DirAscNullsFirst, events.DirDescNullsLast:
		return true
	}
	return false
}

// flipDirection is the direction a backward scan of d delivers.
func flipDirection(d string) string {
	switch d {
	case events.DirDesc:
		return events.DirAsc
	case events.DirAscNullsFirst:
		return events.DirDescNullsLast
	case events.DirDescNullsLast:
		return events.DirAscNullsFirst
	}
	return events.DirDesc
}

// CreateSQL renders CREATE INDEX [CONCURRENTLY] for spec under name, every
// identifier quoted. It does not include the marker comment. Call Validate
// first: an expression function is written as given.
func CreateSQL(spec events.IndexSpec, name string, concurrently bool) string {
	cols := make([]string, 0, len(spec.Columns)+len(spec.Expressions))
	for i, c := range spec.Columns {
		// Directions come from the closed list in events; anything else
		// is not rendered (Validate rejects it).
		if d := spec.ColumnDirection(i); d != events.DirAsc && validDirection(d) {
			c = postgres.Ident(c) + " " + d
		} else {
			c = postgres.Ident(c)
		}
		cols = append(cols, c)
	}
	for _, e := range spec.Expressions {
		// The function name is from ExprFunctions (Validate); it is
		// written bare so the catalog shows it as lower(col), not
		// "lower"(col).
		cols = append(cols, e.Function+"("+postgres.Ident(e.Column)+")")
	}
	conc := ""
	if concurrently {
		conc = "CONCURRENTLY "
	}
	where := ""
	if c, ok := ParseCondition(spec.Predicate); ok {
		// Re-rendered from the parsed condition, never copied.
		where = " WHERE " + c.SQL()
	}
	return fmt.Sprintf("CREATE INDEX %s%s ON %s USING %s (%s)%s",
		conc, postgres.Ident(name), postgres.Ident(spec.Schema, spec.Table), Method(spec), strings.Join(cols, ", "), where)
}

// DropSQL renders DROP INDEX CONCURRENTLY IF EXISTS for schema.name.
func DropSQL(schema, name string) string {
	return "DROP INDEX CONCURRENTLY IF EXISTS " + postgres.Ident(schema, name)
}

// Existing is an index as the catalog describes it.
type Existing struct {
	Schema, Table, Name string
	Method              string
	// Columns are the key columns in order; an expression key is "".
	Columns []string
	// Keys are pg_get_indexdef's text of each key in order ("email",
	// "lower((email)::text)"); Equal and Covers read expression keys from
	// them.
	Keys []string
	// Directions is the direction of each key column as
	// events.IndexSpec.Directions spells it (from pg_index.indoption); nil
	// when every key is in the default order.
	Directions []string
	// Predicate is pg_get_expr of the partial-index condition, or "".
	Predicate   string
	Valid       bool
	Ready       bool
	Unique      bool
	Primary     bool
	Definition  string
	SizeBytes   int64
	Constraint  bool
	HasExprKeys bool
}

// Equal reports whether e is the index spec describes: same method, same
// keys (columns and expressions) in the same order, same predicate
// (SamePredicate: "(active = true)" is "active").
func (e Existing) Equal(spec events.IndexSpec) bool {
	n := len(spec.Columns) + len(spec.Expressions)
	if e.Method != Method(spec) || !SamePredicate(e.Predicate, spec.Predicate) || len(e.Columns) != n {
		return false
	}
	for i := range spec.Columns {
		if e.direction(i) != spec.ColumnDirection(i) {
			return false
		}
	}
	return e.leadingKeysMatch(spec)
}

func (e Existing) direction(i int) string {
	if i < len(e.Directions) {
		return e.Directions[i]
	}
	return events.DirAsc
}

// sameOrder reports whether the leading column keys of e deliver the order
// of spec's columns: the same directions, or all of them reversed (a
// backward scan), so (a DESC, b DESC) serves (a, b).
func (e Existing) sameOrder(spec events.IndexSpec) bool {
	same, flipped := true, true
	for i := range spec.Columns {
		d := spec.ColumnDirection(i)
		same = same && e.direction(i) == d
		flipped = flipped && e.direction(i) == flipDirection(d)
	}
	return same || flipped
}

// FromSpec is the index spec describes as if it existed and were valid:
// what a chosen or recommended index is compared with.
func FromSpec(spec events.IndexSpec) Existing {
	e := Existing{Schema: spec.Schema, Table: spec.Table, Valid: true, Method: Method(spec),
		Predicate: spec.Predicate, HasExprKeys: len(spec.Expressions) > 0, Directions: spec.Directions}
	for _, c := range spec.Columns {
		e.Columns = append(e.Columns, c)
		e.Keys = append(e.Keys, c)
	}
	for _, x := range spec.Expressions {
		e.Columns = append(e.Columns, "")
		e.Keys = append(e.Keys, x.String())
	}
	return e
}

// Covers reports whether e already serves what spec would: a valid btree
// index whose leading keys are spec's columns then expressions, in order,
// with the same predicate (or none), and the same column directions or
// all of them reversed (a backward scan gives the same order). A
// different method never covers; an expression key covers only the same
// expression.
func (e Existing) Covers(spec events.IndexSpec) bool {
	n := len(spec.Columns) + len(spec.Expressions)
	if !e.Valid || e.Method != Method(spec) || !SamePredicate(e.Predicate, spec.Predicate) || len(e.Columns) < n {
		return false
	}
	if !e.sameOrder(spec) {
		return false
	}
	if e.Method != "btree" && len(e.Columns) != n {
		return false
	}
	return e.leadingKeysMatch(spec)
}

func (e Existing) leadingKeysMatch(spec events.IndexSpec) bool {
	for i, c := range spec.Columns {
		if e.Columns[i] == "" || e.Columns[i] != c {
			return false
		}
	}
	for j, x := range spec.Expressions {
		i := len(spec.Columns) + j
		if e.Columns[i] != "" || i >= len(e.Keys) {
			return false
		}
		fn, col, ok := ParseExprKey(e.Keys[i])
		if !ok || fn != x.Function || col != x.Column {
			return false
		}
	}
	return true
}

// ParseExprKey reads an expression key as pg_get_indexdef prints it, or
// as the parser deparses it: a function of one column, possibly cast and
// parenthesized — lower(email), lower((email)::text), upper("Email").
// ok is false for anything else.
func ParseExprKey(s string) (fn, col string, ok bool) {
	open := strings.IndexByte(s, '(')
	if open <= 0 || !strings.HasSuffix(s, ")") {
		return "", "", false
	}
	fn = s[:open]
	for _, r := range fn {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			return "", "", false
		}
	}
	arg := s[open+1 : len(s)-1]
	if i := strings.LastIndex(arg, "::"); i > 0 && !strings.Contains(arg[i:], `"`) {
		arg = arg[:i]
	}
	for strings.HasPrefix(arg, "(") && strings.HasSuffix(arg, ")") {
		arg = arg[1 : len(arg)-1]
	}
	col, ok = parseIdent(arg)
	if !ok {
		return "", "", false
	}
	return fn, col, true
}

const loadSQL = `/* indexpilot:catalog */
select n.nspname, t.relname, i.relname, am.amname,
       coalesce((select array_agg(coalesce(a.attname::text, '') order by k.ord)
                   from unnest(x.indkey::int2[]) with ordinality as k(attnum, ord)
                   left join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum and k.attnum > 0
                  where k.ord <= x.indnkeyatts), '{}'),
       coalesce(pg_get_expr(x.indpred, x.indrelid), ''),
       array(select pg_get_indexdef(x.indexrelid, k, true) from generate_series(1, x.indnkeyatts::int) k order by k),
       x.indisvalid, x.indisready, x.indisunique, x.indisprimary,
       pg_get_indexdef(x.indexrelid), pg_relation_size(x.indexrelid),
       exists(select 1 from pg_constraint c where c.conindid = x.indexrelid),
       x.indexprs is not null,
       (select array_agg(k.opt order by k.ord)
          from unnest(x.indoption::int2[]) with ordinality as k(opt, ord)
         where k.ord <= x.indnkeyatts)
  from pg_index x
  join pg_class i on i.oid = x.indexrelid
  join pg_class t on t.oid = x.indrelid
  join pg_namespace n on n.oid = t.relnamespace
  join pg_am am on am.oid = i.relam
 where n.nspname = $1 and ($2 = '' or t.relname = $2)
 order by t.relname, i.relname`

// Load returns the indexes of schema.table (every table of schema when
// table is "").
func Load(ctx context.Context, q postgres.Querier, schema, table string) ([]Existing, error) {
	rows, err := q.Query(ctx, loadSQL, schema, table)
	if err != nil {
		return nil, fmt.Errorf("load indexes of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	var out []Existing
	for rows.Next() {
		var e Existing
		var opts []int16
		if err := rows.Scan(&e.Schema, &e.Table, &e.Name, &e.Method, &e.Columns, &e.Predicate, &e.Keys,
			&e.Valid, &e.Ready, &e.Unique, &e.Primary, &e.Definition, &e.SizeBytes, &e.Constraint, &e.HasExprKeys, &opts); err != nil {
			return nil, fmt.Errorf("scan index: %w", err)
		}
		e.Directions = directions(e.Method, opts)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load indexes of %s.%s: %w", schema, table, err)
	}
	return out, nil
}

// FindEqual returns the first index in list that Equal(spec), if any,
// valid or not: a caller deciding whether an index exists must look at
// Valid (an INVALID one is a leftover to drop, not an index).
func FindEqual(list []Existing, spec events.IndexSpec) (Existing, bool) {
	for _, e := range list {
		if e.Table == spec.Table && e.Schema == spec.Schema && e.Equal(spec) {
			return e, true
		}
	}
	return Existing{}, false
}

// FindCovering returns the first valid index in list that Covers(spec).
func FindCovering(list []Existing, spec events.IndexSpec) (Existing, bool) {
	for _, e := range list {
		if e.Table == spec.Table && e.Schema == spec.Schema && e.Covers(spec) {
			return e, true
		}
	}
	return Existing{}, false
}

// directions reads pg_index.indoption of a btree's key columns (bit 0:
// DESC, bit 1: NULLS FIRST) as events.IndexSpec.Directions; nil when every
// key is in the default order or the method has no order.
func directions(method string, opts []int16) []string {
	if method != "btree" {
		return nil
	}
	out := make([]string, len(opts))
	plain := true
	for i, o := range opts {
		out[i] = events.Direction(o&1 != 0, o&2 != 0)
		plain = plain && out[i] == events.DirAsc
	}
	if plain {
		return nil
	}
	return out
}

// Supersedes reports whether an index on kept makes one on old redundant,
// so the two should not both be kept: both btrees on the same table, old's
// keys (columns then expressions) a left prefix of kept's in the same
// directions or all of them reversed (a backward scan), and either
//
//   - the same predicate (or none) and old strictly shorter — kept serves
//     every scan old serves; or
//   - old partial, kept full, old's keys a prefix of or equal to kept's,
//     and updated reports that the workload's UPDATEs set old's predicate
//     column — such a partial index stops HOT updates (rows move in and
//     out of it) for rows kept serves already.
//
// updated may be nil (nothing is known to be updated).
func Supersedes(kept, old events.IndexSpec, updated func(column string) bool) bool {
	if kept.Schema != old.Schema || kept.Table != old.Table || Method(kept) != "btree" || Method(old) != "btree" {
		return false
	}
	k, o := specKeys(kept), specKeys(old)
	if len(o) == 0 || len(o) > len(k) {
		return false
	}
	for i := range o {
		if o[i] != k[i] {
			return false
		}
	}
	if !FromSpec(kept).sameOrder(old) {
		// kept cannot deliver old's order: (a, b) does not serve
		// ORDER BY a DESC, b.
		return false
	}
	if SamePredicate(kept.Predicate, old.Predicate) {
		return len(o) < len(k)
	}
	if kept.Predicate != "" || old.Predicate == "" || updated == nil {
		return false
	}
	c, ok := ParseCondition(old.Predicate)
	if !ok {
		return false
	}
	return updated(c.Column)
}

// specKeys is spec's keys in order: its columns, then its expressions as
// "function(column)".
func specKeys(spec events.IndexSpec) []string {
	out := append([]string(nil), spec.Columns...)
	for _, x := range spec.Expressions {
		out = append(out, x.String())
	}
	return out
}
