// Package candidates turns the extracted statements of one target's
// workload into btree index candidates. It proposes; it does not judge:
// what-if costing and set selection happen later, so a candidate here only
// has to be plausible for at least one statement and not already served by
// an existing index.
package candidates

import (
	"slices"
	"sort"
	"strconv"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
)

// DefaultMaxColumns is the widest multi-column candidate when
// Options.MaxColumns is not set.
const DefaultMaxColumns = 3

// Options tunes Generate.
type Options struct {
	// MaxColumns caps the number of key columns of a candidate; 0 or less
	// means DefaultMaxColumns. 1 disables multi-column candidates.
	MaxColumns int
	// TenantColumn, when set, is the tenant column of schema_config.yaml:
	// for a table usage that filters on it by equality, multi-column
	// candidates lead with it, and every other single column also gets a
	// (tenant, column) candidate.
	TenantColumn string
	// Skip, when set, reports a column never to index (marked not
	// indexable in the genome, or disabled for every tenant); a candidate
	// that would use it is not generated.
	Skip func(schema, table, column string) bool
	// MinShared is how many distinct statements on a table must carry
	// the same value-free condition (deleted_at IS NULL, active, NOT
	// archived, flag IS TRUE/FALSE) for it to become the predicate of
	// partial candidates; 0 or less means DefaultMinShared.
	MinShared int
	// NoExpressions turns off expression candidates (the
	// expression_checks feature is off).
	NoExpressions bool
}

// DefaultMinShared is Options.MinShared when it is not set.
const DefaultMinShared = 2

// MaxUsageColumns bounds what one statement's use of one table can
// motivate: Generate considers the first MaxUsageColumns columns of each
// of its lists (equality, range, IS NULL, IS NOT NULL, LIKE prefix, join
// key, ORDER BY, expression predicates), in order of appearance, the
// tenant column always among the equality ones. It is PostgreSQL's limit
// on index key columns (INDEX_MAX_KEYS) and the upper bound of
// scorer.max_columns, so the equality composite keeps its full width.
const MaxUsageColumns = 32

// MaxPartialPredicates bounds the partial variants of one statement's use
// of one table: the key lists are repeated under the first
// MaxPartialPredicates IS NOT NULL columns and under the first
// MaxPartialPredicates shared conditions only. Unbounded, every such
// predicate repeated every key list: a statement with n columns on one
// table gave up to about n²/4 candidates (1,000 columns: 251,000
// candidates and 1.1 s in Generate, each candidate then priced by
// what-if; BenchmarkExtractGenerate).
const MaxPartialPredicates = 4

// Input is one statement of the workload.
type Input struct {
	// QueryID identifies the statement (pg_stat_statements queryid as a
	// string); it is carried into the candidates the statement motivates.
	QueryID string
	// Stmt is the extraction of the statement. Every TableRef must already
	// have its schema resolved (the caller applies the target's search_path,
	// usually "public"): a table whose Schema is still "" is skipped rather
	// than guessed. A nil Stmt is skipped.
	Stmt *sqlparse.Statement
}

// Candidate is a proposed index and the statements it could serve.
type Candidate struct {
	// Spec is a btree index on plain columns, or on columns then one
	// expression key; its predicate, if any, is an indexdef.Condition.
	Spec events.IndexSpec
	// QueryIDs are the distinct, non-empty query ids of the statements that
	// motivated Spec, sorted.
	QueryIDs []string
}

