package whatif

import (
	"fmt"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Shape is what the parse tree says about a workload statement's
// parameters: the text to prepare (typed literals rewritten into casts),
// the interval unit of each typed interval literal, and the column each
// parameter is compared with.
type Shape struct {
	// Text is what the server is asked to plan: the statement as given,
	// or its deparsed tree when a typed literal was rewritten.
	Text string
	// Rewritten says Text is the deparsed, rewritten tree.
	Rewritten bool
	// Params is the highest $n of the statement.
	Params int
	// Units maps $n of an `interval $n <field>` literal to the unit its
	// value is read in ("day", "month", …): a bound value has no
	// qualifier, so a bare number must be bound as "90 day", not "90"
	// (which PostgreSQL reads as 90 seconds).
	Units map[int]string
	// Uses lists, per $n, how the statement uses it: the column it is
	// compared with and the operator, or LIMIT / OFFSET.
	Uses map[int][]ParamUse
	// Shifts marks the parameters that shift a bound (`date $1 + interval
	// $2 day`, `$3 - $4`): the second operand of + and -. They take no
	// column value: 0 (numeric), one unit (interval) or an observed value.
	Shifts map[int]bool
	// Typed marks the parameters under a cast (their type is known);
	// untyped marks those whose type the server may not infer: operands
	// of arithmetic and parameters compared with nothing (CASE results).
	Typed, arith map[int]bool
}

// ParamUse is one use of a parameter.
type ParamUse struct {
	// Relations are the quoted names (for to_regclass) of the tables the
	// column may belong to: one when the column reference is qualified,
	// every table of the statement otherwise.
	Relations []string
	Column    string
	// Op is the comparison as if the column were on the left: "=", "<",
	// "<=", ">", ">=", "<>", "like", or "limit" / "offset" (no column).
	Op string
}

// Operators a parameter use can have.
const (
	opLimit  = "limit"
	opOffset = "offset"
	opLike   = "like"
)

// interval field bits of the typmod (datatype/timestamp.h), smallest unit
// first.
var intervalUnits = []struct {
	bit  int32
	unit string
}{{12, "second"}, {11, "minute"}, {10, "hour"}, {3, "day"}, {1, "month"}, {2, "year"}}

// AnalyzeStatement parses query and returns its Shape. A typed literal of
// pg_stat_statements' normalized text (`date $1`, `timestamp $2`,
// `interval $3 day`) — which the server cannot prepare — is rewritten on
// the parse tree into a cast of the parameter (`$1::date`, `$3::interval
// day`) and the tree is deparsed; the text is never edited as a string.
// PostgreSQL 18's squashed list `IN ($1 /*, ... */)` needs nothing: the
// tail is a comment and the list is priced with one representative value.
func AnalyzeStatement(query string) (*Shape, error) {
	tree, err := pg.Parse(query)
	if err != nil {
		return nil, fmt.Errorf("%w: parse: %w", ErrNotEvaluable, err)
	}
	if len(tree.Stmts) != 1 {
		return nil, fmt.Errorf("%w: %d statements", ErrRefused, len(tree.Stmts))
	}
	sh := &Shape{Text: query, Units: map[int]string{}, Uses: map[int][]ParamUse{}, Shifts: map[int]bool{},
		Typed: map[int]bool{}, arith: map[int]bool{}}
	a := &analyzer{shape: sh, rels: map[string]string{}}
	walk(tree.Stmts[0].ProtoReflect(), a.visit)
	if a.bad {
		return nil, fmt.Errorf("%w: parameter $0", ErrNotEvaluable)
	}
	a.resolve()
	if a.rewrite {
		text, err := pg.Deparse(tree)
		if err != nil {
			return nil, fmt.Errorf("%w: deparse rewritten statement: %w", ErrNotEvaluable, err)
		}
		// The deparser has gaps on odd input; what it wrote must parse.
		if _, err := pg.Parse(text); err != nil {
			return nil, fmt.Errorf("%w: rewritten statement does not parse: %w", ErrNotEvaluable, err)
		}
		sh.Text, sh.Rewritten = text, true
	}
	return sh, nil
}

// walk calls visit on every message of the tree, parents first.
func walk(m protoreflect.Message, visit func(protoreflect.Message)) {
	if !m.IsValid() {
		return
	}
	visit(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), visit)
			}
		case fd.Message() != nil && !fd.IsMap():
			walk(v.Message(), visit)
		}
		return true
	})
}

type pendingUse struct {
	param     int
	qualifier []string // schema/table qualifier of the column reference
	column    string
	op        string
}

type analyzer struct {
	shape   *Shape
	rewrite bool
	// bad: a parameter $0, which no server accepts.
	bad bool
	// rels maps every alias and table name of the statement to its quoted
	// relation name; order keeps them in first-seen order.
	rels  map[string]string
	order []string
	uses  []pendingUse
}

