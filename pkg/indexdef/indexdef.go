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

// Validate checks that spec can be rendered: a table, at least one column,
// a known method and no predicate (partial indexes come with their own
// structured condition in a later version).
func Validate(spec events.IndexSpec) error {
	switch {
	case spec.Schema == "" || spec.Table == "":
		return fmt.Errorf("index spec: missing schema or table")
	case len(spec.Columns) == 0:
		return fmt.Errorf("index spec on %s: no columns", spec.QualifiedTable())
	case spec.Predicate != "":
		return fmt.Errorf("index spec on %s: predicates are not supported yet", spec.QualifiedTable())
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
	return nil
}

// CreateSQL renders CREATE INDEX [CONCURRENTLY] for spec under name, every
// identifier quoted. It does not include the marker comment.
func CreateSQL(spec events.IndexSpec, name string, concurrently bool) string {
	cols := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		cols[i] = postgres.Ident(c)
	}
	conc := ""
	if concurrently {
		conc = "CONCURRENTLY "
	}
	return fmt.Sprintf("CREATE INDEX %s%s ON %s USING %s (%s)",
		conc, postgres.Ident(name), postgres.Ident(spec.Schema, spec.Table), Method(spec), strings.Join(cols, ", "))
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

// Equal reports whether e is the index spec describes: same method, same key
// columns in the same order, same predicate.
func (e Existing) Equal(spec events.IndexSpec) bool {
	if e.Method != Method(spec) || e.Predicate != spec.Predicate || len(e.Columns) != len(spec.Columns) {
		return false
	}
	for i := range e.Columns {
		if e.Columns[i] != spec.Columns[i] {
			return false
		}
	}
	return true
}

// Covers reports whether e already serves what spec would: a valid btree
// index whose leading key columns are spec's columns in order, with the same
// predicate (or none). An expression key or a different method never covers.
func (e Existing) Covers(spec events.IndexSpec) bool {
	if !e.Valid || e.Method != Method(spec) || e.Predicate != spec.Predicate || len(e.Columns) < len(spec.Columns) {
		return false
	}
	if e.Method != "btree" && len(e.Columns) != len(spec.Columns) {
		return false
	}
	for i, c := range spec.Columns {
		if e.Columns[i] == "" || e.Columns[i] != c {
			return false
		}
	}
	return true
}

const loadSQL = `/* indexpilot:catalog */
select n.nspname, t.relname, i.relname, am.amname,
       coalesce((select array_agg(coalesce(a.attname::text, '') order by k.ord)
                   from unnest(x.indkey::int2[]) with ordinality as k(attnum, ord)
                   left join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum and k.attnum > 0
                  where k.ord <= x.indnkeyatts), '{}'),
       coalesce(pg_get_expr(x.indpred, x.indrelid), ''),
       x.indisvalid, x.indisready, x.indisunique, x.indisprimary,
       pg_get_indexdef(x.indexrelid), pg_relation_size(x.indexrelid),
       exists(select 1 from pg_constraint c where c.conindid = x.indexrelid),
       x.indexprs is not null
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
		if err := rows.Scan(&e.Schema, &e.Table, &e.Name, &e.Method, &e.Columns, &e.Predicate,
			&e.Valid, &e.Ready, &e.Unique, &e.Primary, &e.Definition, &e.SizeBytes, &e.Constraint, &e.HasExprKeys); err != nil {
			return nil, fmt.Errorf("scan index: %w", err)
		}
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
