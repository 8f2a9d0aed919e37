package sqlparse

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// rangeEntry is one FROM item as a column reference can name it.
type rangeEntry struct {
	// refname is what a qualified column uses: the alias, or the relation
	// name when there is none.
	refname string
	aliased bool
	// schema and relname identify an unaliased table for schema.table.col.
	schema, relname string
	// table is nil for a derived item: subquery, CTE reference, view,
	// function.
	table *TableRef
	// sub is set for a derived item the planner pulls up: its columns
	// map onto the FROM items below it.
	sub *derived
	// view is the parsed definition of a view (expanded later), barrier
	// whether it is a security_barrier view.
	view    *pg_query.Node
	barrier bool
}

// scope is the FROM items visible at one query level, and the CTE names
// defined there. Lookups go from the innermost scope outwards.
type scope struct {
	parent  *scope
	entries []*rangeEntry
	ctes    []*cteDef
	// perRow: the query of this level has a LIMIT or OFFSET, so when it
	// is correlated it runs once per outer row.
	perRow bool
}

// cte finds the CTE an unqualified FROM name refers to, nil when none.
func (s *scope) cte(name string) *cteDef {
	for sc := s; sc != nil; sc = sc.parent {
		for _, c := range sc.ctes {
			if c.name == name {
				return c
			}
		}
	}
	return nil
}

// colRef is a column resolved to the FROM item (a base table) it belongs to.
type colRef struct {
	entry  *rangeEntry
	column string
}

type extractor struct {
	cat Catalog
	// version is the parse tree version, needed to deparse expressions.
	version int32
	order   []TableRef
	usage   map[TableRef]*TableUsage
	// root is the whole statement (CTE references are counted in it).
	root *pg_query.Node
	// depth counts the derived items being followed (maxInlineDepth).
	depth int
	views map[TableRef]parsedView
	eq    equivalences
	// structural > 0 while resolving a column for a join, sort or
	// grouping (not a filter against a value); leaky > 0 while resolving
	// one for a predicate that is not leakproof (LIKE, a function).
	structural, leaky int
	// sets are the members of the long column lists (appendUnique).
	sets map[*[]string]map[string]struct{}
}

// asStructural runs fn with x.structural raised.
func (x *extractor) asStructural(fn func()) {
	x.structural++
	defer func() { x.structural-- }()
	fn()
}

// asLeaky runs fn with x.leaky raised.
func (x *extractor) asLeaky(fn func()) {
	x.leaky++
	defer func() { x.leaky-- }()
	fn()
}

func (x *extractor) table(ref TableRef) *TableUsage {
	u, ok := x.usage[ref]
	if !ok {
		u = &TableUsage{Table: ref}
		x.usage[ref] = u
		x.order = append(x.order, ref)
	}
	return u
}

// appendUnique appends v to *list unless it is there. A long list gets a
// set beside it (nothing is ever removed from these lists), so that a
// statement naming thousands of columns costs linear time, not quadratic.
func (x *extractor) appendUnique(list *[]string, v string) {
	if len(*list) < 16 {
		for _, s := range *list {
			if s == v {
				return
			}
		}
		*list = append(*list, v)
		return
	}
	set := x.sets[list]
	if set == nil || len(set) != len(*list) {
		set = make(map[string]struct{}, 2*len(*list))
		for _, s := range *list {
			set[s] = struct{}{}
		}
		if x.sets == nil {
			x.sets = map[*[]string]map[string]struct{}{}
		}
		x.sets[list] = set
	}
	if _, ok := set[v]; ok {
		return
	}
	set[v] = struct{}{}
	*list = append(*list, v)
}

// --- statements ---------------------------------------------------------

// query walks any statement that can appear as a subquery or CTE body.
func (x *extractor) query(n *pg_query.Node, sc *scope) {
	switch {
	case n.GetSelectStmt() != nil:
		x.selectStmt(n.GetSelectStmt(), sc)
	case n.GetUpdateStmt() != nil:
		x.updateStmt(n.GetUpdateStmt(), sc)
	case n.GetDeleteStmt() != nil:
		x.deleteStmt(n.GetDeleteStmt(), sc)
	case n.GetInsertStmt() != nil:
		// Only inside a CTE: the rows it reads come from its SELECT part.
		ins := n.GetInsertStmt()
		x.query(ins.GetSelectStmt(), x.with(ins.GetWithClause(), sc))
	}
}

