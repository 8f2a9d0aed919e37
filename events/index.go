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
}

// Key is the canonical identity of the definition:
// "schema.table|method|col1,col2|predicate". Recommendations are unique per
// (target, Key).
func (s IndexSpec) Key() string {
	m := s.Method
	if m == "" {
		m = "btree"
	}
	return s.Schema + "." + s.Table + "|" + m + "|" + strings.Join(s.Columns, ",") + "|" + s.Predicate
}

// QualifiedTable is "schema.table", unquoted, for messages and keys.
func (s IndexSpec) QualifiedTable() string { return s.Schema + "." + s.Table }
