package sqlparse

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// This file follows the planner's rewrites that move a predicate written
// on a derived FROM item (subquery, CTE, view) onto the base table below
// it: subquery pull-up, CTE inlining (PostgreSQL 12+) and view expansion.

// ViewCatalog is an optional extension of Catalog: a catalog that also
// implements it lets Extract expand views. View returns the definition of
// the view ref names (resolved as the target would, ref.Schema may be ""):
// its SELECT text as pg_get_viewdef prints it, and whether it is a
// security_barrier view. ok is false when ref is not a view.
type ViewCatalog interface {
	View(ref TableRef) (definition string, securityBarrier bool, ok bool)
}

// maxInlineDepth bounds nested views and subqueries followed through
// (a view defined on itself cannot exist, but the catalog may lie).
const maxInlineDepth = 16

// derived is a FROM item whose output columns map onto the columns of the
// query inside it, because the planner pulls that query up into the
// outer one.
type derived struct {
	// inner is the FROM scope of the pulled-up query.
	inner *scope
	// cols maps an output column name to its expression in inner.
	cols map[string]*pg_query.Node
	// stars are the scopes a * (or t.*) of the select list expands:
	// an output column not in cols is looked up there.
	stars []*scope
	// pushdown: the query is not pulled up, but the planner pushes a
	// filter on cols (its grouping or DISTINCT columns) down into its
	// WHERE; only a column compared with a value goes through.
	pushdown bool
	// barrier: a security_barrier view; only a leakproof comparison
	// (a built-in comparison operator, IS NULL) goes through.
	barrier bool
}

// cteDef is a CTE as a FROM item can name it.
type cteDef struct {
	name   string
	query  *pg_query.Node
	cols   []string // WITH c(a, b) AS ...
	scope  *scope   // where the body is walked
	inline bool
}

// through resolves column col of entry e to a base table column: e itself
// when it is a table, the column below when e is a pulled-up query.
func (x *extractor) through(e *rangeEntry, col string) (colRef, bool) {
	switch {
	case e == nil:
		return colRef{}, false
	case e.table != nil:
		return colRef{entry: e, column: col}, true
	case e.sub == nil || x.depth >= maxInlineDepth:
		return colRef{}, false
	case e.sub.pushdown && x.structural > 0, e.sub.barrier && x.leaky > 0:
		return colRef{}, false
	}
	x.depth++
	defer func() { x.depth-- }()
	d := e.sub
	if expr, ok := d.cols[col]; ok {
		return x.plain(expr, d.inner)
	}
	for _, st := range d.stars {
		cr := &pg_query.ColumnRef{Fields: []*pg_query.Node{pg_query.MakeStrNode(col)}}
		if c, ok := x.resolve(cr, st); ok {
			return c, true
		}
	}
	return colRef{}, false
}

// has reports whether the pulled-up query of e outputs col.
func (x *extractor) has(e *rangeEntry, col string) bool {
	if e.sub == nil {
		return false
	}
	if _, ok := e.sub.cols[col]; ok {
		return true
	}
	_, ok := x.through(e, col)
	return ok
}

// expand returns, for a column reference to a pulled-up query's output
// that is an expression (SELECT lower(email) AS le), that expression and
// the scope it reads; n itself otherwise.
func (x *extractor) expand(n *pg_query.Node, sc *scope) (*pg_query.Node, *scope) {
	for i := 0; i < maxInlineDepth; i++ {
		cr := n.GetColumnRef()
		if cr == nil {
			return n, sc
		}
		f := cr.GetFields()
		if len(f) == 0 || len(f) > 2 {
			return n, sc
		}
		col := f[len(f)-1].GetString_().GetSval()
		var e *rangeEntry
		if len(f) == 1 {
			e = x.unqualified(col, sc)
		} else {
			name := f[0].GetString_().GetSval()
			e = lookup(sc, func(e *rangeEntry) bool { return e.refname == name })
		}
		if e == nil || e.sub == nil {
			return n, sc
		}
		expr, ok := e.sub.cols[col]
		if !ok {
			return n, sc
		}
		n, sc = expr, e.sub.inner
	}
	return n, sc
}

