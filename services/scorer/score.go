package scorer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer/internal/candidates"
	"github.com/indexpilot/indexpilot/services/scorer/internal/sqlparse"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// WhatIfHypoPG names the what-if method in the evidence.
const WhatIfHypoPG = "hypopg"

// statement is one workload statement over the window.
type statement struct {
	QueryID string
	Query   string
	Calls   int64
	TotalMs float64
	parsed  *sqlparse.Statement
	base    float64
}

// loadWorkload aggregates the target's deltas over the window that ends at
// its latest observation (not at now, so a replay scores the same), one
// row per statement in query-id order. The text kept is the latest seen.
func (s *Scorer) loadWorkload(ctx context.Context, target string) ([]*statement, time.Time, error) {
	var end *time.Time
	if err := s.deps.Control.QueryRow(ctx, `/* indexpilot:scorer */
select max(window_end) from indexpilot.workload_stats where target = $1`, target).Scan(&end); err != nil {
		return nil, time.Time{}, fmt.Errorf("read workload window of %s: %w", target, err)
	}
	if end == nil {
		return nil, time.Time{}, nil
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select query_id, (array_agg(query order by window_end desc))[1], sum(calls)::bigint, sum(total_exec_time_ms)
  from indexpilot.workload_stats
 where target = $1 and window_end > $2 and window_end <= $3
 group by query_id
having sum(calls) >= $4
 order by query_id`, target, end.Add(-s.deps.Config.Scorer.Window), *end, s.deps.Config.Scorer.MinCalls)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read workload of %s: %w", target, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*statement, error) {
		st := &statement{}
		return st, r.Scan(&st.QueryID, &st.Query, &st.Calls, &st.TotalMs)
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read workload of %s: %w", target, err)
	}
	return out, end.UTC(), nil
}

// ScoreTarget computes the candidates of one target from its stored
// workload: parse, generate, price with HypoPG, then choose greedily.
func (s *Scorer) ScoreTarget(ctx context.Context, target string) ([]events.Payload, error) {
	stmts, windowEnd, err := s.loadWorkload(ctx, target)
	if err != nil || len(stmts) == 0 {
		return nil, err
	}
	pool, err := s.deps.Targets.Pool(ctx, target)
	if err != nil {
		return nil, err
	}
	cat, err := loadCatalog(ctx, pool)
	if err != nil {
		return nil, err
	}
	var inputs []candidates.Input
	skipped := 0
	for _, st := range stmts {
		parsed, err := sqlparse.Extract(st.Query, cat)
		if err != nil {
			skipped++
			continue
		}
		cat.resolve(parsed)
		st.parsed = parsed
		inputs = append(inputs, candidates.Input{QueryID: st.QueryID, Stmt: parsed})
	}
	existing := map[string][]indexdef.Existing{}
	for _, in := range inputs {
		for _, u := range in.Stmt.Tables {
			key := u.Table.Schema + "." + u.Table.Name
			if _, done := existing[key]; done || u.Table.Schema == "" {
				continue
			}
			list, err := indexdef.Load(ctx, pool, u.Table.Schema, u.Table.Name)
			if err != nil {
				return nil, err
			}
			existing[key] = list
		}
	}
	cands := candidates.Generate(inputs, existing, candidates.Options{MaxColumns: s.deps.Config.Scorer.MaxColumns})
	if len(cands) == 0 {
		s.deps.Logger.Debug("no candidates", "target", target, "statements", len(stmts), "unparsed", skipped)
		return nil, nil
	}

	engine, err := whatif.New(pool, whatif.Options{})
	if err != nil {
		return nil, err
	}
	sess, err := engine.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	if !sess.Available() {
		s.deps.Logger.Warn("hypopg is not installed in the target; no candidate can be proven", "target", target)
		return nil, nil
	}
	chosen, err := s.choose(ctx, sess, stmts, cands)
	if err != nil {
		return nil, err
	}
	s.deps.Logger.Debug("what-if", "target", target, "statements", len(stmts), "unparsed", skipped,
		"candidates", len(cands), "chosen", len(chosen), "cache", fmt.Sprintf("%+v", engine.CacheStats()))
	return s.payloads(target, windowEnd, chosen), nil
}

// scored is a candidate with its evidence.
type scored struct {
	cand      candidates.Candidate
	evidence  []events.StatementEvidence
	maxPct    float64
	sizeBytes int64
}

// choose prices every candidate alone against the statements that motivated
// it, keeps those that cut some statement's plan cost by at least the
// configured percentage, then picks greedily by calls-weighted benefit,
// re-costing against the indexes already picked so that two indexes never
// claim the same saving.
func (s *Scorer) choose(ctx context.Context, sess *whatif.Session, stmts []*statement, cands []candidates.Candidate) ([]scored, error) {
	byID := map[string]*statement{}
	for _, st := range stmts {
		byID[st.QueryID] = st
	}
	cost := func(st *statement, set []events.IndexSpec) (float64, bool, error) {
		c, err := sess.CostFingerprint(ctx, st.parsed.Fingerprint, st.Query, set)
		switch {
		case err == nil:
			return c, true, nil
		case errors.Is(err, whatif.ErrNotEvaluable), errors.Is(err, whatif.ErrRefused),
			errors.Is(err, whatif.ErrInvalidIndex), errors.Is(err, whatif.ErrTimeout):
			return 0, false, nil
		}
		return 0, false, err
	}
	minPct := s.deps.Config.Features.AutoIndexer.MinImprovementPct

	var pool []scored
	for _, c := range cands {
		sc := scored{cand: c}
		for _, id := range c.QueryIDs {
			st := byID[id]
			if st == nil || st.parsed == nil {
				continue
			}
			before, ok, err := cost(st, nil)
			if err != nil {
				return nil, err
			}
			if !ok || before <= 0 {
				continue
			}
			after, ok, err := cost(st, []events.IndexSpec{c.Spec})
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			pct := round2(100 * (before - after) / before)
			sc.evidence = append(sc.evidence, events.StatementEvidence{
				QueryID: st.QueryID, Query: st.Query, Calls: st.Calls, MeanExecTimeMs: round3(st.TotalMs / float64(st.Calls)),
				CostBefore: round2(before), CostAfter: round2(after), ImprovementPct: pct,
			})
			sc.maxPct = math.Max(sc.maxPct, pct)
		}
		if sc.maxPct >= minPct {
			pool = append(pool, sc)
		}
	}

	var chosen []scored
	var set []events.IndexSpec
	for len(chosen) < s.deps.Config.Scorer.MaxNewIndexes && len(pool) > 0 {
		best, bestBenefit := -1, 0.0
		for i, sc := range pool {
			benefit, gain := 0.0, 0.0
			for _, ev := range sc.evidence {
				st := byID[ev.QueryID]
				now, ok1, err := cost(st, set)
				if err != nil {
					return nil, err
				}
				with, ok2, err := cost(st, append(append([]events.IndexSpec(nil), set...), sc.cand.Spec))
				if err != nil {
					return nil, err
				}
				if !ok1 || !ok2 || now <= 0 {
					continue
				}
				benefit += float64(st.Calls) * (now - with)
				gain = math.Max(gain, 100*(now-with)/now)
			}
			// What the picked indexes already give leaves this one below
			// the bar: it is redundant.
			if gain < minPct || benefit <= 0 {
				continue
			}
			if best < 0 || benefit > bestBenefit*(1+1e-9) {
				best, bestBenefit = i, benefit
			}
		}
		if best < 0 {
			break
		}
		sc := pool[best]
		size, err := sess.Size(ctx, sc.cand.Spec)
		if err == nil {
			sc.sizeBytes = size
		}
		chosen = append(chosen, sc)
		set = append(set, sc.cand.Spec)
		pool = append(pool[:best], pool[best+1:]...)
	}
	sort.Slice(chosen, func(i, j int) bool { return chosen[i].cand.Spec.Key() < chosen[j].cand.Spec.Key() })
	return chosen, nil
}

func (s *Scorer) payloads(target string, windowEnd time.Time, chosen []scored) []events.Payload {
	fv := s.deps.Config.Scorer.FormulaVersion
	out := make([]events.Payload, 0, len(chosen))
	for _, sc := range chosen {
		out = append(out, &events.IndexCandidateScored{
			Target: target, CandidateID: events.CandidateID(target, sc.cand.Spec, fv), Index: sc.cand.Spec,
			FormulaVersion: fv, WhatIfMethod: WhatIfHypoPG, WindowEnd: windowEnd.Truncate(time.Microsecond),
			MaxImprovementPct: sc.maxPct, EstimatedSizeBytes: sc.sizeBytes, Statements: sc.evidence,
		})
	}
	return out
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// catalog is a target's user tables and columns plus its search_path, for
// attributing unqualified columns and resolving unqualified table names.
type catalog struct {
	path    []string
	columns map[string]map[string]bool // "schema.table" -> columns
}

func loadCatalog(ctx context.Context, pool *pgxpool.Pool) (*catalog, error) {
	c := &catalog{columns: map[string]map[string]bool{}}
	if err := pool.QueryRow(ctx, "/* indexpilot:scorer */ select current_schemas(false)::text[]").Scan(&c.path); err != nil {
		return nil, fmt.Errorf("read search_path: %w", err)
	}
	rows, err := pool.Query(ctx, `/* indexpilot:scorer */
select n.nspname, c.relname, a.attname
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'm') and a.attnum > 0 and not a.attisdropped
   and n.nspname not in ('pg_catalog', 'information_schema', 'indexpilot') and n.nspname not like 'pg_toast%'`)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, col string
		if err := rows.Scan(&schema, &table, &col); err != nil {
			return nil, fmt.Errorf("read catalog: %w", err)
		}
		k := schema + "." + table
		if c.columns[k] == nil {
			c.columns[k] = map[string]bool{}
		}
		c.columns[k][col] = true
	}
	return c, rows.Err()
}

// schemaOf resolves a table reference as the target would: a qualified
// name as is, an unqualified one through search_path. "" when unknown.
func (c *catalog) schemaOf(t sqlparse.TableRef) string {
	if t.Schema != "" {
		if _, ok := c.columns[t.Schema+"."+t.Name]; ok {
			return t.Schema
		}
		return ""
	}
	for _, s := range c.path {
		if _, ok := c.columns[s+"."+t.Name]; ok {
			return s
		}
	}
	return ""
}

// ColumnTable implements sqlparse.Catalog.
func (c *catalog) ColumnTable(cands []sqlparse.TableRef, column string) (sqlparse.TableRef, bool) {
	var found sqlparse.TableRef
	n := 0
	for _, t := range cands {
		s := c.schemaOf(t)
		if s != "" && c.columns[s+"."+t.Name][column] {
			found = t
			n++
		}
	}
	return found, n == 1
}

// resolve fills in the schema of every table of p, leaving "" for names
// that are not tables of the target (the candidate generator skips them).
func (c *catalog) resolve(p *sqlparse.Statement) {
	for i := range p.Tables {
		p.Tables[i].Table.Schema = c.schemaOf(p.Tables[i].Table)
	}
}
