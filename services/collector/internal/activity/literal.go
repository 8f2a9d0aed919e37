// Package activity turns the statements pg_stat_activity shows running into
// workload: a statement text sent with its constants inline (the simple
// protocol) is normalized to the $n form pg_stat_statements shows, and its
// constants become one parameter sample, in $n order. The values are only
// ever bound as parameters downstream, never spliced into SQL.
package activity

import (
	"sort"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Literal normalizes a statement text: each constant (as the parser
// records them, numbered in text order as pg_stat_statements numbers them;
// type modifiers such as varchar(10) stay) becomes $1, $2, ... and its
// value, as text, is returned in that order. ok is false when the text
// does not parse, already has $n parameters (extended protocol: no values
// to learn), or has a constant that cannot be passed as a text parameter
// (NULL, a bit string); normalized is then "".
func Literal(text string) (normalized string, values []string, ok bool) {
	tree, err := pg_query.Parse(text)
	if err != nil || len(tree.Stmts) != 1 {
		return "", nil, false
	}
	var (
		consts []*pg_query.A_Const
		params bool
	)
	walk(tree.ProtoReflect(), func(m protoreflect.Message) bool {
		switch n := m.Interface().(type) {
		case *pg_query.TypeName:
			return false
		case *pg_query.ParamRef:
			params = true
		case *pg_query.A_Const:
			consts = append(consts, n)
		}
		return true
	})
	if params {
		return "", nil, false
	}
	sort.SliceStable(consts, func(i, j int) bool { return consts[i].Location < consts[j].Location })
	scan, err := pg_query.Scan(text)
	if err != nil {
		return "", nil, false
	}
	var b strings.Builder
	at := 0
	for i, c := range consts {
		v, ok := value(c)
		if !ok || int(c.Location) < at {
			return "", nil, false
		}
		end, ok := constEnd(scan.Tokens, c.Location)
		if !ok {
			return "", nil, false
		}
		b.WriteString(text[at:c.Location])
		b.WriteString("$" + strconv.Itoa(i+1))
		at = int(end)
		values = append(values, v)
	}
	b.WriteString(text[at:])
	return b.String(), values, true
}

// value is a constant's value as text input of its type.
func value(c *pg_query.A_Const) (string, bool) {
	switch {
	case c.Isnull:
		return "", false
	case c.GetIval() != nil:
		return strconv.FormatInt(int64(c.GetIval().Ival), 10), true
	case c.GetFval() != nil:
		return c.GetFval().Fval, true
	case c.GetBoolval() != nil:
		return strconv.FormatBool(c.GetBoolval().Boolval), true
	case c.GetSval() != nil:
		return c.GetSval().Sval, true
	}
	return "", false
}

// constEnd is the end of the constant that starts at loc: its token, with
// the number after a leading minus sign.
func constEnd(tokens []*pg_query.ScanToken, loc int32) (int32, bool) {
	for i, t := range tokens {
		if t.Start != loc {
			continue
		}
		if t.Token == pg_query.Token_ASCII_45 && i+1 < len(tokens) &&
			(tokens[i+1].Token == pg_query.Token_ICONST || tokens[i+1].Token == pg_query.Token_FCONST) {
			return tokens[i+1].End, true
		}
		return t.End, true
	}
	return 0, false
}

// walk calls visit on m and, while it returns true, on every message below.
func walk(m protoreflect.Message, visit func(protoreflect.Message) bool) {
	if !visit(m) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), visit)
			}
		case fd.IsMap():
		case fd.Message() != nil:
			walk(v.Message(), visit)
		}
		return true
	})
}
