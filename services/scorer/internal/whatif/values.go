package whatif

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Pricing methods, as the evidence names them.
const (
	// MethodQualstats: values pg_qualstats recorded for the statement.
	MethodQualstats = "custom:qualstats"
	// MethodApp: the tenant ids of the calls the application reported
	// (app-fed statistics, Statement.AppTenants), for a parameter compared
	// with the tenant column by equality or IN.
	MethodApp = "custom:app"
	// MethodPgStats: values from pg_stats of the compared columns (most
	// common values, histogram bounds).
	MethodPgStats = "custom:pg_stats"
	// MethodObserved: values observed in executions of the statement
	// (Statement.Samples).
	MethodObserved = "custom:observed"
	// MethodGeneric: the generic plan; no representative value is known
	// or no value set could be planned.
	MethodGeneric = "generic"
)

// maxValueSets bounds the value sets of one statement, hence the plans
// per evaluation.
const maxValueSets = 4

// Statement is a workload statement to price with representative values.
type Statement struct {
	// QueryID is pg_stat_statements' queryid (decimal); it keys
	// pg_qualstats' recorded constants. Empty or not a number: no
	// qualstats values.
	QueryID string
	// Fingerprint keys the cache like CostFingerprint ("" keys by Query).
	Fingerprint string
	Query       string
	// Samples are parameter values observed in executions of the
	// statement, as text, one slice per execution in $1..$n order. They
	// are only ever bound as parameters.
	Samples [][]string
	// RowsPerCall is the mean number of rows a call returned; it prices
	// a LIMIT parameter (0: unknown, 10 is used).
	RowsPerCall float64
	// TenantColumn, when set, is the tenant column (schema_config.yaml):
	// Price also reports the values of the parameter compared with it by
	// equality (Pricing.Tenants).
	TenantColumn string
	// AppTenants are the calls the application reported in the scoring
	// window, per tenant id, on the tables the statement reads (app-fed
	// statistics). A parameter compared with TenantColumn of one of those
	// tables by equality or IN is priced with those tenant ids, weighted by
	// their calls (MethodApp), unless pg_qualstats recorded its values.
	AppTenants []AppTenants
}

// AppTenants is the application's calls on one table, per tenant id (a
// value of the tenant column). Schema and Table are the table as the
// statement's search_path resolves it; a parameter whose column the
// statement names without a schema matches it by Table alone, when no
// other AppTenants of the statement has the same Table.
type AppTenants struct {
	Schema, Table string
	Calls         map[string]float64
}

// TenantValues is the distribution of the tenant column's parameter in
// a statement's representative values: each value's fraction of the
// statement's calls (qualstats, observed) or of the column's non-null
// rows (pg_stats, all most common values, not grouped), and Rest, the
// fraction no listed value covers. Values are in decreasing weight.
type TenantValues struct {
	Method string
	Values []TenantValue
	Rest   float64
}

// TenantValue is one tenant id and its fraction.
type TenantValue struct {
	Value  string
	Weight float64
}

// ValueSet is one assignment of values to $1..$n with its weight; a nil
// value is bound as NULL.
type ValueSet struct {
	Values []*string
	Weight float64
}

// Pricing says how a statement is priced: its method and, for a custom
// method, its weighted value sets (weights sum to 1).
type Pricing struct {
	Method string
	Sets   []ValueSet
	// Tenants is the tenant column's parameter distribution, when
	// Statement.TenantColumn was set and some source has its values.
	Tenants *TenantValues
	shape   *Shape
	// key identifies the sets in cache keys.
	key string
	// oids are the parameter types guessed after the server could not
	// infer them (see Shape.guessTypes); typed says the guess was made.
	oids  []uint32
	typed bool
	// described holds the parameter types the server gave the prepared
	// statement; once known, custom evaluations skip the Prepare.
	described []uint32
}