// Generate returns the btree candidates for stmts, sorted by Spec.Key(), one
// per Key:
//
//   - a single-column candidate for every equality, range, IS NULL,
//     LIKE-prefix, join-key and ORDER BY column of a table;
//   - multi-column candidates per statement and table: the equality columns
//     in order of appearance, then at most one range or join-key column (one
//     candidate per such column, and the equality columns alone when there
//     are two or more). When the equality columns fill MaxColumns or more,
//     only the left-most MaxColumns of them are proposed;
//   - the sort candidate (sortKeys): the equality columns, then the ORDER BY
//     columns not fixed by an equality, in order, with their directions
//     (events.IndexSpec.Directions) unless the order is uniformly reversed
//     (a backward scan of the forward index delivers it);
//   - with Options.TenantColumn, when a table usage filters on the tenant
//     column by equality: the tenant column leads its composites, and each
//     other single column c also gives (tenant, c);
//   - partial variants for a usage with col IS NOT NULL: each of the
//     above, and (col) itself, WHERE col IS NOT NULL
//     (indexdef.NotNullPredicate);
//   - partial variants on a shared condition: when at least
//     Options.MinShared distinct statements on a table carry the same
//     value-free condition as a top-level AND term of their WHERE
//     (sqlparse.TableUsage.Conditions: col IS NULL, a boolean col, NOT
//     col, col IS TRUE/FALSE), each of those statements' column lists
//     above, minus the columns the statement's conditions fix,
//     WHERE <condition> — rendered from the parsed condition
//     (indexdef.Condition), never from statement text;
//   - per statement and table, only the first MaxUsageColumns columns of
//     each kind, and partial variants under the first MaxPartialPredicates
//     IS NOT NULL columns and shared conditions: the candidates of one
//     statement stay linear in the tables it reads, whatever its length;
//   - minus candidates on a column Options.Skip rejects;
//   - minus anything an index in existing already covers
//     (indexdef.FindCovering: same method, leading key columns in order,
//     same predicate, valid; an expression key never covers a column).
//
// existing is keyed by "schema.table" (events.IndexSpec.QualifiedTable) and
// holds that table's indexes as indexdef.Load returns them: their Schema and
// Table fields must be set. Expression usages give expression candidates
// (see expressions); GROUP BY produces no candidate here. The same input always gives the same output.
func Generate(stmts []Input, existing map[string][]indexdef.Existing, opts Options) []Candidate {
	width := opts.MaxColumns
	if width <= 0 {
		width = DefaultMaxColumns
	}
	g := &generator{existing: existing, byKey: map[string]*pending{}, covered: map[string]bool{}}
	shared := sharedConditions(stmts, opts)
	for _, in := range stmts {
		if in.Stmt == nil {
			continue
		}
		for i := range in.Stmt.Tables {
			u := &in.Stmt.Tables[i]
			if u.Table.Schema == "" || u.Table.Name == "" {
				continue
			}
			if opts.Skip != nil {
				u = withoutSkipped(u, opts.Skip)
			}
			u = bounded(u, opts.TenantColumn)
			sets := columnSets(u, width, opts.TenantColumn)
			for _, k := range sets {
				g.add(u.Table, k.cols, k.dirs, nil, "", in.QueryID)
			}
			if !opts.NoExpressions {
				for _, x := range expressions(u, opts.TenantColumn, width) {
					g.add(u.Table, x.cols, nil, []events.IndexExpr{x.expr}, "", in.QueryID)
				}
			}
			// Partial variants: the statement only reads rows where n is
			// not null, so an index on those rows alone serves it.
			for i, n := range u.IsNotNull {
				if i < MaxPartialPredicates {
					for _, k := range sets {
						g.add(u.Table, k.cols, k.dirs, nil, indexdef.NotNullPredicate(n), in.QueryID)
					}
				}
				g.add(u.Table, []string{n}, nil, nil, indexdef.NotNullPredicate(n), in.QueryID)
			}
			// Partial variants on a condition several statements share:
			// the statement reads only rows that pass it.
			// Columns the statement's conditions fix (deleted_at IS NULL,
			// active) make poor keys under such a predicate: left out.
			fixed := map[string]bool{}
			for _, c := range u.Conditions {
				if c.Test != sqlparse.CondIsNotNull {
					fixed[c.Column] = true
				}
			}
			applied := 0
			for _, c := range u.Conditions {
				if c.Test == sqlparse.CondIsNotNull || !shared[tableCond{u.Table, c}] {
					continue // IS NOT NULL has its own variants above
				}
				if applied++; applied > MaxPartialPredicates {
					break
				}
				pred := Condition(c).Predicate()
				for _, k := range sets {
					var keys, dirs []string
					for i, c := range k.cols {
						if !fixed[c] {
							keys = append(keys, c)
							if k.dirs != nil {
								dirs = append(dirs, k.dirs[i])
							}
						}
					}
					if len(keys) > 0 {
						g.add(u.Table, keys, dirs, nil, pred, in.QueryID)
					}
				}
			}
		}
	}
	keys := make([]string, 0, len(g.byKey))
	for k := range g.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Candidate, 0, len(keys))
	for _, k := range keys {
		p := g.byKey[k]
		ids := make([]string, 0, len(p.ids))
		for id := range p.ids {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		out = append(out, Candidate{Spec: p.spec, QueryIDs: ids})
	}
	return out
}