// with defines the CTE names of w in a new scope under parent and walks the
// CTE bodies there. It returns the scope the statement's own FROM hangs off.
func (x *extractor) with(w *pg_query.WithClause, parent *scope) *scope {
	if w == nil {
		return parent
	}
	cs := &scope{parent: parent}
	for _, n := range w.GetCtes() {
		if c := n.GetCommonTableExpr(); c != nil {
			def := &cteDef{name: c.GetCtename(), query: c.GetCtequery(), scope: cs,
				inline: inlineCTE(c, w.GetRecursive(), cteRefs(x.root, c.GetCtename()))}
			for _, a := range c.GetAliascolnames() {
				def.cols = append(def.cols, a.GetString_().GetSval())
			}
			cs.ctes = append(cs.ctes, def)
		}
	}
	// An inlined CTE is walked where it is referenced (as a subquery
	// there); an unreferenced one is dropped by the planner.
	for _, c := range cs.ctes {
		if !c.inline {
			x.query(c.query, cs)
		}
	}
	return cs
}

// selectStmt walks s and returns its FROM scope (nil for a set
// operation).
func (x *extractor) selectStmt(s *pg_query.SelectStmt, parent *scope) *scope {
	if s == nil {
		return nil
	}
	sc := x.with(s.GetWithClause(), parent)
	if s.GetLarg() != nil || s.GetRarg() != nil {
		// UNION / INTERSECT / EXCEPT: its ORDER BY sorts the combined
		// output, which no single table's index serves.
		x.selectStmt(s.GetLarg(), sc)
		x.selectStmt(s.GetRarg(), sc)
		return nil
	}
	for _, v := range s.GetValuesLists() {
		x.sublinks(v, sc)
	}
	local := &scope{parent: sc, perRow: s.GetLimitCount() != nil || s.GetLimitOffset() != nil}
	var joins []joinItem
	var later []func()
	for _, item := range s.GetFromClause() {
		x.fromItem(item, local, sc, &joins, &later)
	}
	for _, f := range later {
		f()
	}
	x.joinQuals(joins, local)
	x.innerJoinEqualities(joins, local)
	x.equalities(s.GetWhereClause(), local)
	x.qual(s.GetWhereClause(), local)
	x.conditions(s.GetWhereClause(), local, nullable(joins))
	targets := s.GetTargetList()
	x.groupBy(s.GetGroupClause(), targets, local)
	x.orderBy(s.GetSortClause(), targets, local)
	for _, t := range targets {
		x.sublinks(t, local)
	}
	x.sublinks(s.GetHavingClause(), local)
	return local
}

func (x *extractor) updateStmt(u *pg_query.UpdateStmt, parent *scope) {
	if u == nil {
		return
	}
	sc := x.with(u.GetWithClause(), parent)
	local := &scope{parent: sc}
	var joins []joinItem
	var later []func()
	target := x.target(u.GetRelation(), local, &later)
	for _, item := range u.GetFromClause() {
		x.fromItem(item, local, sc, &joins, &later)
	}
	for _, f := range later {
		f()
	}
	for _, n := range u.GetTargetList() {
		if name := n.GetResTarget().GetName(); name != "" && !systemColumn(name) {
			var c colRef
			ok := false
			x.asStructural(func() { c, ok = x.through(target, name) })
			if ok {
				x.appendUnique(&x.table(*c.entry.table).Updated, c.column)
			}
		}
	}
	x.joinQuals(joins, local)
	x.innerJoinEqualities(joins, local)
	x.equalities(u.GetWhereClause(), local)
	x.qual(u.GetWhereClause(), local)
	x.conditions(u.GetWhereClause(), local, nullable(joins))
	for _, t := range u.GetTargetList() {
		x.sublinks(t, local)
	}
	for _, t := range u.GetReturningList() {
		x.sublinks(t, local)
	}
}

func (x *extractor) deleteStmt(d *pg_query.DeleteStmt, parent *scope) {
	if d == nil {
		return
	}
	sc := x.with(d.GetWithClause(), parent)
	local := &scope{parent: sc}
	var joins []joinItem
	var later []func()
	x.target(d.GetRelation(), local, &later)
	for _, item := range d.GetUsingClause() {
		x.fromItem(item, local, sc, &joins, &later)
	}
	for _, f := range later {
		f()
	}
	x.joinQuals(joins, local)
	x.innerJoinEqualities(joins, local)
	x.equalities(d.GetWhereClause(), local)
	x.qual(d.GetWhereClause(), local)
	x.conditions(d.GetWhereClause(), local, nullable(joins))
	for _, t := range d.GetReturningList() {
		x.sublinks(t, local)
	}
}

// target adds the entry of an UPDATE or DELETE target to local: a table,
// or an auto-updatable view, which PostgreSQL rewrites into its base
// table (expanded like a FROM view). nil when rv is nil.
func (x *extractor) target(rv *pg_query.RangeVar, local *scope, later *[]func()) *rangeEntry {
	if rv == nil {
		return nil
	}
	if rv.GetRelname() != "" {
		if q, barrier := x.view(TableRef{Schema: rv.GetSchemaname(), Name: rv.GetRelname()}); q != nil {
			alias := rv.GetAlias().GetAliasname()
			e := &rangeEntry{refname: alias, aliased: alias != ""}
			if !e.aliased {
				e.refname = rv.GetRelname()
			}
			local.entries = append(local.entries, e)
			*later = append(*later, func() { e.sub = x.subquery(q, nil, nil, barrier) })
			return e
		}
	}
	e := x.rangeVar(rv, local, false)
	local.entries = append(local.entries, e)
	return e
}