// weighted is one candidate value of a parameter; n is how many values
// of the same frequency it stands for (pg_stats).
type weighted struct {
	value  string
	weight float64
	n      int
}

// source is one origin of parameter values: per $n, candidate values in
// decreasing weight.
type source struct {
	method string
	values map[int][]weighted
}

// colKey is a (quoted relation, column) pair.
type colKey struct{ rel, col string }

// colStats is what pg_stats says about one column.
type colStats struct {
	mcv       []string
	freqs     []float64
	histogram []string
	nullFrac  float64
}

// Price decides how each statement is priced and registers the answer with
// the engine, so that Cost and CostFingerprint of the same statement use
// it: the statement is parsed (typed literals rewritten, see
// AnalyzeStatement), every $n is matched with the column it is compared
// with, and values are looked up, in this order, in pg_qualstats (when
// installed), the application's calls per tenant (Statement.AppTenants,
// for the tenant column only), pg_stats and the statement's observed
// samples. A statement
// with at least one value from a source is priced as the weighted mean of
// custom plans over at most four value sets; otherwise by its generic
// plan. Two queries in all, whatever the number of statements.
func (s *Session) Price(ctx context.Context, stmts []Statement) ([]*Pricing, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	shapes := make([]*Shape, len(stmts))
	need := map[colKey]bool{}
	for i, st := range stmts {
		sh, err := s.e.shapeOf(st.Query)
		if err != nil {
			continue
		}
		shapes[i] = sh
		for _, uses := range sh.Uses {
			for _, u := range uses {
				for _, rel := range u.Relations {
					need[colKey{rel, u.Column}] = true
				}
			}
		}
	}
	// A source the server refuses (a type whose statistics do not read as
	// text[], no privilege on pg_qualstats, a timeout) gives no values;
	// only a lost connection fails the pricing.
	s.skipped = nil
	stats, err := s.columnStats(ctx, need)
	if err != nil {
		if !unavailable(err) {
			return nil, err
		}
		s.skipped = append(s.skipped, err.Error())
	}
	quals, err := s.qualValues(ctx, stmts, shapes)
	if err != nil {
		if !unavailable(err) {
			return nil, err
		}
		s.skipped = append(s.skipped, err.Error())
	}
	if quals == nil {
		quals = make([]map[int][]weighted, len(stmts))
	}
	out := make([]*Pricing, len(stmts))
	for i, st := range stmts {
		p := &Pricing{Method: MethodGeneric, shape: shapes[i]}
		if sh := shapes[i]; sh != nil && sh.Params > 0 {
			srcs := []source{
				{method: MethodQualstats, values: quals[i]},
				{method: MethodApp, values: appValues(sh, st.TenantColumn, st.AppTenants)},
				{method: MethodPgStats, values: statsValues(sh, func(rel, col string) *colStats { return stats[colKey{rel, col}] })},
				{method: MethodObserved, values: observedValues(sh, st.Samples)},
			}
			p.Method, p.Sets = buildSets(sh, srcs, st.RowsPerCall)
			p.key = setsKey(p.Sets)
			if st.TenantColumn != "" {
				p.Tenants = tenantValues(sh, st.TenantColumn, quals[i], func(rel, col string) *colStats { return stats[colKey{rel, col}] }, st.Samples)
			}
		}
		out[i] = p
		s.e.register(stmtKey(st.Fingerprint, st.Query), p)
	}
	return out, nil
}

// SkippedSources says why a value source gave no values in the last
// Price: one line per source the server refused (a timeout, no privilege),
// none when every source answered. The statements were priced by the
// sources that did.
func (s *Session) SkippedSources() []string { return s.skipped }

// unavailable reports an error that makes a value source empty rather
// than the pricing fail.
func unavailable(err error) bool {
	return errors.Is(err, ErrTimeout) || postgres.Classify(err) == postgres.Permanent
}