// condTests maps the parser's tests to the rendered ones.
var condTests = map[sqlparse.CondTest]indexdef.Test{
	sqlparse.CondIsNull: indexdef.TestIsNull, sqlparse.CondIsNotNull: indexdef.TestIsNotNull,
	sqlparse.CondIsTrue: indexdef.TestIsTrue, sqlparse.CondIsFalse: indexdef.TestIsFalse,
	sqlparse.CondTrue: indexdef.TestTrue, sqlparse.CondFalse: indexdef.TestFalse,
}

// Condition is the partial-index condition of a parsed one.
func Condition(c sqlparse.Condition) indexdef.Condition {
	return indexdef.Condition{Column: c.Column, Test: condTests[c.Test]}
}

type tableCond struct {
	table sqlparse.TableRef
	cond  sqlparse.Condition
}

// sharedConditions returns the (table, condition) pairs carried by at
// least opts.MinShared distinct statements (by query id; an input without
// one counts on its own). A condition on a column opts.Skip rejects is
// never shared.
func sharedConditions(stmts []Input, opts Options) map[tableCond]bool {
	need := opts.MinShared
	if need <= 0 {
		need = DefaultMinShared
	}
	seen := map[tableCond]map[string]bool{}
	for i, in := range stmts {
		if in.Stmt == nil {
			continue
		}
		id := in.QueryID
		if id == "" {
			id = "#" + strconv.Itoa(i)
		}
		for _, u := range in.Stmt.Tables {
			if u.Table.Schema == "" || u.Table.Name == "" {
				continue
			}
			for _, c := range u.Conditions {
				if opts.Skip != nil && opts.Skip(u.Table.Schema, u.Table.Name, c.Column) {
					continue
				}
				k := tableCond{u.Table, c}
				if seen[k] == nil {
					seen[k] = map[string]bool{}
				}
				seen[k][id] = true
			}
		}
	}
	out := map[tableCond]bool{}
	for k, ids := range seen {
		if len(ids) >= need {
			out[k] = true
		}
	}
	return out
}

type pending struct {
	spec events.IndexSpec
	ids  map[string]struct{}
}

type generator struct {
	existing map[string][]indexdef.Existing
	byKey    map[string]*pending
	// covered remembers keys an existing index serves.
	covered map[string]bool
}

func (g *generator) add(t sqlparse.TableRef, cols, dirs []string, exprs []events.IndexExpr, predicate, queryID string) {
	spec := events.IndexSpec{
		Schema:      t.Schema,
		Table:       t.Name,
		Method:      "btree",
		Columns:     append([]string(nil), cols...),
		Expressions: exprs,
		Predicate:   predicate,
	}
	for _, d := range dirs {
		if d != events.DirAsc {
			spec.Directions = append([]string(nil), dirs...)
			break
		}
	}
	key := spec.Key()
	if g.covered[key] {
		return
	}
	p, ok := g.byKey[key]
	if !ok {
		if _, found := indexdef.FindCovering(g.existing[spec.QualifiedTable()], spec); found {
			g.covered[key] = true
			return
		}
		p = &pending{spec: spec, ids: map[string]struct{}{}}
		g.byKey[key] = p
	}
	if queryID != "" {
		p.ids[queryID] = struct{}{}
	}
}