// --- FROM ---------------------------------------------------------------

type joinItem struct {
	join        *pg_query.JoinExpr
	left, right []*rangeEntry
}

// rangeVar makes the entry for a relation name, registering it as a table
// unless it names a CTE (allowCTE is false for UPDATE/DELETE targets, which
// are always tables).
func (x *extractor) rangeVar(rv *pg_query.RangeVar, local *scope, allowCTE bool) *rangeEntry {
	alias := rv.GetAlias().GetAliasname()
	e := &rangeEntry{refname: alias, aliased: alias != ""}
	if !e.aliased {
		e.refname = rv.GetRelname()
	}
	if rv.GetRelname() == "" || (allowCTE && rv.GetSchemaname() == "" && local.cte(rv.GetRelname()) != nil) {
		return e
	}
	ref := TableRef{Schema: rv.GetSchemaname(), Name: rv.GetRelname()}
	if allowCTE {
		if q, barrier := x.view(ref); q != nil {
			e.view, e.barrier = q, barrier
			return e
		}
	}
	e.table = &ref
	e.schema, e.relname = ref.Schema, ref.Name
	x.table(ref)
	return e
}

// fromItem adds the entries of one FROM item to local and returns them.
// Join conditions are collected in joins, to be walked once every entry of
// the level is known; subqueries are queued in later for the same reason
// (a LATERAL one sees local, any other only outer, the scope above local).
func (x *extractor) fromItem(n *pg_query.Node, local, outer *scope, joins *[]joinItem, later *[]func()) []*rangeEntry {
	switch {
	case n.GetRangeVar() != nil:
		rv := n.GetRangeVar()
		e := x.rangeVar(rv, local, true)
		local.entries = append(local.entries, e)
		var aliasCols []string
		for _, a := range rv.GetAlias().GetColnames() {
			aliasCols = append(aliasCols, a.GetString_().GetSval())
		}
		if c := local.cte(rv.GetRelname()); c != nil && rv.GetSchemaname() == "" {
			if c.inline {
				cols := c.cols
				if len(aliasCols) > 0 {
					cols = aliasCols
				}
				*later = append(*later, func() { e.sub = x.subquery(c.query, c.scope, cols, false) })
			}
		} else if e.view != nil {
			// A view is expanded in place, like a subquery; a
			// security_barrier view lets only leakproof predicates in.
			q, barrier := e.view, e.barrier
			*later = append(*later, func() { e.sub = x.subquery(q, nil, aliasCols, barrier) })
		}
		return []*rangeEntry{e}
	case n.GetJoinExpr() != nil:
		j := n.GetJoinExpr()
		left := x.fromItem(j.GetLarg(), local, outer, joins, later)
		right := x.fromItem(j.GetRarg(), local, outer, joins, later)
		*joins = append(*joins, joinItem{join: j, left: left, right: right})
		return append(append([]*rangeEntry{}, left...), right...)
	case n.GetRangeSubselect() != nil:
		rs := n.GetRangeSubselect()
		e := &rangeEntry{refname: rs.GetAlias().GetAliasname(), aliased: true}
		local.entries = append(local.entries, e)
		see := outer
		if rs.GetLateral() {
			see = local
		}
		var aliasCols []string
		for _, a := range rs.GetAlias().GetColnames() {
			aliasCols = append(aliasCols, a.GetString_().GetSval())
		}
		*later = append(*later, func() { e.sub = x.subquery(rs.GetSubquery(), see, aliasCols, false) })
		return []*rangeEntry{e}
	case n.GetRangeFunction() != nil:
		rf := n.GetRangeFunction()
		e := &rangeEntry{refname: rf.GetAlias().GetAliasname(), aliased: true}
		local.entries = append(local.entries, e)
		*later = append(*later, func() {
			for _, f := range rf.GetFunctions() {
				x.sublinks(f, local)
			}
		})
		return []*rangeEntry{e}
	case n.GetRangeTableSample() != nil:
		return x.fromItem(n.GetRangeTableSample().GetRelation(), local, outer, joins, later)
	case n != nil && n.GetNode() != nil:
		// XMLTABLE, JSON_TABLE and the like: a derived item.
		e := &rangeEntry{}
		local.entries = append(local.entries, e)
		return []*rangeEntry{e}
	}
	return nil
}

func (x *extractor) joinQuals(joins []joinItem, local *scope) {
	for _, j := range joins {
		x.qual(j.join.GetQuals(), local)
		for _, pair := range x.using(j) {
			x.appendUnique(&x.table(*pair[0].entry.table).JoinKeys, pair[0].column)
			x.appendUnique(&x.table(*pair[1].entry.table).JoinKeys, pair[1].column)
		}
	}
}

