package whatif

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
)

// statsSizeSQL reads what the size model needs: the table's row estimate,
// the block size and, per key column in the order asked, pg_stats.avg_width
// (or the type's fixed length, or 32 bytes for a variable-length column
// without statistics), pg_stats.n_distinct (0: unknown) and whether btree
// deduplication applies to the type (not to numeric, float4/8, jsonb or
// container types, whose equal values may differ in their bytes).
const statsSizeSQL = `/* indexpilot:scorer */
select c.reltuples::float8,
       current_setting('block_size')::int,
       count(a.attnum)::int,
       coalesce(array_agg(coalesce(st.avg_width, case when a.attlen > 0 then a.attlen else 32 end)::float8 order by k.ord)
                filter (where a.attnum is not null), '{}'),
       coalesce(array_agg(coalesce(st.n_distinct, 0)::float8 order by k.ord) filter (where a.attnum is not null), '{}'),
       coalesce(bool_and(ty.typname not in ('numeric', 'float4', 'float8', 'jsonb') and ty.typcategory <> 'A'
                         and ty.typtype not in ('c', 'r', 'm')) filter (where a.attnum is not null), true)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  cross join unnest($3::text[]) with ordinality k(name, ord)
  left join pg_catalog.pg_attribute a
         on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attname = k.name
  left join pg_catalog.pg_type ty on ty.oid = a.atttypid
  left join pg_catalog.pg_stats st
         on st.schemaname = n.nspname and st.tablename = c.relname and st.attname = a.attname and not st.inherited
 where n.nspname = $1 and c.relname = $2
 group by c.reltuples`

// StatsSize estimates the index's size from pg_class.reltuples and
// pg_stats (avg_width, n_distinct) without HypoPG. It is also the scorer's
// size model when HypoPG is there (hypopg_relation_size ignores
// deduplication and overstates btrees): see btreeSize. A table never
// analyzed has no row estimate and gives an error.
func (s *Session) StatsSize(ctx context.Context, spec events.IndexSpec) (int64, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if err := indexdef.Validate(spec); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
	}
	var (
		tuples          float64
		blockSize, cols int
		widths, nd      []float64
		dedup           bool
	)
	keyCols := append([]string(nil), spec.Columns...)
	for _, e := range spec.Expressions {
		keyCols = append(keyCols, e.Column)
	}
	err := s.conn.QueryRow(ctx, statsSizeSQL, spec.Schema, spec.Table, keyCols).Scan(&tuples, &blockSize, &cols, &widths, &nd, &dedup)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("%w: table %s does not exist", ErrInvalidIndex, spec.QualifiedTable())
	case err != nil:
		return 0, classify("read size statistics of "+spec.QualifiedTable(), err, nil)
	case cols != len(keyCols):
		return 0, fmt.Errorf("%w: %s lacks a column of the index", ErrInvalidIndex, spec.QualifiedTable())
	case tuples < 0:
		return 0, fmt.Errorf("estimate size of index on %s: table has no statistics (never analyzed)", spec.QualifiedTable())
	}
	frac, err := s.PredicateFraction(ctx, spec)
	if err != nil {
		return 0, err
	}
	rows := tuples * frac
	// Distinct keys: the product of the columns' distinct counts (taken
	// as independent), at most one per row; unknown means all distinct.
	distinct := 1.0
	for _, d := range nd {
		switch {
		case d > 0:
			distinct *= d
		case d < 0:
			distinct *= -d * tuples
		default:
			distinct = math.Inf(1)
		}
	}
	if !dedup || spec.Method != "" && spec.Method != "btree" {
		distinct = math.Inf(1)
	}
	width := 0
	for _, w := range widths {
		width += int(math.Ceil(w))
	}
	return btreeSize(rows, math.Min(distinct, rows), blockSize, width), nil
}

// predicateStatsSQL reads the statistics of the column of a partial
// index's condition; the most common values as text ({f,t} for booleans).
const predicateStatsSQL = `/* indexpilot:scorer */
select null_frac::float8, coalesce(most_common_vals::text::text[], '{}'), coalesce(most_common_freqs::float8[], '{}')
  from pg_catalog.pg_stats
 where schemaname = $1 and tablename = $2 and attname = $3 and not inherited`