// subquery walks the query of a FROM item (a subquery, an inlined CTE or
// a view) with outer as its enclosing scope, and returns how its output
// maps onto the query's FROM items when the planner pulls it up (or, for
// a grouped query, pushes filters into it); nil when it stays a separate
// plan node (a fence: its own predicates count, the outer ones on its
// output do not reach its tables). aliasCols rename the output columns by
// position; barrier marks a security_barrier view, through which only
// leakproof predicates go.
func (x *extractor) subquery(n *pg_query.Node, outer *scope, aliasCols []string, barrier bool) *derived {
	s := n.GetSelectStmt()
	pull := s != nil && pullable(s)
	push := s != nil && !pull && pushdownSafe(s)
	if x.depth >= maxInlineDepth {
		return nil // a view defined through itself: stop following
	}
	x.depth++
	defer func() { x.depth-- }()
	if s == nil || !(pull || push) {
		x.query(n, outer)
		return nil
	}
	inner := x.selectStmt(s, outer)
	d := &derived{inner: inner, cols: map[string]*pg_query.Node{}, pushdown: push, barrier: barrier}
	renamed := true
	pos := 0
	for _, t := range s.GetTargetList() {
		rt := t.GetResTarget()
		if rt == nil {
			continue
		}
		val := rt.GetVal()
		if star, ok := starScope(val, inner); ok {
			if star != nil {
				d.stars = append(d.stars, star)
			}
			renamed = false // the positions after a * depend on the catalog
			continue
		}
		name := rt.GetName()
		if name == "" {
			if f := val.GetColumnRef().GetFields(); len(f) > 0 {
				name = f[len(f)-1].GetString_().GetSval()
			}
		}
		if renamed && pos < len(aliasCols) {
			name = aliasCols[pos]
		}
		pos++
		if name != "" && (!push || x.grouped(s, val, inner)) {
			if _, dup := d.cols[name]; !dup {
				d.cols[name] = val
			}
		}
	}
	if push {
		d.stars = nil // a * of a grouped query: not followed
	}
	return d
}

// pushdownSafe reports a query that is not pulled up but into which the
// planner pushes a filter on a grouping column (subquery_is_pushdown_safe,
// simplified): GROUP BY or DISTINCT, no LIMIT/OFFSET, set operation,
// grouping sets, window function or DISTINCT ON.
func pushdownSafe(s *pg_query.SelectStmt) bool {
	if s.GetLarg() != nil || s.GetLimitCount() != nil || s.GetLimitOffset() != nil || len(s.GetWindowClause()) > 0 ||
		len(s.GetFromClause()) == 0 || len(s.GetLockingClause()) > 0 {
		return false
	}
	if len(s.GetGroupClause()) == 0 && len(s.GetDistinctClause()) == 0 {
		return false
	}
	for _, d := range s.GetDistinctClause() {
		if d.GetNode() != nil {
			return false // DISTINCT ON
		}
	}
	for _, g := range s.GetGroupClause() {
		if g.GetGroupingSet() != nil {
			return false
		}
	}
	ok := true
	for _, t := range s.GetTargetList() {
		visit(t, func(m *pg_query.Node) bool {
			if fc := m.GetFuncCall(); fc != nil && fc.GetOver() != nil {
				ok = false
			}
			return ok
		})
	}
	return ok
}

// grouped reports an output expression of s that is a plain column the
// planner can filter below the grouping: any column under plain DISTINCT,
// a GROUP BY column otherwise.
func (x *extractor) grouped(s *pg_query.SelectStmt, val *pg_query.Node, inner *scope) bool {
	c, ok := x.plain(val, inner)
	if !ok {
		return false
	}
	if len(s.GetGroupClause()) == 0 {
		return true
	}
	for _, g := range s.GetGroupClause() {
		if gc, ok := x.plain(g, inner); ok && gc == c {
			return true
		}
	}
	return false
}

// starScope reports whether n is * or t.* and returns the scope its
// columns come from (nil when t is not a FROM item of inner).
func starScope(n *pg_query.Node, inner *scope) (*scope, bool) {
	f := n.GetColumnRef().GetFields()
	if len(f) == 0 || f[len(f)-1].GetAStar() == nil {
		return nil, false
	}
	if len(f) == 1 {
		return &scope{entries: inner.entries}, true
	}
	name := f[len(f)-2].GetString_().GetSval()
	for _, e := range inner.entries {
		if e.refname == name {
			return &scope{entries: []*rangeEntry{e}}, true
		}
	}
	return nil, true
}

// pullable reports a query the planner pulls up into the one that reads
// it (is_simple_subquery): a plain SELECT ... FROM ... WHERE, without set
// operations, VALUES, aggregates, grouping, DISTINCT, window functions,
// LIMIT/OFFSET, row locks, or set-returning or volatile functions in its
// select list.
func pullable(s *pg_query.SelectStmt) bool {
	if s.GetLarg() != nil || s.GetRarg() != nil || len(s.GetValuesLists()) > 0 ||
		len(s.GetGroupClause()) > 0 || s.GetHavingClause() != nil || len(s.GetDistinctClause()) > 0 ||
		len(s.GetWindowClause()) > 0 || s.GetLimitCount() != nil || s.GetLimitOffset() != nil ||
		len(s.GetLockingClause()) > 0 || len(s.GetFromClause()) == 0 {
		return false
	}
	ok := true
	for _, t := range s.GetTargetList() {
		visit(t, func(m *pg_query.Node) bool {
			switch {
			case !ok || m.GetSubLink() != nil:
				return false
			case m.GetFuncCall() != nil:
				fc := m.GetFuncCall()
				if fc.GetOver() != nil || fc.GetAggStar() || fc.GetAggDistinct() || len(fc.GetAggOrder()) > 0 ||
					fc.GetAggFilter() != nil || fc.GetAggWithinGroup() || notPullableFunc[opName(fc.GetFuncname())] {
					ok = false
					return false
				}
			}
			return true
		})
	}
	return ok
}