// using resolves each USING column of a join on both sides; a column one
// side cannot attribute to a base table is left out.
func (x *extractor) using(j joinItem) [][2]colRef {
	var out [][2]colRef
	for _, u := range j.join.GetUsingClause() {
		col := u.GetString_().GetSval()
		if col == "" || systemColumn(col) {
			continue
		}
		x.asStructural(func() {
			l, lok := x.pick(j.left, col, true)
			r, rok := x.pick(j.right, col, true)
			if !lok || !rok {
				return
			}
			lc, lok := x.through(l, col)
			rc, rok := x.through(r, col)
			if lok && rok {
				out = append(out, [2]colRef{lc, rc})
			}
		})
	}
	return out
}

// --- columns ------------------------------------------------------------

// systemColumn reports PostgreSQL's system columns, which are never index
// candidates.
func systemColumn(c string) bool {
	switch c {
	case "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid":
		return true
	}
	return false
}

// pick chooses, among entries, the FROM item that owns an unqualified
// column: the catalog's answer among the tables, or a pulled-up query that
// outputs it, when exactly one does; or the only entry when it is a table
// or a pulled-up query and there is no catalog.
//
// certain says the column is known to exist in one of entries (a USING
// column): a single entry then owns it whatever the catalog says.
func (x *extractor) pick(entries []*rangeEntry, col string, certain bool) (*rangeEntry, bool) {
	if x.cat == nil || certain {
		if len(entries) == 1 && (entries[0].table != nil || entries[0].sub != nil) {
			return entries[0], true
		}
		if x.cat == nil {
			return nil, false
		}
	}
	var cands []TableRef
	var subs []*rangeEntry
	for _, e := range entries {
		if e.sub != nil && x.has(e, col) {
			subs = append(subs, e)
		}
		if e.table == nil {
			continue
		}
		dup := false
		for _, c := range cands {
			if c == *e.table {
				dup = true
				break
			}
		}
		if !dup {
			cands = append(cands, *e.table)
		}
	}
	var found *rangeEntry
	if len(cands) > 0 {
		if ref, ok := x.cat.ColumnTable(cands, col); ok {
			for _, e := range entries {
				if e.table != nil && *e.table == ref {
					found = e
					break
				}
			}
		}
	}
	switch {
	case len(subs) == 0:
		return found, found != nil
	case len(subs) == 1 && found == nil:
		return subs[0], true
	}
	return nil, false
}

// resolve attributes a column reference to a base table of sc, or reports
// false (derived item, unknown alias, ambiguous, whole-row or system column).
func (x *extractor) resolve(cr *pg_query.ColumnRef, sc *scope) (colRef, bool) {
	fields := cr.GetFields()
	if len(fields) == 0 || len(fields) > 4 {
		return colRef{}, false
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		s := f.GetString_()
		if s == nil || s.GetSval() == "" {
			return colRef{}, false // A_Star: t.* or *
		}
		names[i] = s.GetSval()
	}
	col := names[len(names)-1]
	if systemColumn(col) {
		return colRef{}, false
	}
	var e *rangeEntry
	switch len(names) {
	case 1:
		e = x.unqualified(col, sc)
	case 2:
		e = lookup(sc, func(e *rangeEntry) bool { return e.refname == names[0] })
	default: // [catalog.]schema.table.col names an unaliased table
		schema, rel := names[len(names)-3], names[len(names)-2]
		e = lookup(sc, func(e *rangeEntry) bool {
			return !e.aliased && e.table != nil && e.schema == schema && e.relname == rel
		})
	}
	return x.through(e, col)
}

// lookup finds the innermost entry matching; nil when none does or when
// one scope has several (PostgreSQL would call the reference ambiguous).
func lookup(sc *scope, match func(*rangeEntry) bool) *rangeEntry {
	for s := sc; s != nil; s = s.parent {
		var found *rangeEntry
		for _, e := range s.entries {
			if match(e) {
				if found != nil {
					return nil
				}
				found = e
			}
		}
		if found != nil {
			return found
		}
	}
	return nil
}

// unqualified finds the table owning an unqualified column. Without a
// catalog only the innermost non-empty scope is considered. With one, outer
// scopes are tried when every entry of a scope is a table and none has the
// column (a correlated reference).
func (x *extractor) unqualified(col string, sc *scope) *rangeEntry {
	for s := sc; s != nil; s = s.parent {
		if len(s.entries) == 0 {
			continue
		}
		if x.cat == nil {
			// A bare name that is also a FROM item's name is most likely a
			// whole-row reference (WHERE t IS NULL): without a catalog,
			// do not take it for a column.
			for s2 := s; s2 != nil; s2 = s2.parent {
				for _, e := range s2.entries {
					if e.refname == col {
						return nil
					}
				}
			}
		}
		if e, ok := x.pick(s.entries, col, false); ok {
			return e
		}
		if x.cat == nil {
			return nil
		}
		for _, e := range s.entries {
			if e.table == nil {
				// A derived item might have the column: stop here.
				return nil
			}
		}
	}
	return nil
}