func stmtKey(fingerprint, query string) string {
	if fingerprint == "" {
		return "q" + query
	}
	return "f" + fingerprint
}

// columnStatsSQL reads pg_stats of (relation, column) pairs; relations are
// quoted names resolved with to_regclass (the session's search_path).
const columnStatsSQL = `/* indexpilot:scorer */
select u.rel, u.col,
       coalesce(s.most_common_vals::text::text[], '{}'), coalesce(s.most_common_freqs::float8[], '{}'),
       coalesce(s.histogram_bounds::text::text[], '{}'), coalesce(s.null_frac, 0)::float8
  from unnest($1::text[], $2::text[]) as u(rel, col)
  join pg_catalog.pg_class c on c.oid = pg_catalog.to_regclass(u.rel)
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = u.col
  join pg_catalog.pg_type t on t.oid = a.atttypid
  join pg_catalog.pg_stats s on s.schemaname = n.nspname and s.tablename = c.relname and s.attname = u.col
 where s.inherited = (c.relkind = 'p') and t.typcategory <> 'A'`

func (s *Session) columnStats(ctx context.Context, need map[colKey]bool) (map[colKey]*colStats, error) {
	out := map[colKey]*colStats{}
	if len(need) == 0 {
		return out, nil
	}
	var rels, cols []string
	for k := range need {
		rels, cols = append(rels, k.rel), append(cols, k.col)
	}
	rows, err := s.conn.Query(ctx, columnStatsSQL, rels, cols)
	if err != nil {
		return nil, classify("read column statistics", err, nil)
	}
	defer rows.Close()
	for rows.Next() {
		var rel, col string
		cs := &colStats{}
		if err := rows.Scan(&rel, &col, &cs.mcv, &cs.freqs, &cs.histogram, &cs.nullFrac); err != nil {
			return nil, fmt.Errorf("read column statistics: %w", err)
		}
		out[colKey{rel, col}] = cs
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read column statistics", err, nil)
	}
	return out, nil
}

// qualstatsSQL reads the constants pg_qualstats recorded per (queryid,
// column, operator), with how many executions used each. The operator
// matches as written or commuted (pg_qualstats keeps `5 > a` as `>`).
const qualstatsSQL = `
select u.ord::int, q.constvalue::text, sum(q.occurences)::float8
  from unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) with ordinality as u(qid, rel, col, op, ord)
  join pg_catalog.pg_attribute a on a.attrelid = pg_catalog.to_regclass(u.rel) and a.attname = u.col
  join %s q on q.queryid = u.qid and q.lrelid = a.attrelid and q.lattnum = a.attnum
  join pg_catalog.pg_operator o on o.oid = q.opno
  left join pg_catalog.pg_operator k on k.oid = o.oprcom
 where q.constvalue is not null and q.rrelid is null
   and (u.op in (o.oprname, k.oprname) or (u.op = 'like' and o.oprname in ('~~', '~~*')))
 group by u.ord, q.constvalue
 order by u.ord, 3 desc, 2`