func (a *analyzer) visit(m protoreflect.Message) {
	switch n := m.Interface().(type) {
	case *pg.ParamRef:
		if n.Number < 1 {
			a.bad = true
		}
		if int(n.Number) > a.shape.Params {
			a.shape.Params = int(n.Number)
		}
	case *pg.TypeCast:
		p := n.GetArg().GetParamRef()
		if p != nil {
			a.shape.Typed[int(p.Number)] = true
		}
		// A typed literal (`date $1`) is a TypeCast without a location of
		// its own; an explicit cast (`$1::date`) has one.
		if p == nil || n.Location >= 0 {
			return
		}
		n.Location = p.Location
		a.rewrite = true
		if unit := intervalUnit(n.GetTypeName()); unit != "" {
			a.shape.Units[int(p.Number)] = unit
		}
	case *pg.RangeVar:
		rel := postgres.Ident(n.Relname)
		if n.Schemaname != "" {
			rel = postgres.Ident(n.Schemaname, n.Relname)
		}
		names := []string{n.Relname}
		if n.Alias != nil {
			names = []string{n.Alias.Aliasname}
		}
		for _, name := range names {
			if _, ok := a.rels[name]; !ok {
				a.order = append(a.order, name)
			}
			a.rels[name] = rel
		}
	case *pg.SelectStmt:
		for _, p := range paramsOf(n.GetLimitCount()) {
			a.uses = append(a.uses, pendingUse{param: p, op: opLimit})
		}
		for _, p := range paramsOf(n.GetLimitOffset()) {
			a.uses = append(a.uses, pendingUse{param: p, op: opOffset})
		}
	case *pg.A_Expr:
		a.comparison(n)
		a.arithmetic(n)
	case *pg.FuncCall:
		// EXTRACT(field FROM x) with the field normalized to $n
		// (`extract($1 from d)`) is not valid SQL syntax; as a plain call
		// (`pg_catalog.extract($1, d)`) it is.
		names := n.GetFuncname()
		if n.Funcformat == pg.CoercionForm_COERCE_SQL_SYNTAX && len(names) > 0 &&
			names[len(names)-1].GetString_().GetSval() == "extract" && len(n.GetArgs()) == 2 && n.GetArgs()[0].GetParamRef() != nil {
			n.Funcformat = pg.CoercionForm_COERCE_EXPLICIT_CALL
			a.rewrite = true
		}
	}
}

// arithmetic records the parameters that are direct operands of + - * /
// and the shifts (second operands of + and -).
func (a *analyzer) arithmetic(n *pg.A_Expr) {
	if n.Kind != pg.A_Expr_Kind_AEXPR_OP || len(n.GetName()) != 1 {
		return
	}
	switch op := n.GetName()[0].GetString_().GetSval(); op {
	case "+", "-", "*", "/":
		for i, side := range []*pg.Node{n.GetLexpr(), n.GetRexpr()} {
			for _, p := range paramsOf(side) {
				a.shape.arith[p] = true
				if i == 1 && (op == "+" || op == "-") && len(paramsOf(n.GetLexpr())) > 0 {
					a.shape.Shifts[p] = true
				}
			}
		}
	}
}

// guessTypes types, for a second attempt at preparing the statement after
// the server could not infer a parameter's type (`sum(case … then $2 else
// $3 end)`, `$4 - $5`), the parameters in arithmetic or compared with
// nothing as numeric; nil when there is none to type.
func (sh *Shape) guessTypes() []uint32 {
	const numeric = 1700
	var oids []uint32
	found := false
	for n := 1; n <= sh.Params; n++ {
		oid := uint32(0)
		limit := false
		for _, u := range sh.Uses[n] {
			limit = limit || u.Op == opLimit || u.Op == opOffset
		}
		if !sh.Typed[n] && !limit && (sh.arith[n] || len(sh.Uses[n]) == 0) {
			oid, found = numeric, true
		}
		oids = append(oids, oid)
	}
	if !found {
		return nil
	}
	return oids
}

// intervalUnit is the smallest field of an interval type's qualifier
// (`interval day` → "day"), "" for another type or no qualifier.
func intervalUnit(tn *pg.TypeName) string {
	names := tn.GetNames()
	if len(names) == 0 || names[len(names)-1].GetString_().GetSval() != "interval" || len(tn.GetTypmods()) == 0 {
		return ""
	}
	mask := tn.GetTypmods()[0].GetAConst().GetIval().GetIval()
	for _, u := range intervalUnits {
		if mask&(1<<u.bit) != 0 {
			return u.unit
		}
	}
	return ""
}

