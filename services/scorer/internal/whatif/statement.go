package whatif

import (
	"fmt"
	"strings"
)

// Check is the cheap gate every statement passes before it reaches the
// server: it must be one SELECT, UPDATE, DELETE or WITH statement (leading
// comments and opening parentheses are skipped; trailing semicolons are
// allowed). Anything else — another command, an empty string, a second
// statement after a semicolon — is refused with an error wrapping
// ErrRefused.
//
// It is a tokenizer-level check (quotes, dollar quotes and comments are
// skipped), not a parser: the caller parses statements with pg_query_go, and
// the server's extended protocol refuses multiple commands in one Parse
// message anyway. Check only keeps obviously wrong input off the wire.
func Check(query string) error {
	sc := scanner{s: query}
	sc.skipSpaceAndComments()
	for sc.i < len(sc.s) && sc.s[sc.i] == '(' {
		sc.i++
		sc.skipSpaceAndComments()
	}
	start := sc.i
	for sc.i < len(sc.s) && isLetter(sc.s[sc.i]) {
		sc.i++
	}
	word := strings.ToLower(sc.s[start:sc.i])
	switch word {
	case "select", "with", "update", "delete":
	case "":
		return fmt.Errorf("%w: no statement", ErrRefused)
	default:
		if len(word) > 20 {
			word = word[:20]
		}
		return fmt.Errorf("%w: %s statements are not evaluated", ErrRefused, word)
	}
	if sc.i < len(sc.s) && isIdentChar(sc.s[sc.i]) {
		// "selectx", "update_log": not the keyword.
		return fmt.Errorf("%w: statement does not start with a keyword", ErrRefused)
	}
	// Find the first semicolon outside quotes and comments; only blanks,
	// comments and more semicolons may follow it.
	for sc.i < len(sc.s) {
		if sc.skipToken() {
			continue
		}
		if sc.s[sc.i] == ';' {
			sc.i++
			for {
				sc.skipSpaceAndComments()
				if sc.i < len(sc.s) && sc.s[sc.i] == ';' {
					sc.i++
					continue
				}
				break
			}
			if sc.i < len(sc.s) {
				return fmt.Errorf("%w: more than one statement", ErrRefused)
			}
			return nil
		}
		sc.i++
	}
	if sc.unterminated {
		return fmt.Errorf("%w: unterminated quote or comment", ErrRefused)
	}
	return nil
}

// scanner walks SQL text skipping the parts where a semicolon is not a
// statement separator.
type scanner struct {
	s            string
	i            int
	unterminated bool
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isIdentChar(c byte) bool {
	return isLetter(c) || (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80
}

func (sc *scanner) skipSpaceAndComments() {
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			sc.i++
		case strings.HasPrefix(sc.s[sc.i:], "--"), strings.HasPrefix(sc.s[sc.i:], "/*"):
			sc.skipToken()
		default:
			return
		}
	}
}

// skipToken skips one comment, quoted string, quoted identifier or
// dollar-quoted string at the current position and reports whether it did.
func (sc *scanner) skipToken() bool {
	rest := sc.s[sc.i:]
	switch {
	case strings.HasPrefix(rest, "--"):
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			sc.i += j + 1
		} else {
			sc.i = len(sc.s)
		}
		return true
	case strings.HasPrefix(rest, "/*"):
		depth := 0
		for sc.i < len(sc.s) {
			switch {
			case strings.HasPrefix(sc.s[sc.i:], "/*"):
				depth++
				sc.i += 2
			case strings.HasPrefix(sc.s[sc.i:], "*/"):
				depth--
				sc.i += 2
				if depth == 0 {
					return true
				}
			default:
				sc.i++
			}
		}
		sc.unterminated = true
		return true
	case rest[0] == '\'':
		escapes := sc.i > 0 && (sc.s[sc.i-1] == 'e' || sc.s[sc.i-1] == 'E') &&
			(sc.i == 1 || !isIdentChar(sc.s[sc.i-2]))
		sc.skipQuoted('\'', escapes)
		return true
	case rest[0] == '"':
		sc.skipQuoted('"', false)
		return true
	case rest[0] == '$':
		if sc.i > 0 && isIdentChar(sc.s[sc.i-1]) {
			return false // part of an identifier such as a$b
		}
		j := 1
		for j < len(rest) && isIdentChar(rest[j]) && rest[j] != '$' {
			if j == 1 && rest[j] >= '0' && rest[j] <= '9' {
				return false // a parameter: $1
			}
			j++
		}
		if j >= len(rest) || rest[j] != '$' {
			return false
		}
		tag := rest[:j+1]
		end := strings.Index(rest[j+1:], tag)
		if end < 0 {
			sc.unterminated = true
			sc.i = len(sc.s)
			return true
		}
		sc.i += j + 1 + end + len(tag)
		return true
	}
	return false
}

// skipQuoted skips a quoted run starting at the opening quote; a doubled
// quote stays inside, and so does a backslash-escaped one when escapes is
// set (E'...' strings).
func (sc *scanner) skipQuoted(q byte, escapes bool) {
	sc.i++
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case escapes && c == '\\':
			sc.i += 2
		case c == q && sc.i+1 < len(sc.s) && sc.s[sc.i+1] == q:
			sc.i += 2
		case c == q:
			sc.i++
			return
		default:
			sc.i++
		}
	}
	sc.unterminated = true
}
