package events

import "strings"

// IndexSpec is an index definition as the pipeline passes it around: the
// table it is on, the access method and the key columns in order. Two specs
// with the same Key are the same index whatever they are called.
//
// Columns are plain column names, never SQL text: DDL is rendered from them
// with quoted identifiers (see pkg/indexdef), so nothing from the workload
// is ever spliced into a statement.
type IndexSpec struct {
	Schema  string   `json:"schema"`
	Table   string   `json:"table"`
	Method  string   `json:"method"`
	Columns []string `json:"columns"`
	// Predicate, when set, makes a partial index. It is rendered by
	// IndexPilot from a structured condition, never copied from a statement.
	Predicate string `json:"predicate,omitempty"`
	// Expressions, when set, are expression keys that follow Columns in
	// the index, e.g. lower(email). Optional; absent for plain indexes.
	Expressions []IndexExpr `json:"expressions,omitempty"`
	// Directions, when set, is the sort order of each entry of Columns
	// (same length): "" (ASC, nulls last, the default), "DESC" (nulls
	// first), "NULLS FIRST" (ASC) or "DESC NULLS LAST". Absent when every
	// column is in the default order; only an index built to deliver an
	// ORDER BY with mixed directions or explicit NULLS needs it.
	Directions []string `json:"directions,omitempty"`
}

// The column directions of IndexSpec.Directions.
const (
	DirAsc           = ""
	DirDesc          = "DESC"
	DirAscNullsFirst = "NULLS FIRST"
	DirDescNullsLast = "DESC NULLS LAST"
)

// Direction is the Directions entry for a sort direction and null order.
func Direction(desc, nullsFirst bool) string {
	switch {
	case desc && nullsFirst:
		return DirDesc
	case desc:
		return DirDescNullsLast
	case nullsFirst:
		return DirAscNullsFirst
	}
	return DirAsc
}

// ColumnDirection is the direction of Columns[i] ("" when Directions is
// not set or shorter).
func (s IndexSpec) ColumnDirection(i int) string {
	if i < len(s.Directions) {
		return s.Directions[i]
	}
	return DirAsc
}

// IndexExpr is one expression key: a function from pkg/indexdef's
// allow-list applied to one column. It is structured data, never SQL text:
// the DDL is rendered from it with the column quoted.
type IndexExpr struct {
	Function string `json:"function"`
	Column   string `json:"column"`
}

// String is "function(column)", as in the index key.
func (e IndexExpr) String() string { return e.Function + "(" + e.Column + ")" }

// Key is the canonical identity of the definition:
// "schema.table|method|col1,col2|predicate", followed by
// "|fn(col),..." only when the spec has expression keys and
// "|order=dir1,dir2" only when a column is not in the default order (so
// the keys of plain specs never change). Recommendations are unique per
// (target, Key).
func (s IndexSpec) Key() string {
	m := s.Method
	if m == "" {
		m = "btree"
	}
	key := s.Schema + "." + s.Table + "|" + m + "|" + strings.Join(s.Columns, ",") + "|" + s.Predicate
	if len(s.Expressions) > 0 {
		exprs := make([]string, len(s.Expressions))
		for i, e := range s.Expressions {
			exprs[i] = e.String()
		}
		key += "|" + strings.Join(exprs, ",")
	}
	for _, d := range s.Directions {
		if d != DirAsc {
			key += "|order=" + strings.Join(s.Directions, ",")
			break
		}
	}
	return key
}

// QualifiedTable is "schema.table", unquoted, for messages and keys.
func (s IndexSpec) QualifiedTable() string { return s.Schema + "." + s.Table }