// plain resolves n when it is a bare column reference.
func (x *extractor) plain(n *pg_query.Node, sc *scope) (colRef, bool) {
	cr := n.GetColumnRef()
	if cr == nil {
		return colRef{}, false
	}
	return x.resolve(cr, sc)
}

// --- predicates ---------------------------------------------------------

type predKind int

const (
	predNone predKind = iota
	predEq
	predRange
)

func classify(op string) predKind {
	switch op {
	case "=":
		return predEq
	case "<", ">", "<=", ">=":
		return predRange
	}
	return predNone
}

// opName is the operator of a qualified operator name (pg_catalog.=).
func opName(names []*pg_query.Node) string {
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1].GetString_().GetSval()
}

func (x *extractor) record(k predKind, c colRef) {
	u := x.table(*c.entry.table)
	switch k {
	case predEq:
		x.appendUnique(&u.Equality, c.column)
	case predRange:
		x.appendUnique(&u.Range, c.column)
	}
}

// qual walks a WHERE or ON condition.
func (x *extractor) qual(n *pg_query.Node, sc *scope) {
	switch {
	case n == nil || n.GetNode() == nil:
		return
	case n.GetBoolExpr() != nil:
		b := n.GetBoolExpr()
		switch b.GetBoolop() {
		case pg_query.BoolExprType_AND_EXPR, pg_query.BoolExprType_OR_EXPR:
			for _, a := range b.GetArgs() {
				x.qual(a, sc)
			}
		default: // NOT
			for _, a := range b.GetArgs() {
				if c, ok := x.plain(a, sc); ok {
					x.record(predEq, c) // NOT flag is flag = false
				} else {
					x.sublinks(a, sc)
				}
			}
		}
	case n.GetAExpr() != nil:
		x.aExpr(n.GetAExpr(), sc)
	case n.GetNullTest() != nil:
		t := n.GetNullTest()
		if c, ok := x.plain(t.GetArg(), sc); ok {
			u := x.table(*c.entry.table)
			if t.GetNulltesttype() == pg_query.NullTestType_IS_NULL {
				x.appendUnique(&u.IsNull, c.column)
			} else {
				x.appendUnique(&u.IsNotNull, c.column)
			}
			return
		}
		if t.GetNulltesttype() == pg_query.NullTestType_IS_NULL && t.GetArg().GetRowExpr() == nil {
			x.exprUsage(t.GetArg(), OpIsNull, sc)
		}
		x.sublinks(t.GetArg(), sc)
	case n.GetBooleanTest() != nil:
		t := n.GetBooleanTest()
		switch t.GetBooltesttype() {
		case pg_query.BoolTestType_IS_TRUE, pg_query.BoolTestType_IS_FALSE:
			if c, ok := x.plain(t.GetArg(), sc); ok {
				x.record(predEq, c)
				return
			}
		}
		x.sublinks(t.GetArg(), sc)
	case n.GetColumnRef() != nil:
		// A bare boolean column: WHERE active.
		if c, ok := x.plain(n, sc); ok {
			x.record(predEq, c)
		}
	case n.GetSubLink() != nil:
		sl := n.GetSubLink()
		if sl.GetSubLinkType() == pg_query.SubLinkType_ANY_SUBLINK {
			if op := opName(sl.GetOperName()); op == "" || op == "=" {
				// col IN (SELECT ...): a semi-join on col.
				var c colRef
				ok := false
				x.asStructural(func() { c, ok = x.plain(sl.GetTestexpr(), sc) })
				if ok {
					x.appendUnique(&x.table(*c.entry.table).JoinKeys, c.column)
				}
			}
		}
		x.subLink(sl, sc)
	default:
		x.sublinks(n, sc)
	}
}