// withoutSkipped returns a copy of u without the columns skip rejects. The
// ORDER BY list stops before the first rejected column (an index cannot
// give the order past it).
func withoutSkipped(u *sqlparse.TableUsage, skip func(schema, table, column string) bool) *sqlparse.TableUsage {
	off := func(c string) bool { return skip(u.Table.Schema, u.Table.Name, c) }
	keep := func(cols []string) []string {
		return slices.DeleteFunc(slices.Clone(cols), off)
	}
	c := *u
	c.Equality, c.Range, c.IsNull, c.IsNotNull = keep(u.Equality), keep(u.Range), keep(u.IsNull), keep(u.IsNotNull)
	c.LikePrefix, c.JoinKeys, c.GroupBy = keep(u.LikePrefix), keep(u.JoinKeys), keep(u.GroupBy)
	c.Expressions = slices.DeleteFunc(slices.Clone(u.Expressions), func(x sqlparse.ExprUsage) bool {
		return slices.ContainsFunc(x.Columns, off)
	})
	c.Conditions = slices.DeleteFunc(slices.Clone(u.Conditions), func(x sqlparse.Condition) bool { return off(x.Column) })
	c.OrderBy = nil
	for _, o := range u.OrderBy {
		if off(o.Column) {
			break
		}
		c.OrderBy = append(c.OrderBy, o)
	}
	return &c
}

// bounded returns u with each list Generate enumerates cut to its first
// MaxUsageColumns entries (u itself when none is longer). The tenant
// column stays among the equality columns when u filters on it, so its
// composites still lead with it. Conditions stay whole: they are only
// looked up (the columns they fix, the shared ones), and
// MaxPartialPredicates bounds the variants they give.
func bounded(u *sqlparse.TableUsage, tenant string) *sqlparse.TableUsage {
	const n = MaxUsageColumns
	if len(u.Equality) <= n && len(u.Range) <= n && len(u.IsNull) <= n && len(u.IsNotNull) <= n &&
		len(u.LikePrefix) <= n && len(u.JoinKeys) <= n && len(u.OrderBy) <= n && len(u.Expressions) <= n {
		return u
	}
	c := *u
	first := func(cols []string) []string { return cols[:min(len(cols), n)] }
	c.Equality = first(u.Equality)
	if tenant != "" && !contains(c.Equality, tenant) && contains(u.Equality, tenant) {
		c.Equality = append(slices.Clone(c.Equality[:n-1]), tenant)
	}
	c.Range, c.IsNull, c.IsNotNull = first(u.Range), first(u.IsNull), first(u.IsNotNull)
	c.LikePrefix, c.JoinKeys = first(u.LikePrefix), first(u.JoinKeys)
	c.OrderBy = u.OrderBy[:min(len(u.OrderBy), n)]
	c.Expressions = u.Expressions[:min(len(u.Expressions), n)]
	return &c
}

type exprCandidate struct {
	cols []string
	expr events.IndexExpr
}

// expressions lists the expression candidates of one table usage: for an
// equality or range predicate on f(col) with f in indexdef.ExprFunctions
// (lower(email) = $1), an index on f(col) — led by the tenant column when
// the usage also filters on it. LIKE and IS NULL on an expression give
// none: a btree on lower(col) serves LIKE only under the C collation.
func expressions(u *sqlparse.TableUsage, tenant string, width int) []exprCandidate {
	var out []exprCandidate
	for _, x := range u.Expressions {
		if x.Op != sqlparse.OpEquality && x.Op != sqlparse.OpRange {
			continue
		}
		fn, col, ok := indexdef.ParseExprKey(x.Expr)
		if !ok || !slices.Contains(indexdef.ExprFunctions, fn) || len(x.Columns) != 1 || x.Columns[0] != col {
			continue
		}
		e := events.IndexExpr{Function: fn, Column: col}
		out = append(out, exprCandidate{expr: e})
		if tenant != "" && width >= 2 && contains(u.Equality, tenant) {
			out = append(out, exprCandidate{cols: []string{tenant}, expr: e})
		}
	}
	return out
}

// keyList is one candidate's key columns and, when a column is not in the
// default order, their directions (events.IndexSpec.Directions).
type keyList struct {
	cols []string
	dirs []string
}