// notPullableFunc are the built-in aggregates, set-returning and volatile
// functions a select list may call: any of them keeps the query a
// separate plan node. A user-defined aggregate is not known here.
var notPullableFunc = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true, "array_agg": true,
	"string_agg": true, "bool_and": true, "bool_or": true, "every": true, "json_agg": true,
	"jsonb_agg": true, "json_object_agg": true, "jsonb_object_agg": true, "stddev": true,
	"stddev_pop": true, "stddev_samp": true, "variance": true, "var_pop": true, "var_samp": true,
	"bit_and": true, "bit_or": true, "bit_xor": true, "xmlagg": true, "percentile_cont": true,
	"percentile_disc": true, "mode": true, "corr": true, "covar_pop": true, "covar_samp": true,
	"regr_count": true, "any_value": true, "range_agg": true, "range_intersect_agg": true,
	"generate_series": true, "unnest": true, "generate_subscripts": true, "regexp_matches": true,
	"json_array_elements": true, "jsonb_array_elements": true, "json_each": true, "jsonb_each": true,
	"json_array_elements_text": true, "jsonb_array_elements_text": true, "json_each_text": true,
	"jsonb_each_text": true, "json_object_keys": true, "jsonb_object_keys": true,
	"regexp_split_to_table": true, "string_to_table": true,
	"random": true, "nextval": true, "setval": true, "clock_timestamp": true, "timeofday": true,
	"gen_random_uuid": true, "uuid_generate_v4": true, "random_normal": true, "txid_current": true,
}

// volatileFunc are the built-in volatile functions among notPullableFunc.
var volatileFunc = map[string]bool{
	"random": true, "nextval": true, "setval": true, "clock_timestamp": true, "timeofday": true,
	"gen_random_uuid": true, "uuid_generate_v4": true, "random_normal": true, "txid_current": true,
}

// volatileIn reports a call of a known volatile function in n, subqueries
// included.
func volatileIn(n *pg_query.Node) bool {
	found := false
	visit(n, func(m *pg_query.Node) bool {
		if fc := m.GetFuncCall(); fc != nil && volatileFunc[opName(fc.GetFuncname())] {
			found = true
		}
		return !found
	})
	return found
}

// cteRefs counts the FROM references to an unqualified name in n.
func cteRefs(n *pg_query.Node, name string) int {
	count := 0
	visit(n, func(m *pg_query.Node) bool {
		if rv := m.GetRangeVar(); rv != nil && rv.GetSchemaname() == "" && rv.GetRelname() == name {
			count++
		}
		return true
	})
	return count
}

// inlineCTE applies PostgreSQL 12+'s rule: a CTE is inlined when it is
// NOT MATERIALIZED, or when it is referenced once and not MATERIALIZED;
// never when it is recursive, modifies data, or calls a volatile function.
// A MATERIALIZED CTE is a fence. A SELECT CTE nobody references is
// reported inlined: it is then never walked, as the planner drops it.
func inlineCTE(c *pg_query.CommonTableExpr, recursive bool, refs int) bool {
	body := c.GetCtequery()
	if body.GetSelectStmt() == nil {
		return false // data-modifying: always runs, exactly once
	}
	if refs == 0 {
		return true // never read: the planner drops it
	}
	if volatileIn(body) {
		return false
	}
	if recursive && cteRefs(body, c.GetCtename()) > 0 {
		return false
	}
	switch c.GetCtematerialized() {
	case pg_query.CTEMaterialize_CTEMaterializeNever:
		return true
	case pg_query.CTEMaterialize_CTEMaterializeAlways:
		return false
	}
	return refs == 1
}

// view returns the parsed definition of a view, nil when ref is not one
// (or the catalog cannot expand views). Definitions are parsed once per
// Extract.
func (x *extractor) view(ref TableRef) (*pg_query.Node, bool) {
	vc, ok := x.cat.(ViewCatalog)
	if !ok {
		return nil, false
	}
	if v, done := x.views[ref]; done {
		return v.query, v.barrier
	}
	def, barrier, ok := vc.View(ref)
	var q *pg_query.Node
	if ok {
		if tree, err := pg_query.Parse(def); err == nil && len(tree.GetStmts()) == 1 &&
			tree.GetStmts()[0].GetStmt().GetSelectStmt() != nil {
			q = tree.GetStmts()[0].GetStmt()
		}
	}
	if x.views == nil {
		x.views = map[TableRef]parsedView{}
	}
	x.views[ref] = parsedView{query: q, barrier: barrier}
	return q, barrier
}

type parsedView struct {
	query   *pg_query.Node
	barrier bool
}