// qualValues returns, per statement, the values pg_qualstats recorded for
// its parameters; nil maps when the extension is not installed.
func (s *Session) qualValues(ctx context.Context, stmts []Statement, shapes []*Shape) ([]map[int][]weighted, error) {
	out := make([]map[int][]weighted, len(stmts))
	var schema *string
	if err := s.conn.QueryRow(ctx, marker+"select n.nspname::text from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_qualstats'").Scan(&schema); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, classify("find pg_qualstats", err, nil)
	}
	if schema == nil {
		return out, nil
	}
	type ref struct{ stmt, param int }
	var (
		qids            []int64
		rels, cols, ops []string
		refs            []ref
	)
	for i, st := range stmts {
		qid, err := strconv.ParseInt(st.QueryID, 10, 64)
		if err != nil || shapes[i] == nil {
			continue
		}
		for n, uses := range shapes[i].Uses {
			for _, u := range uses {
				for _, rel := range u.Relations {
					qids, rels, cols, ops = append(qids, qid), append(rels, rel), append(cols, u.Column), append(ops, u.Op)
					refs = append(refs, ref{i, n})
				}
			}
		}
	}
	if len(refs) == 0 {
		return out, nil
	}
	rows, err := s.conn.Query(ctx, marker+fmt.Sprintf(qualstatsSQL, postgres.Ident(*schema, "pg_qualstats")), qids, rels, cols, ops)
	if err != nil {
		return nil, classify("read pg_qualstats", err, nil)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ord   int
			cv    string
			count float64
		)
		if err := rows.Scan(&ord, &cv, &count); err != nil {
			return nil, fmt.Errorf("read pg_qualstats: %w", err)
		}
		v, ok := constValue(cv)
		if !ok || ord < 1 || ord > len(refs) {
			continue
		}
		r := refs[ord-1]
		if out[r.stmt] == nil {
			out[r.stmt] = map[int][]weighted{}
		}
		out[r.stmt][r.param] = append(out[r.stmt][r.param], weighted{value: v, weight: count})
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read pg_qualstats", err, nil)
	}
	return out, nil
}