// columnSets lists the key-column lists one table usage motivates: the
// single columns first, then the multi-column ones, then the one that
// delivers the ORDER BY.
func columnSets(u *sqlparse.TableUsage, width int, tenant string) []keyList {
	var out []keyList
	single := func(cols []string) {
		for _, c := range cols {
			if c != "" {
				out = append(out, keyList{cols: []string{c}})
			}
		}
	}
	single(u.Equality)
	single(u.Range)
	single(u.IsNull)
	single(u.LikePrefix)
	single(u.JoinKeys)
	for _, o := range u.OrderBy {
		single([]string{o.Column})
	}
	if tenant != "" && width >= 2 && contains(u.Equality, tenant) {
		n := len(out)
		for _, k := range out[:n] {
			if k.cols[0] != tenant {
				out = append(out, keyList{cols: []string{tenant, k.cols[0]}})
			}
		}
	}
	eq := equalityColumns(u, tenant)
	for _, cols := range composites(u, eq, width) {
		out = append(out, keyList{cols: cols})
	}
	if k, ok := sortKeys(u.OrderBy, eq, width); ok {
		out = append(out, k)
	}
	return out
}

// equalityColumns are the usage's equality columns in order of appearance,
// led by the tenant column when the usage filters on it.
func equalityColumns(u *sqlparse.TableUsage, tenant string) []string {
	var eq []string
	if tenant != "" && contains(u.Equality, tenant) {
		eq = append(eq, tenant)
	}
	for _, c := range u.Equality {
		if c != "" && !contains(eq, c) {
			eq = append(eq, c)
		}
	}
	return eq
}

// composites builds the multi-column lists: equality columns first, then
// one range or join-key column, never wider than width.
func composites(u *sqlparse.TableUsage, eq []string, width int) [][]string {
	if width < 2 || len(eq) == 0 {
		return nil
	}
	if len(eq) >= width {
		return [][]string{eq[:width]}
	}
	var out [][]string
	if len(eq) >= 2 {
		out = append(out, eq)
	}
	var trailing []string
	for _, list := range [][]string{u.Range, u.JoinKeys} {
		// A join key is an equality with the outer row's value on the
		// inner side of a nested loop: it can follow the equality
		// columns like a range does.
		for _, r := range list {
			if r != "" && !contains(eq, r) && !contains(trailing, r) {
				trailing = append(trailing, r)
			}
		}
	}
	for _, t := range trailing {
		cols := make([]string, 0, len(eq)+1)
		out = append(out, append(append(cols, eq...), t))
	}
	return out
}

// sortKeys is the index that delivers the usage's ORDER BY: the equality
// columns, then the ORDER BY columns not fixed by an equality, in order and
// with their directions, at most width columns. When every sort column is
// reversed from the default (DESC, nulls first) the index is the forward
// one: a backward scan delivers the reverse order, so ORDER BY a DESC, b
// DESC and ORDER BY a, b share the index (a, b). Mixed directions keep the
// ones written (a DESC, b gives (a DESC, b)); explicit NULLS FIRST/LAST
// that differ from the direction's default are kept too. ok is false when
// there is no sort column left.
func sortKeys(order []sqlparse.OrderCol, eq []string, width int) (keyList, bool) {
	var k keyList
	for _, c := range eq {
		if len(k.cols) < width {
			k.cols = append(k.cols, c)
			k.dirs = append(k.dirs, events.DirAsc)
		}
	}
	start := len(k.cols)
	for _, o := range order {
		if len(k.cols) >= width {
			break
		}
		if contains(k.cols, o.Column) || contains(eq, o.Column) {
			continue
		}
		k.cols = append(k.cols, o.Column)
		k.dirs = append(k.dirs, events.Direction(o.Desc, o.NullsFirst))
	}
	if len(k.cols) == start {
		return keyList{}, false
	}
	reversed := true
	for _, d := range k.dirs[start:] {
		reversed = reversed && d == events.DirDesc
	}
	plain := true
	for i := range k.dirs {
		if reversed && i >= start {
			k.dirs[i] = events.DirAsc
		}
		plain = plain && k.dirs[i] == events.DirAsc
	}
	if plain {
		k.dirs = nil
	}
	return k, true
}
func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
