// Package sqlparse reads one normalized statement (pg_stat_statements text,
// parameters as $1..$n) with the PostgreSQL parser (pg_query_go, libpg_query)
// and reports, per table, the columns the statement filters, joins, sorts
// and groups on. It is the scorer's only view of a statement's shape: nothing
// is inferred from column types, and nothing is guessed when the text does not
// say which table a column belongs to.
//
// Only SELECT, UPDATE and DELETE are analysed (with their subqueries and
// CTEs); anything else is reported as ErrUnsupported so the caller can count
// it. Extract never panics on any input.
package sqlparse

import (
	"errors"
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// ErrUnsupported is returned (wrapped) for text that is not exactly one
// SELECT, UPDATE or DELETE: INSERT, MERGE, utility statements, SELECT INTO,
// several statements, or an empty string.
var ErrUnsupported = errors.New("unsupported statement")

// ErrSyntax is returned (wrapped, together with the parser's error) when the
// text does not parse.
var ErrSyntax = errors.New("invalid sql")

// Kind is the kind of a supported statement.
type Kind string

// The statement kinds Extract supports.
const (
	KindSelect Kind = "SELECT"
	KindUpdate Kind = "UPDATE"
	KindDelete Kind = "DELETE"
)

// TableRef names a table as the statement wrote it. Schema is "" when the
// statement did not qualify the name: the caller resolves it (search_path).
// Names are as PostgreSQL folds them: unquoted identifiers lower-case, quoted
// ones exact.
type TableRef struct {
	Schema string
	Name   string
}

// String is "schema.name", or "name" when the schema is unknown.
func (t TableRef) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// OrderCol is one ORDER BY column of a table.
type OrderCol struct {
	Column string
	Desc   bool
	// NullsFirst is the effective null ordering: explicit NULLS FIRST/LAST,
	// otherwise PostgreSQL's default (first for DESC, last for ASC).
	NullsFirst bool
}

// Op is the kind of predicate an expression usage takes part in.
type Op string

// The predicate kinds recorded for expression usages.
const (
	OpEquality   Op = "equality"
	OpRange      Op = "range"
	OpIsNull     Op = "is_null"
	OpLikePrefix Op = "like_prefix"
)

// CondTest is a value-free test of a column.
type CondTest string

// The tests a Condition records.
const (
	CondIsNull    CondTest = "is_null"     // col IS NULL
	CondIsNotNull CondTest = "is_not_null" // col IS NOT NULL
	CondIsTrue    CondTest = "is_true"     // col IS TRUE
	CondIsFalse   CondTest = "is_false"    // col IS FALSE
	CondTrue      CondTest = "true"        // WHERE col (a boolean column)
	CondFalse     CondTest = "false"       // WHERE NOT col
)

// Condition is a test of one column that takes no value, so that it
// survives pg_stat_statements normalization as written (a literal, true
// and false included, becomes $n): deleted_at IS NULL, active, NOT
// archived, active IS TRUE.
type Condition struct {
	Column string
	Test   CondTest
}

// ExprUsage is a predicate on an expression of one table's columns rather
// than on a plain column, e.g. lower(email) = $1. Such a predicate can only
// use an expression index, so the column is deliberately NOT listed in
// TableUsage.Equality (or Range, ...).
type ExprUsage struct {
	// Expr is the expression as the parser deparses it, with column
	// references unqualified (lower(u.email) becomes lower(email)).
	Expr string
	// Columns are the table's columns the expression reads.
	Columns []string
	Op      Op
}

// TableUsage is what a statement does with one table. Every column list is
// deduplicated and in order of first appearance in the statement (the FROM
// and CTE parts are walked before the WHERE clause that uses them).
//
// Predicates under OR are recorded like those under AND: each branch is
// index-usable on its own (BitmapOr). Predicates under NOT are not recorded,
// except NOT on a bare boolean column.
type TableUsage struct {
	Table TableRef
	// Equality: col = value, value = col, col IN (values), col = ANY(value),
	// and a bare boolean column used as a condition.
	Equality []string
	// Range: <, >, <=, >= against a value, BETWEEN, and the first column of
	// a row comparison such as (a, b) > ($1, $2).
	Range []string
	// IsNull: col IS NULL. IsNotNull: col IS NOT NULL (a partial-index hint).
	IsNull    []string
	IsNotNull []string
	// LikePrefix: col LIKE 'constant%' with a constant, wildcard-free
	// prefix. A parameter pattern (col LIKE $1, which is what
	// pg_stat_statements normalization makes of a literal) is not a prefix.
	LikePrefix []string
	// JoinKeys: columns compared with a column of another FROM item
	// (JOIN ... ON, USING, comma joins in WHERE, correlated subqueries), and
	// col IN (SELECT ...).
	JoinKeys []string
	// OrderBy is in ORDER BY order; GroupBy in GROUP BY order.
	OrderBy []OrderCol
	GroupBy []string
	// Expressions are predicates on expressions of this table's columns.
	Expressions []ExprUsage
	// Conditions are the value-free tests of this table's columns that
	// every row the statement reads from the table must pass: top-level
	// AND terms of a WHERE clause (not under OR or NOT, not in a join's
	// ON), on a table that is not the nullable side of an outer join. A
	// partial index with such a predicate can serve the statement. Each
	// is listed once, in order of appearance.
	Conditions []Condition
	// Updated are the columns an UPDATE of this table assigns (its SET
	// list, in order, each once; a[1] = $1 and c.f = $1 assign a and c),
	// for the write model: an index on one of them costs the statement its
	// HOT updates. Empty for a table the statement only reads.
	Updated []string
}

// Statement is the result of Extract.
type Statement struct {
	Kind Kind
	// Fingerprint is pg_query's fingerprint of the statement (hex): the same
	// for statements that differ only in constants and parameters.
	Fingerprint string
	// Tables are the base tables the statement reads, in order of first
	// appearance, each listed once (a self-join merges into one entry).
	// A table appears even when no column of it is used.
	Tables []TableUsage
}

// Table returns the usage of ref, if the statement reads that table.
func (s *Statement) Table(ref TableRef) (*TableUsage, bool) {
	if s == nil {
		return nil, false
	}
	for i := range s.Tables {
		if s.Tables[i].Table == ref {
			return &s.Tables[i], true
		}
	}
	return nil, false
}

// Catalog attributes an unqualified column when several tables could own
// it. ColumnTable returns which of candidates has the column; false when
// none does (the column then belongs to a subquery, a CTE or an outer query)
// or the catalog cannot tell. Candidates carry the names as written (Schema
// may be ""), so the implementation resolves them as the target would.
type Catalog interface {
	ColumnTable(candidates []TableRef, column string) (TableRef, bool)
}

// Extract parses sql, which must be exactly one SELECT, UPDATE or DELETE,
// and returns the columns it uses per table. cat may be nil: an unqualified
// column is then attributed only when exactly one FROM item is in scope and
// it is a table, and dropped otherwise.
//
// Errors wrap ErrSyntax when sql does not parse and ErrUnsupported for any
// other kind of statement; neither carries the statement text.
func Extract(sql string, cat Catalog) (*Statement, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("parse statement: %w: %w", ErrSyntax, err)
	}
	stmts := tree.GetStmts()
	if len(stmts) != 1 {
		return nil, fmt.Errorf("parse statement: %d statements: %w", len(stmts), ErrUnsupported)
	}
	node := stmts[0].GetStmt()
	x := &extractor{cat: cat, version: tree.GetVersion(), usage: map[TableRef]*TableUsage{}, root: node}
	st := &Statement{}
	switch {
	case node.GetSelectStmt() != nil:
		if node.GetSelectStmt().GetIntoClause() != nil {
			return nil, fmt.Errorf("extract select into: %w", ErrUnsupported)
		}
		st.Kind = KindSelect
		x.selectStmt(node.GetSelectStmt(), nil)
	case node.GetUpdateStmt() != nil:
		st.Kind = KindUpdate
		x.updateStmt(node.GetUpdateStmt(), nil)
	case node.GetDeleteStmt() != nil:
		st.Kind = KindDelete
		x.deleteStmt(node.GetDeleteStmt(), nil)
	default:
		return nil, fmt.Errorf("extract %s: %w", nodeName(node), ErrUnsupported)
	}
	x.applyEquivalences()
	fp, err := pg_query.Fingerprint(sql)
	if err != nil {
		return nil, fmt.Errorf("fingerprint statement: %w", err)
	}
	st.Fingerprint = fp
	st.Tables = make([]TableUsage, 0, len(x.order))
	for _, ref := range x.order {
		st.Tables = append(st.Tables, *x.usage[ref])
	}
	return st, nil
}

// nodeName is the parse-node type of n ("InsertStmt"), for error messages.
func nodeName(n *pg_query.Node) string {
	if n == nil || n.GetNode() == nil {
		return "empty statement"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", n.GetNode()), "*pg_query.Node_")
}