// constValue reads pg_qualstats' constvalue ('abc'::text, 42::integer)
// into the constant's text; arrays (an IN list) and anything else
// unexpected are skipped.
func constValue(cv string) (string, bool) {
	var v, rest string
	if strings.HasPrefix(cv, "'") {
		var b strings.Builder
		i := 1
		for ; i < len(cv); i++ {
			if cv[i] == '\'' {
				if i+1 < len(cv) && cv[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				break
			}
			b.WriteByte(cv[i])
		}
		if i >= len(cv) {
			return "", false
		}
		v, rest = b.String(), cv[i+1:]
	} else {
		j := strings.Index(cv, "::")
		if j <= 0 {
			return "", false
		}
		v, rest = cv[:j], cv[j:]
	}
	if rest != "" && (!strings.HasPrefix(rest, "::") || strings.HasSuffix(rest, "[]")) {
		return "", false
	}
	return v, true
}

// statsValues proposes values from pg_stats. An equality (or IN, LIKE,
// <>) parameter takes the column's most common values weighted by their
// frequency, plus the histogram's middle bound for the rest of the rows; a
// range bound takes histogram quantiles chosen to select about 2 % and 20 %
// of the rows (both bounds of the same column together select a
// window of that size around the median).
func statsValues(sh *Shape, stats func(rel, col string) *colStats) map[int][]weighted {
	out := map[int][]weighted{}
	lookup := func(u ParamUse) *colStats {
		for _, rel := range u.Relations {
			if cs := stats(rel, u.Column); cs != nil {
				return cs
			}
		}
		return nil
	}
	// Which columns have both a lower and an upper bound parameter.
	bounds := map[string][2]bool{}
	colID := func(u ParamUse) string { return strings.Join(u.Relations, ",") + "." + u.Column }
	for _, uses := range sh.Uses {
		for _, u := range uses {
			b := bounds[colID(u)]
			switch u.Op {
			case ">", ">=":
				b[0] = true
			case "<", "<=":
				b[1] = true
			}
			bounds[colID(u)] = b
		}
	}
	targets := []float64{0.02, 0.2}
	for n := 1; n <= sh.Params; n++ {
		for _, u := range sh.Uses[n] {
			cs := lookup(u)
			if cs == nil {
				continue
			}
			var vals []weighted
			switch u.Op {
			case "=", "<>", opLike:
				// The planner prices `col = v` by v's frequency alone, so
				// most common values of about the same frequency (within
				// 25 %) are one value set, weighted by their sum.
				rest := 1 - cs.nullFrac
				for i, v := range cs.mcv {
					if i >= len(cs.freqs) {
						break
					}
					f := cs.freqs[i]
					rest -= f
					if last := len(vals) - 1; last >= 0 && f*1.25 >= vals[last].weight/float64(vals[last].n) {
						vals[last].weight += f
						vals[last].n++
						continue
					}
					if len(vals) < maxValueSets-1 {
						vals = append(vals, weighted{value: v, weight: f, n: 1})
					}
				}
				if len(cs.histogram) > 0 && rest > 0.001 {
					vals = append(vals, weighted{value: quantile(cs.histogram, 0.5), weight: rest})
				}
			case "<", "<=", ">", ">=":
				if len(cs.histogram) < 2 {
					continue
				}
				both := bounds[colID(u)][0] && bounds[colID(u)][1]
				for _, t := range targets {
					q := t
					switch {
					case both && (u.Op == ">" || u.Op == ">="):
						q = 0.5 - t/2
					case both:
						q = 0.5 + t/2
					case u.Op == ">" || u.Op == ">=":
						q = 1 - t
					}
					vals = append(vals, weighted{value: quantile(cs.histogram, q), weight: 1})
				}
			}
			if len(vals) > 0 {
				out[n] = vals
				break
			}
		}
	}
	return out
}

// quantile is the histogram bound at fraction q of the rows.
func quantile(bounds []string, q float64) string {
	i := int(math.Round(q * float64(len(bounds)-1)))
	return bounds[max(0, min(i, len(bounds)-1))]
}

// observedValues turns observed executions into per-parameter values, the
// most frequent first.
func observedValues(sh *Shape, samples [][]string) map[int][]weighted {
	out := map[int][]weighted{}
	for n := 1; n <= sh.Params; n++ {
		counts := map[string]float64{}
		for _, s := range samples {
			if n-1 < len(s) {
				counts[s[n-1]]++
			}
		}
		var vals []weighted
		for v, c := range counts {
			vals = append(vals, weighted{value: v, weight: c})
		}
		sort.Slice(vals, func(i, j int) bool {
			if vals[i].weight != vals[j].weight {
				return vals[i].weight > vals[j].weight
			}
			return vals[i].value < vals[j].value
		})
		if len(vals) > 0 {
			out[n] = vals
		}
	}
	return out
}

// appValues proposes, for each parameter compared with the tenant column
// by equality (or IN), the tenant ids the application reported calls for
// on the column's table, the most called first: all of them when they are
// at most maxValueSets, otherwise the maxValueSets-1 most called and, for
// the others, the one at the median of their calls, weighted by all their
// calls (as pg_stats' rest of the rows is priced by one value). Unlike
// pg_stats' most common values, the weights are calls, not rows.
func appValues(sh *Shape, column string, apps []AppTenants) map[int][]weighted {
	out := map[int][]weighted{}
	if column == "" || len(apps) == 0 {
		return out
	}
	for n := 1; n <= sh.Params; n++ {
		for _, u := range sh.Uses[n] {
			if u.Column != column || u.Op != "=" {
				continue
			}
			if vals := topTenants(appCallsOn(u.Relations, apps)); len(vals) > 0 {
				out[n] = vals
				break
			}
		}
	}
	return out
}

// appCallsOn is the calls of the first relation (a quoted name, as in
// ParamUse.Relations) that apps has: by schema and table, or by table
// alone for an unqualified name that only one of apps has.
func appCallsOn(rels []string, apps []AppTenants) map[string]float64 {
	for _, rel := range rels {
		var found map[string]float64
		bare := 0
		for _, a := range apps {
			switch rel {
			case postgres.Ident(a.Schema, a.Table):
				return a.Calls
			case postgres.Ident(a.Table):
				found = a.Calls
				bare++
			}
		}
		if bare == 1 {
			return found
		}
	}
	return nil
}

// topTenants orders calls per tenant, most first (ties by id), and keeps
// at most maxValueSets: see appValues. Calls without a tenant ("") are
// not a value.
func topTenants(calls map[string]float64) []weighted {
	var vals []weighted
	for t, n := range calls {
		if t != "" && n > 0 {
			vals = append(vals, weighted{value: t, weight: n})
		}
	}
	sort.Slice(vals, func(i, j int) bool {
		if vals[i].weight != vals[j].weight {
			return vals[i].weight > vals[j].weight
		}
		return vals[i].value < vals[j].value
	})
	if len(vals) <= maxValueSets {
		return vals
	}
	rest := vals[maxValueSets-1:]
	var sum float64
	for _, v := range rest {
		sum += v.weight
	}
	mid, acc := rest[len(rest)-1], 0.0
	for _, v := range rest {
		if acc += v.weight; acc >= sum/2 {
			mid = v
			break
		}
	}
	return append(vals[:maxValueSets-1:maxValueSets-1], weighted{value: mid.value, weight: sum, n: len(rest)})
}

// buildSets assigns every parameter its values from the first source that
// has some, and aligns them into at most maxValueSets sets: set k takes
// the k-th value of every parameter (cycling through shorter lists). The
// weight of set k is the mean of the parameters' normalized weights at k,
// normalized to sum to 1. Parameters no source knows take a neutral value
// at evaluation time (LIMIT: rows per call, else by type, see
// defaultValue). The method is the highest-priority source that gave a
// value; with none, the generic plan.
func buildSets(sh *Shape, srcs []source, rowsPerCall float64) (string, []ValueSet) {
	method := ""
	rank := len(srcs)
	dists := map[int][]weighted{}
	k := 0
	for n := 1; n <= sh.Params; n++ {
		for r, src := range srcs {
			vals := src.values[n]
			if (sh.Units[n] != "" || sh.Shifts[n]) && src.method != MethodObserved {
				// A shift's value is a length, not a value of the column
				// it shifts.
				continue
			}
			if len(vals) == 0 {
				continue
			}
			if len(vals) > maxValueSets {
				vals = vals[:maxValueSets]
			}
			var sum float64
			for _, v := range vals {
				sum += v.weight
			}
			norm := make([]weighted, len(vals))
			for i, v := range vals {
				norm[i] = weighted{value: v.value, weight: v.weight / sum}
				if sum <= 0 {
					norm[i].weight = 1 / float64(len(vals))
				}
			}
			dists[n] = norm
			k = max(k, len(norm))
			if r < rank {
				rank, method = r, src.method
			}
			break
		}
	}
	if method == "" {
		return MethodGeneric, nil
	}
	limit := "10"
	if rowsPerCall >= 1 {
		limit = strconv.FormatInt(int64(math.Ceil(rowsPerCall)), 10)
	}
	sets := make([]ValueSet, k)
	var total float64
	for i := range sets {
		vals := make([]*string, sh.Params)
		var w float64
		var nw int
		for n := 1; n <= sh.Params; n++ {
			if d := dists[n]; len(d) > 0 {
				v := sh.bindValue(n, d[i%len(d)].value)
				vals[n-1] = &v
				if i < len(d) {
					w += d[i].weight
					nw++
				}
				continue
			}
			for _, u := range sh.Uses[n] {
				if u.Op == opLimit {
					v := limit
					vals[n-1] = &v
				} else if u.Op == opOffset {
					v := "0"
					vals[n-1] = &v
				}
			}
			switch {
			case vals[n-1] != nil:
			case sh.Units[n] != "":
				v := "1 " + sh.Units[n]
				vals[n-1] = &v
			case sh.Shifts[n]:
				v := "0"
				vals[n-1] = &v
			}
		}
		if nw > 0 {
			w /= float64(nw)
		}
		sets[i] = ValueSet{Values: vals, Weight: w}
		total += w
	}
	for i := range sets {
		if total > 0 {
			sets[i].Weight /= total
		} else {
			sets[i].Weight = 1 / float64(len(sets))
		}
	}
	return method, mergeSets(sets)
}

// mergeSets folds identical value sets into one (their weights added):
// the same values plan the same.
func mergeSets(sets []ValueSet) []ValueSet {
	out := sets[:0]
	seen := map[string]int{}
	for _, s := range sets {
		k := setsKey([]ValueSet{{Values: s.Values}})
		if i, ok := seen[k]; ok {
			out[i].Weight += s.Weight
			continue
		}
		seen[k] = len(out)
		out = append(out, s)
	}
	return out
}

// defaultValue is the value bound to a parameter no source knows, by its
// type: it does not decide the plan (it is not compared with a column),
// it only has to be valid. nil binds NULL.
func defaultValue(oid uint32) *string {
	var v string
	switch oid {
	case 20, 21, 23, 26, 700, 701, 1700: // int8, int2, int4, oid, float4, float8, numeric
		v = "1"
	case 16:
		v = "true"
	case 25, 1042, 1043, 19: // text, bpchar, varchar, name
		v = ""
	case 1082:
		v = "2000-01-01"
	case 1114, 1184:
		v = "2000-01-01 00:00:00"
	case 1186:
		v = "1 day"
	default:
		return nil
	}
	return &v
}

// setsKey identifies value sets in cache keys.
func setsKey(sets []ValueSet) string {
	if len(sets) == 0 {
		return ""
	}
	h := sha256.New()
	for _, s := range sets {
		fmt.Fprintf(h, "%g|", s.Weight)
		for _, v := range s.Values {
			if v == nil {
				h.Write([]byte{0})
				continue
			}
			fmt.Fprintf(h, "%d:%s", len(*v), *v)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// tenantValues reads the distribution of the parameter compared with
// column by equality from the first source that has its values, in the
// pricing's order (qualstats, pg_stats, observed) without the app-fed
// calls, which the scorer reads for itself. Unlike the value sets,
// nothing is truncated or grouped: every recorded constant, most common
// value or sample counts. nil when no parameter is compared with column
// or no source knows it.
func tenantValues(sh *Shape, column string, quals map[int][]weighted, stats func(rel, col string) *colStats, samples [][]string) *TenantValues {
	for n := 1; n <= sh.Params; n++ {
		var use *ParamUse
		for i, u := range sh.Uses[n] {
			if u.Column == column && u.Op == "=" {
				use = &sh.Uses[n][i]
				break
			}
		}
		if use == nil {
			continue
		}
		if tv := fromCounts(MethodQualstats, quals[n]); tv != nil {
			return tv
		}
		for _, rel := range use.Relations {
			cs := stats(rel, column)
			if cs == nil || len(cs.mcv) == 0 {
				continue
			}
			nonNull := 1 - cs.nullFrac
			if nonNull <= 0 {
				break
			}
			tv := &TenantValues{Method: MethodPgStats, Rest: 1}
			for i, v := range cs.mcv {
				if i >= len(cs.freqs) {
					break
				}
				w := cs.freqs[i] / nonNull
				tv.Values = append(tv.Values, TenantValue{Value: v, Weight: w})
				tv.Rest -= w
			}
			tv.Rest = max(tv.Rest, 0)
			return tv
		}
		if tv := fromCounts(MethodObserved, observedValues(sh, samples)[n]); tv != nil {
			return tv
		}
	}
	return nil
}

// fromCounts normalizes counted values (qualstats, samples) to fractions.
func fromCounts(method string, vals []weighted) *TenantValues {
	var sum float64
	for _, v := range vals {
		sum += v.weight
	}
	if sum <= 0 {
		return nil
	}
	tv := &TenantValues{Method: method}
	for _, v := range vals {
		tv.Values = append(tv.Values, TenantValue{Value: v.value, Weight: v.weight / sum})
	}
	sort.SliceStable(tv.Values, func(i, j int) bool { return tv.Values[i].Weight > tv.Values[j].Weight })
	return tv
}
