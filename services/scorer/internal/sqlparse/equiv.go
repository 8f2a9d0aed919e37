package sqlparse

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Equivalence classes, as the planner builds them: a top-level AND term
// col1 = col2 of a WHERE clause or of an inner join's ON (or USING) puts
// both columns in one class, and when a member of a class is compared
// with a value (col = $1), every member is: a.x = b.y AND b.y = $1 makes
// a.x = $1 an index condition on a.

type eqKey struct {
	entry  *rangeEntry
	column string
}

type equivalences struct {
	parent map[eqKey]eqKey
	valued map[eqKey]bool
	order  []eqKey // members in order of first appearance
}

func (q *equivalences) find(k eqKey) eqKey {
	if q.parent == nil {
		q.parent, q.valued = map[eqKey]eqKey{}, map[eqKey]bool{}
	}
	p, ok := q.parent[k]
	if !ok {
		q.parent[k] = k
		q.order = append(q.order, k)
		return k
	}
	if p == k {
		return k
	}
	root := q.find(p)
	q.parent[k] = root
	return root
}

func (q *equivalences) markValued(k eqKey) {
	root := q.find(k)
	q.valued[root] = true
}

func (q *equivalences) union(a, b eqKey) {
	ra, rb := q.find(a), q.find(b)
	if ra != rb {
		q.parent[rb] = ra
		if q.valued[rb] {
			q.valued[ra] = true
		}
	}
}

// equalities adds the column = column and column = value terms among the
// top-level AND terms of n (a WHERE clause or an inner join's ON).
func (x *extractor) equalities(n *pg_query.Node, sc *scope) {
	switch {
	case n == nil || n.GetNode() == nil:
	case n.GetBoolExpr() != nil:
		if n.GetBoolExpr().GetBoolop() == pg_query.BoolExprType_AND_EXPR {
			for _, a := range n.GetBoolExpr().GetArgs() {
				x.equalities(a, sc)
			}
		}
	case n.GetAExpr() != nil:
		e := n.GetAExpr()
		if e.GetKind() != pg_query.A_Expr_Kind_AEXPR_OP || opName(e.GetName()) != "=" ||
			x.collatedValue(e.GetLexpr()) || x.collatedValue(e.GetRexpr()) {
			return
		}
		var l, r colRef
		var lok, rok bool
		// Only a column = value reaches into a query that is not pulled
		// up; column = column is a join.
		x.asStructural(func() {
			l, lok = x.plain(e.GetLexpr(), sc)
			r, rok = x.plain(e.GetRexpr(), sc)
		})
		if !lok && x.isValue(e.GetRexpr()) {
			l, lok = x.plain(e.GetLexpr(), sc)
		}
		if !rok && x.isValue(e.GetLexpr()) {
			r, rok = x.plain(e.GetRexpr(), sc)
		}
		switch {
		case lok && rok:
			x.eq.union(eqKey{l.entry, l.column}, eqKey{r.entry, r.column})
		case lok && x.isValue(e.GetRexpr()):
			x.eq.markValued(eqKey{l.entry, l.column})
		case rok && x.isValue(e.GetLexpr()):
			x.eq.markValued(eqKey{r.entry, r.column})
		}
	}
}

// innerJoinEqualities adds the equalities of the inner joins' ON and
// USING clauses (an outer join's ON does not make its columns equal in
// the result).
func (x *extractor) innerJoinEqualities(joins []joinItem, sc *scope) {
	for _, j := range joins {
		if j.join.GetJointype() != pg_query.JoinType_JOIN_INNER {
			continue
		}
		x.equalities(j.join.GetQuals(), sc)
		for _, pair := range x.using(j) {
			x.eq.union(eqKey{pair[0].entry, pair[0].column}, eqKey{pair[1].entry, pair[1].column})
		}
	}
}

// applyEquivalences records an equality on every member of a class that
// is compared with a value.
func (x *extractor) applyEquivalences() {
	for _, k := range x.eq.order {
		if x.eq.valued[x.eq.find(k)] && k.entry.table != nil {
			x.record(predEq, colRef{entry: k.entry, column: k.column})
		}
	}
}