func (x *extractor) aExpr(e *pg_query.A_Expr, sc *scope) {
	op := opName(e.GetName())
	l, r := e.GetLexpr(), e.GetRexpr()
	switch e.GetKind() {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		lrow, rrow := l.GetRowExpr(), r.GetRowExpr()
		if lrow != nil && rrow != nil {
			la, ra := lrow.GetArgs(), rrow.GetArgs()
			if len(la) == len(ra) && len(la) > 0 {
				switch classify(op) {
				case predEq:
					for i := range la {
						x.compare(predEq, la[i], ra[i], sc)
					}
				case predRange:
					// (a, b) > ($1, $2) bounds a only.
					x.compare(predRange, la[0], ra[0], sc)
				}
			}
		} else {
			x.compare(classify(op), l, r, sc)
		}
	case pg_query.A_Expr_Kind_AEXPR_OP_ANY:
		if k := classify(op); k != predNone && x.isValue(r) {
			if c, ok := x.plain(l, sc); ok {
				x.record(k, c)
			} else {
				x.exprUsage(l, opOf(k), sc)
			}
		}
	case pg_query.A_Expr_Kind_AEXPR_IN:
		if op == "=" && x.isValue(r) {
			if c, ok := x.plain(l, sc); ok {
				x.record(predEq, c)
			} else if l.GetRowExpr() == nil {
				x.exprUsage(l, OpEquality, sc)
			}
		}
	case pg_query.A_Expr_Kind_AEXPR_LIKE:
		if op == "~~" && constantPrefix(r) {
			// LIKE is not leakproof: it does not reach into a
			// security_barrier view.
			x.asLeaky(func() {
				if c, ok := x.plain(l, sc); ok {
					x.appendUnique(&x.table(*c.entry.table).LikePrefix, c.column)
				} else {
					x.exprUsage(l, OpLikePrefix, sc)
				}
			})
		}
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM:
		if x.isValue(r) {
			if c, ok := x.plain(l, sc); ok {
				x.record(predRange, c)
			} else {
				x.exprUsage(l, OpRange, sc)
			}
		}
	}
	x.sublinks(l, sc)
	x.sublinks(r, sc)
}

func opOf(k predKind) Op {
	if k == predRange {
		return OpRange
	}
	return OpEquality
}

// compare records one binary comparison.
func (x *extractor) compare(k predKind, l, r *pg_query.Node, sc *scope) {
	if k == predNone {
		return
	}
	// An explicit collation on the value side (a = $1 COLLATE "C") makes
	// a comparison that an index in the column's own collation cannot serve.
	if x.collatedValue(l) || x.collatedValue(r) {
		return
	}
	var lc, rc colRef
	var lok, rok bool
	resolve := func() {
		lc, lok = x.plain(l, sc)
		rc, rok = x.plain(r, sc)
	}
	if x.isValue(l) || x.isValue(r) {
		resolve()
	} else {
		x.asStructural(resolve) // column = column: a join
	}
	switch {
	case lok && rok:
		if lc.entry == rc.entry {
			return // a.x = a.y filters, but no index on either serves it
		}
		if k == predEq {
			x.appendUnique(&x.table(*lc.entry.table).JoinKeys, lc.column)
			x.appendUnique(&x.table(*rc.entry.table).JoinKeys, rc.column)
			// In a correlated query with a LIMIT (a LATERAL top-N), which
			// the planner cannot turn into a join and so runs once per
			// outer row, a column of an outer query level is a parameter:
			// the inner column is compared with a value.
			if sc.perRow {
				lin, rin := inScope(sc, lc.entry), inScope(sc, rc.entry)
				switch {
				case lin && !rin:
					x.record(predEq, lc)
				case rin && !lin:
					x.record(predEq, rc)
				}
			}
			return
		}
		x.record(k, lc)
		x.record(k, rc)
	case lok && x.isValue(r):
		x.record(k, lc)
	case rok && x.isValue(l):
		x.record(k, rc)
	case x.isValue(r):
		x.exprUsage(l, opOf(k), sc)
	case x.isValue(l):
		x.exprUsage(r, opOf(k), sc)
	}
}

func (x *extractor) collatedValue(n *pg_query.Node) bool {
	c := n.GetCollateClause()
	return c != nil && x.isValue(c.GetArg())
}

// constantPrefix reports a LIKE pattern that is a string constant not
// starting with a wildcard: 'abc%' yes, '%abc', '_bc' and $1 no.
func constantPrefix(n *pg_query.Node) bool {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().GetArg()
	}
	s := n.GetAConst().GetSval()
	if s == nil {
		return false
	}
	p := s.GetSval()
	return p != "" && p[0] != '%' && p[0] != '_'
}

// nullable lists the FROM items on the nullable side of an outer join: a
// WHERE test of their columns runs above the join, not on their scan.
func nullable(joins []joinItem) map[*rangeEntry]bool {
	out := map[*rangeEntry]bool{}
	for _, j := range joins {
		var side [][]*rangeEntry
		switch j.join.GetJointype() {
		case pg_query.JoinType_JOIN_LEFT:
			side = [][]*rangeEntry{j.right}
		case pg_query.JoinType_JOIN_RIGHT:
			side = [][]*rangeEntry{j.left}
		case pg_query.JoinType_JOIN_FULL:
			side = [][]*rangeEntry{j.left, j.right}
		}
		for _, list := range side {
			for _, e := range list {
				markNullable(out, e)
			}
		}
	}
	return out
}

// markNullable marks e and, for a pulled-up query, the FROM items below it.
func markNullable(out map[*rangeEntry]bool, e *rangeEntry) {
	out[e] = true
	if e.sub != nil {
		for _, in := range e.sub.inner.entries {
			markNullable(out, in)
		}
	}
}