// flip turns "$1 < col" into "col > $1".
var flip = map[string]string{"=": "=", "<>": "<>", "!=": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

func (a *analyzer) comparison(n *pg.A_Expr) {
	op := ""
	if len(n.GetName()) > 0 {
		op = n.GetName()[len(n.GetName())-1].GetString_().GetSval()
	}
	l, r := n.GetLexpr(), n.GetRexpr()
	switch n.Kind {
	case pg.A_Expr_Kind_AEXPR_OP:
		if _, ok := flip[op]; !ok {
			return
		}
		if op == "!=" {
			op = "<>"
		}
		if c := columnOf(l); c != nil {
			a.add(c, paramsOf(r), op)
		} else if c := columnOf(r); c != nil {
			a.add(c, paramsOf(l), flip[op])
		}
	case pg.A_Expr_Kind_AEXPR_IN:
		if c := columnOf(l); c != nil {
			a.add(c, paramsOf(r), "=")
		}
	case pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE:
		if c := columnOf(l); c != nil {
			a.add(c, paramsOf(r), opLike)
		}
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_BETWEEN_SYM:
		c := columnOf(l)
		items := r.GetList().GetItems()
		if c == nil || len(items) != 2 {
			return
		}
		a.add(c, paramsOf(items[0]), ">=")
		a.add(c, paramsOf(items[1]), "<=")
	}
}

func (a *analyzer) add(col *pg.ColumnRef, params []int, op string) {
	var parts []string
	for _, f := range col.GetFields() {
		s := f.GetString_()
		if s == nil {
			return // col.*
		}
		parts = append(parts, s.GetSval())
	}
	if len(parts) == 0 {
		return
	}
	for _, p := range params {
		a.uses = append(a.uses, pendingUse{param: p, qualifier: parts[:len(parts)-1], column: parts[len(parts)-1], op: op})
	}
}

// columnOf is the column reference an operand is, seen through casts.
func columnOf(n *pg.Node) *pg.ColumnRef {
	for n != nil {
		if c := n.GetColumnRef(); c != nil {
			return c
		}
		tc := n.GetTypeCast()
		if tc == nil {
			return nil
		}
		n = tc.GetArg()
	}
	return nil
}

// paramsOf lists the parameters an operand compares with: the parameter
// itself, through casts, the items of a list, and the first operand of +
// and - with a parameter (`date $1 - interval $2 day`: $1 sets the bound,
// the shift is $2).
func paramsOf(n *pg.Node) []int {
	switch {
	case n == nil:
		return nil
	case n.GetParamRef() != nil:
		return []int{int(n.GetParamRef().Number)}
	case n.GetTypeCast() != nil:
		return paramsOf(n.GetTypeCast().GetArg())
	case n.GetList() != nil:
		var out []int
		for _, it := range n.GetList().GetItems() {
			out = append(out, paramsOf(it)...)
		}
		return out
	case n.GetAExpr() != nil && n.GetAExpr().Kind == pg.A_Expr_Kind_AEXPR_OP:
		e := n.GetAExpr()
		if len(e.GetName()) == 1 {
			switch e.GetName()[0].GetString_().GetSval() {
			case "+", "-":
				// The first operand sets the bound; the second is a shift
				// (`date $1 + interval $2 day`), unless the first has no
				// parameter (`now() - $1`).
				if l := paramsOf(e.GetLexpr()); len(l) > 0 {
					return l
				}
				return paramsOf(e.GetRexpr())
			}
		}
	}
	return nil
}

// resolve attaches relations to the uses found: a qualified column to its
// table, an unqualified one to every table of the statement (the server
// keeps the one that has the column).
func (a *analyzer) resolve() {
	all := make([]string, 0, len(a.order))
	seen := map[string]bool{}
	for _, name := range a.order {
		if rel := a.rels[name]; !seen[rel] {
			seen[rel] = true
			all = append(all, rel)
		}
	}
	sort.Strings(all)
	for _, u := range a.uses {
		pu := ParamUse{Column: u.column, Op: u.op}
		switch len(u.qualifier) {
		case 0:
			if u.column != "" {
				pu.Relations = all
			}
		case 1:
			if rel, ok := a.rels[u.qualifier[0]]; ok {
				pu.Relations = []string{rel}
			}
		default:
			pu.Relations = []string{postgres.Ident(u.qualifier[len(u.qualifier)-2], u.qualifier[len(u.qualifier)-1])}
		}
		if u.column != "" && len(pu.Relations) == 0 {
			continue
		}
		a.shape.Uses[u.param] = append(a.shape.Uses[u.param], pu)
	}
}

// bindValue is the text bound to $n: a bare number for a parameter of an
// interval literal gets the literal's unit ("90" → "90 day").
func (sh *Shape) bindValue(n int, v string) string {
	unit := sh.Units[n]
	if unit == "" {
		return v
	}
	t := strings.TrimSpace(v)
	if t == "" {
		return v
	}
	for _, c := range t {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+') {
			return v
		}
	}
	return t + " " + unit
}