// PredicateFraction estimates the share of the table's rows a partial
// index on spec holds, from pg_stats of the predicate's column: null_frac
// for IS NULL, the frequency of true or false for a boolean test. 1 for a
// full index, a predicate it cannot read, or a column without statistics
// (an upper bound, like the sizes).
func (s *Session) PredicateFraction(ctx context.Context, spec events.IndexSpec) (float64, error) {
	if spec.Predicate == "" {
		return 1, nil
	}
	c, ok := indexdef.ParseCondition(spec.Predicate)
	if !ok {
		return 1, nil
	}
	if err := s.usable(); err != nil {
		return 0, err
	}
	var (
		nullFrac float64
		vals     []string
		freqs    []float64
	)
	err := s.conn.QueryRow(ctx, predicateStatsSQL, spec.Schema, spec.Table, c.Column).Scan(&nullFrac, &vals, &freqs)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 1, nil
	case err != nil:
		return 0, classify("read statistics of "+spec.QualifiedTable()+"."+c.Column, err, nil)
	}
	return conditionFraction(c.Test, nullFrac, vals, freqs), nil
}

// conditionFraction is the share of rows that pass test, given the
// column's null fraction and most common values.
func conditionFraction(test indexdef.Test, nullFrac float64, vals []string, freqs []float64) float64 {
	freq := func(v string) (float64, bool) {
		for i, x := range vals {
			if x == v && i < len(freqs) {
				return freqs[i], true
			}
		}
		return 0, false
	}
	boolean := func(v, other string) float64 {
		if f, ok := freq(v); ok {
			return f
		}
		if f, ok := freq(other); ok {
			return 1 - nullFrac - f
		}
		return (1 - nullFrac) / 2
	}
	var f float64
	switch test {
	case indexdef.TestIsNull:
		f = nullFrac
	case indexdef.TestIsNotNull:
		f = 1 - nullFrac
	case indexdef.TestTrue, indexdef.TestIsTrue:
		f = boolean("t", "f")
	case indexdef.TestFalse, indexdef.TestIsFalse:
		f = boolean("f", "t")
	default:
		return 1
	}
	return math.Min(math.Max(f, 0), 1)
}

// btreeSize is the size model of a freshly built btree (CREATE INDEX)
// of rows entries over distinct keys of keyWidth bytes:
//
//   - a leaf entry is an 8-byte tuple header plus the key, MAXALIGNed, and
//     a 4-byte line pointer; leaves are filled to the default fill factor
//     (90 %);
//   - deduplication (PostgreSQL 13+): when a key repeats (rows/distinct
//     ≥ 2 on average) its entries merge into posting-list tuples — one
//     header and key, then a 6-byte heap pointer per row, MAXALIGNed —
//     each at most 1/10 of a page (the build's limit);
//   - internal pages hold one pivot (header and key) per child page, then
//     the metapage.
func btreeSize(rows, distinct float64, blockSize, keyWidth int) int64 {
	const (
		pageHeader  = 24 // PageHeaderData
		btreeOpaque = 16 // BTPageOpaqueData
		tupleHeader = 8  // IndexTupleData
		linePointer = 4  // ItemIdData
		heapPointer = 6  // ItemPointerData
		fillFactor  = 0.9
		// internalFill: pivots are written to 70 % of internal pages.
		internalFill = 0.7
	)
	maxalign := func(n float64) float64 { return math.Ceil(n/8) * 8 }
	usable := float64(blockSize - pageHeader - btreeOpaque)
	key := maxalign(float64(tupleHeader + keyWidth))
	var leafBytes float64
	perKey := rows / math.Max(distinct, 1)
	if perKey >= 2 {
		// Posting lists of at most maxTIDs heap pointers each.
		maxPosting := math.Floor(float64(blockSize)*0.1/8)*8 - linePointer
		maxTIDs := math.Max(math.Floor((maxPosting-key)/heapPointer), 2)
		postings := math.Ceil(perKey / maxTIDs)
		perPosting := perKey / postings
		leafBytes = distinct * postings * (maxalign(key+perPosting*heapPointer) + linePointer)
	} else {
		leafBytes = rows * (key + linePointer)
	}
	leaves := math.Max(math.Ceil(leafBytes/(usable*fillFactor)), 1)
	pages := 1.0 // metapage
	level := leaves
	for {
		pages += level
		if level <= 1 {
			break
		}
		level = math.Ceil(level * (key + linePointer) / (usable * internalFill))
	}
	return int64(pages) * int64(blockSize)
}