// conditions records the value-free column tests among the top-level AND
// terms of a WHERE clause (see TableUsage.Conditions).
func (x *extractor) conditions(n *pg_query.Node, sc *scope, skip map[*rangeEntry]bool) {
	var add func(n *pg_query.Node)
	add = func(n *pg_query.Node) {
		var arg *pg_query.Node
		var test CondTest
		switch {
		case n == nil || n.GetNode() == nil:
			return
		case n.GetBoolExpr() != nil:
			b := n.GetBoolExpr()
			switch {
			case b.GetBoolop() == pg_query.BoolExprType_AND_EXPR:
				for _, a := range b.GetArgs() {
					add(a)
				}
				return
			case b.GetBoolop() == pg_query.BoolExprType_NOT_EXPR && len(b.GetArgs()) == 1:
				arg, test = b.GetArgs()[0], CondFalse
			default:
				return
			}
		case n.GetNullTest() != nil:
			arg, test = n.GetNullTest().GetArg(), CondIsNotNull
			if n.GetNullTest().GetNulltesttype() == pg_query.NullTestType_IS_NULL {
				test = CondIsNull
			}
		case n.GetBooleanTest() != nil:
			arg = n.GetBooleanTest().GetArg()
			switch n.GetBooleanTest().GetBooltesttype() {
			case pg_query.BoolTestType_IS_TRUE:
				test = CondIsTrue
			case pg_query.BoolTestType_IS_FALSE:
				test = CondIsFalse
			default:
				return
			}
		case n.GetColumnRef() != nil:
			arg, test = n, CondTrue
		default:
			return
		}
		c, ok := x.plain(arg, sc)
		// Only a column of this query level: a correlated test of an
		// outer table's column does not filter that table's scan.
		if !ok || skip[c.entry] || !inScope(sc, c.entry) {
			return
		}
		u := x.table(*c.entry.table)
		cond := Condition{Column: c.column, Test: test}
		for _, have := range u.Conditions {
			if have == cond {
				return
			}
		}
		u.Conditions = append(u.Conditions, cond)
	}
	add(n)
}

// inScope reports whether e is a FROM item of sc's level, or of a query
// pulled up into it.
func inScope(sc *scope, e *rangeEntry) bool {
	for _, have := range sc.entries {
		if have == e || (have.sub != nil && inScope(have.sub.inner, e)) {
			return true
		}
	}
	return false
}

// --- generic traversal --------------------------------------------------

// visit calls fn on n and, while fn returns true, on every node below it.
func visit(n *pg_query.Node, fn func(*pg_query.Node) bool) {
	if n == nil || n.GetNode() == nil || !fn(n) {
		return
	}
	visitMessage(n.ProtoReflect(), fn)
}

func visitMessage(m protoreflect.Message, fn func(*pg_query.Node) bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitValue(l.Get(i).Message(), fn)
			}
			return true
		}
		visitValue(v.Message(), fn)
		return true
	})
}

func visitValue(m protoreflect.Message, fn func(*pg_query.Node) bool) {
	if n, ok := m.Interface().(*pg_query.Node); ok {
		visit(n, fn)
		return
	}
	visitMessage(m, fn)
}

// sublinks walks the subqueries inside an expression, with sc as their
// outer scope.
func (x *extractor) sublinks(n *pg_query.Node, sc *scope) {
	visit(n, func(m *pg_query.Node) bool {
		if sl := m.GetSubLink(); sl != nil {
			x.subLink(sl, sc)
			return false
		}
		return true
	})
}

func (x *extractor) subLink(sl *pg_query.SubLink, sc *scope) {
	x.sublinks(sl.GetTestexpr(), sc)
	x.query(sl.GetSubselect(), sc)
}

// isValue reports an expression that references no column outside its
// subqueries: a parameter, a constant, now() - $1, (SELECT max(id) ...).
// Such a side is fixed during one scan and can drive an index condition.
func (x *extractor) isValue(n *pg_query.Node) bool {
	if n == nil || n.GetNode() == nil {
		return false
	}
	value := true
	visit(n, func(m *pg_query.Node) bool {
		switch {
		case !value || m.GetSubLink() != nil:
			return false
		case m.GetColumnRef() != nil:
			value = false
			return false
		}
		return true
	})
	return value
}

