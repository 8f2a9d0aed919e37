package indexdef

import (
	"strings"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Test is the value-free test a partial-index Condition applies to its
// column.
type Test string

// The tests a Condition can apply. None takes a value, so the condition
// survives pg_stat_statements normalization (which turns every literal,
// true and false included, into a parameter) and a generic plan can prove
// the index usable from the statement's own text.
const (
	TestIsNotNull Test = "is_not_null" // col IS NOT NULL
	TestIsNull    Test = "is_null"     // col IS NULL
	TestIsTrue    Test = "is_true"     // col IS TRUE
	TestIsFalse   Test = "is_false"    // col IS FALSE
	TestTrue      Test = "true"        // col (a boolean column)
	TestFalse     Test = "false"       // NOT col
)

// Condition is the predicate of a partial index IndexPilot renders: one
// column and one Test. It is always built from parsed structure and
// rendered from it, never copied from statement or catalog text.
type Condition struct {
	Column string
	Test   Test
}

// Predicate renders c the way pg_get_expr prints the predicate of such an
// index for a simple lower-case name: "(deleted_at IS NULL)", "active",
// "(NOT archived)". It is the form events.IndexSpec.Predicate carries. ""
// for an unknown test or an empty column.
func (c Condition) Predicate() string {
	if c.Column == "" {
		return ""
	}
	switch body := c.body(displayIdent(c.Column)); {
	case body == "" || c.Test == TestTrue:
		return body
	default:
		return "(" + body + ")"
	}
}

// SQL renders c for DDL, the column quoted with postgres.Ident.
func (c Condition) SQL() string {
	if c.Column == "" {
		return ""
	}
	return c.body(postgres.Ident(c.Column))
}

// body is c on the column as written by col, without parentheses.
func (c Condition) body(col string) string {
	switch c.Test {
	case TestIsNotNull:
		return col + " IS NOT NULL"
	case TestIsNull:
		return col + " IS NULL"
	case TestIsTrue:
		return col + " IS TRUE"
	case TestIsFalse:
		return col + " IS FALSE"
	case TestTrue:
		return col
	case TestFalse:
		return "NOT " + col
	}
	return ""
}

// ParseCondition reads a predicate in one of the forms Predicate renders
// or pg_get_expr prints for such an index — including "(active = true)"
// and "(active = false)", which mean the same as "active" and
// "(NOT active)" — and returns its Condition. ok is false for anything
// else (several conditions, values, casts, functions).
func ParseCondition(p string) (Condition, bool) {
	if col, ok := parseIdent(p); ok {
		return Condition{Column: col, Test: TestTrue}, true
	}
	if !strings.HasPrefix(p, "(") || !strings.HasSuffix(p, ")") {
		return Condition{}, false
	}
	inner := p[1 : len(p)-1]
	if rest, ok := strings.CutPrefix(inner, "NOT "); ok {
		if col, ok := parseIdent(rest); ok {
			return Condition{Column: col, Test: TestFalse}, true
		}
		return Condition{}, false
	}
	for _, s := range []struct {
		suffix string
		test   Test
	}{
		{" IS NOT NULL", TestIsNotNull}, {" IS NULL", TestIsNull}, {" IS TRUE", TestIsTrue},
		{" IS FALSE", TestIsFalse}, {" = true", TestTrue}, {" = false", TestFalse},
	} {
		if arg, ok := strings.CutSuffix(inner, s.suffix); ok {
			if col, ok := parseIdent(arg); ok {
				return Condition{Column: col, Test: s.test}, true
			}
			return Condition{}, false
		}
	}
	return Condition{}, false
}

// SamePredicate reports whether two partial-index predicates are the same
// condition: equal text (both "" for a full index), or both read by
// ParseCondition as the same Condition.
func SamePredicate(a, b string) bool {
	if a == b {
		return true
	}
	ca, oka := ParseCondition(a)
	cb, okb := ParseCondition(b)
	return oka && okb && ca == cb
}

// parseIdent reads one identifier as the catalog prints it: bare (a
// lower-case name) or double-quoted with "" for a quote.
func parseIdent(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		inner := s[1 : len(s)-1]
		if inner == "" || strings.Contains(strings.ReplaceAll(inner, `""`, ""), `"`) {
			return "", false
		}
		return strings.ReplaceAll(inner, `""`, `"`), true
	}
	if s == "" || (s[0] >= '0' && s[0] <= '9') || s[0] == '$' {
		return "", false
	}
	for _, r := range s {
		if !(r == '_' || r == '$' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			return "", false
		}
	}
	switch s {
	case "true", "false", "null", "not":
		return "", false
	}
	return s, true
}
