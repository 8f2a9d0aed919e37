package delta

import (
	"strings"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// plannable are the first keywords of the statements PostgreSQL plans and
// an index can therefore serve. Everything else pg_stat_statements records
// is a utility statement (BEGIN, COMMIT, SET, SHOW, VACUUM, EXPLAIN, DDL,
// COPY, ...), which no index can speed up.
var plannable = map[string]bool{
	"select": true, "with": true, "insert": true, "update": true,
	"delete": true, "merge": true, "values": true, "table": true,
}

// Excluded reports whether a statement is left out of the workload:
//   - IndexPilot's own statements: the text contains postgres.MarkerPrefix
//     anywhere (a marker after a leading user comment still counts);
//   - statements that are not plannable, judged by the first keyword after
//     leading whitespace and comments: only SELECT, WITH, INSERT, UPDATE,
//     DELETE, MERGE, VALUES, TABLE and a parenthesised query are kept;
//   - statements whose text is unreadable: empty, or
//     "<insufficient privilege>" for another role's statement.
func Excluded(query string) bool {
	if strings.Contains(query, postgres.MarkerPrefix) {
		return true
	}
	rest := skipComments(query)
	if strings.HasPrefix(rest, "(") {
		return false
	}
	end := 0
	for end < len(rest) && isWordByte(rest[end]) {
		end++
	}
	return !plannable[strings.ToLower(rest[:end])]
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// skipComments drops leading whitespace, "--" line comments and (nested, as
// PostgreSQL allows) "/* */" block comments.
func skipComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			depth, i := 0, 0
			for i < len(s) {
				if strings.HasPrefix(s[i:], "/*") {
					depth++
					i += 2
					continue
				}
				if strings.HasPrefix(s[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				i++
			}
			if depth != 0 {
				return ""
			}
			s = s[i:]
		default:
			return s
		}
	}
}