// exprUsage records a predicate on an expression of the columns of one
// table, like lower(email) = $1. Expressions that mix tables, contain a
// subquery or reference no resolvable column are ignored.
func (x *extractor) exprUsage(n *pg_query.Node, op Op, sc *scope) {
	// A function is not known to be leakproof.
	x.leaky++
	defer func() { x.leaky-- }()
	// An output column of a pulled-up query that is an expression there
	// (SELECT lower(email) AS le ... WHERE le = $1) is that expression.
	n, sc = x.expand(n, sc)
	if n == nil || n.GetNode() == nil || n.GetColumnRef() != nil {
		return
	}
	var entry *rangeEntry
	var cols []string
	ok := true
	visit(n, func(m *pg_query.Node) bool {
		switch {
		case !ok:
			return false
		case m.GetSubLink() != nil:
			ok = false
			return false
		case m.GetColumnRef() != nil:
			c, found := x.resolve(m.GetColumnRef(), sc)
			if !found || (entry != nil && entry != c.entry) {
				ok = false
				return false
			}
			entry = c.entry
			x.appendUnique(&cols, c.column)
			return false
		}
		return true
	})
	if !ok || entry == nil {
		return
	}
	text, err := deparseExpr(n, x.version)
	if err != nil || text == "" {
		return
	}
	u := x.table(*entry.table)
	for _, e := range u.Expressions {
		if e.Expr == text && e.Op == op {
			return
		}
	}
	u.Expressions = append(u.Expressions, ExprUsage{Expr: text, Columns: cols, Op: op})
}

// deparseExpr renders n as SQL with unqualified column references, by
// deparsing "SELECT <n>" and dropping the SELECT.
func deparseExpr(n *pg_query.Node, version int32) (string, error) {
	clone, ok := proto.Clone(n).(*pg_query.Node)
	if !ok {
		return "", nil
	}
	visit(clone, func(m *pg_query.Node) bool {
		if cr := m.GetColumnRef(); cr != nil {
			if f := cr.GetFields(); len(f) > 1 {
				cr.Fields = f[len(f)-1:]
			}
			return false
		}
		return true
	})
	tree := &pg_query.ParseResult{Version: version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{
		Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
			TargetList:  []*pg_query.Node{pg_query.MakeResTargetNodeWithVal(clone, 0)},
			LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
			Op:          pg_query.SetOperation_SETOP_NONE,
		}},
	}}}}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(out, "SELECT "), nil
}

// --- ORDER BY / GROUP BY -------------------------------------------------

// outputRef replaces an ORDER BY / GROUP BY item that names a select-list
// entry (by position, ORDER BY 2, or by output name) with that entry's
// expression.
func outputRef(n *pg_query.Node, targets []*pg_query.Node) *pg_query.Node {
	if c := n.GetAConst(); c != nil && c.GetIval() != nil {
		i := c.GetIval().GetIval()
		if i >= 1 && int(i) <= len(targets) {
			return targets[i-1].GetResTarget().GetVal()
		}
		return nil
	}
	if f := n.GetColumnRef().GetFields(); len(f) == 1 {
		name := f[0].GetString_().GetSval()
		for _, t := range targets {
			if rt := t.GetResTarget(); rt != nil && name != "" && rt.GetName() == name {
				return rt.GetVal()
			}
		}
	}
	return n
}

func (x *extractor) orderBy(items, targets []*pg_query.Node, sc *scope) {
	for _, it := range items {
		sb := it.GetSortBy()
		if sb == nil {
			continue
		}
		var c colRef
		ok := false
		x.asStructural(func() { c, ok = x.plain(outputRef(sb.GetNode(), targets), sc) })
		if !ok {
			x.sublinks(sb.GetNode(), sc)
			continue
		}
		desc := sb.GetSortbyDir() == pg_query.SortByDir_SORTBY_DESC
		if sb.GetSortbyDir() == pg_query.SortByDir_SORTBY_USING {
			op := opName(sb.GetUseOp())
			desc = op == ">" || op == ">="
		}
		nullsFirst := desc
		switch sb.GetSortbyNulls() {
		case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
			nullsFirst = true
		case pg_query.SortByNulls_SORTBY_NULLS_LAST:
			nullsFirst = false
		}
		u := x.table(*c.entry.table)
		dup := false
		for _, o := range u.OrderBy {
			if o.Column == c.column {
				dup = true
				break
			}
		}
		if !dup {
			u.OrderBy = append(u.OrderBy, OrderCol{Column: c.column, Desc: desc, NullsFirst: nullsFirst})
		}
	}
}

func (x *extractor) groupBy(items, targets []*pg_query.Node, sc *scope) {
	for _, it := range items {
		if gs := it.GetGroupingSet(); gs != nil {
			x.groupBy(gs.GetContent(), targets, sc)
			continue
		}
		if row := it.GetRowExpr(); row != nil {
			x.groupBy(row.GetArgs(), targets, sc)
			continue
		}
		// Unlike ORDER BY, GROUP BY takes a bare name for an input column
		// before an output column; only a catalog can say the input column
		// exists, so without one the output column wins.
		var c colRef
		ok := false
		x.asStructural(func() {
			if x.cat != nil {
				c, ok = x.plain(it, sc)
			}
			if !ok {
				c, ok = x.plain(outputRef(it, targets), sc)
			}
		})
		if ok {
			x.appendUnique(&x.table(*c.entry.table).GroupBy, c.column)
			continue
		}
		x.sublinks(it, sc)
	}
}
