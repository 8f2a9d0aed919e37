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
// the block size and, per key column, pg_stats.avg_width (or the type's
// fixed length, or 32 bytes for a variable-length column without
// statistics).
const statsSizeSQL = `/* indexpilot:scorer */
select c.reltuples::float8,
       current_setting('block_size')::int,
       count(a.attnum)::int,
       coalesce(sum(coalesce(st.avg_width, case when a.attlen > 0 then a.attlen else 32 end)), 0)::int
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  left join pg_catalog.pg_attribute a
         on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attname = any($3::text[])
  left join pg_catalog.pg_stats st
         on st.schemaname = n.nspname and st.tablename = c.relname and st.attname = a.attname and not st.inherited
 where n.nspname = $1 and c.relname = $2
 group by c.reltuples`

// StatsSize estimates the index's size from pg_class.reltuples and
// pg_stats.avg_width without HypoPG: the fallback when Available is false.
// The model is a btree at the default fill factor (90 %): leaf tuples of
// an 8-byte header plus the key widths rounded up to 8 bytes, a 4-byte line
// pointer each, about 1 % of internal pages and a metapage. It ignores
// deduplication and is rough for other methods; like Size it is meant as
// an upper bound for budgets. A table never analyzed has no row estimate
// and gives an error.
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
		width           int
	)
	keyCols := append([]string(nil), spec.Columns...)
	for _, e := range spec.Expressions {
		keyCols = append(keyCols, e.Column)
	}
	err := s.conn.QueryRow(ctx, statsSizeSQL, spec.Schema, spec.Table, keyCols).Scan(&tuples, &blockSize, &cols, &width)
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
	return modelSize(tuples*frac, blockSize, width), nil
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

// modelSize is the btree size model of StatsSize.
func modelSize(tuples float64, blockSize, keyWidth int) int64 {
	const (
		pageHeader  = 24 // PageHeaderData
		btreeOpaque = 16 // BTPageOpaqueData
		tupleHeader = 8  // IndexTupleData
		linePointer = 4  // ItemIdData
		fillFactor  = 0.9
	)
	tuple := float64((tupleHeader+keyWidth+7)/8*8 + linePointer)
	perPage := math.Floor(float64(blockSize-pageHeader-btreeOpaque) * fillFactor / tuple)
	if perPage < 1 {
		perPage = 1
	}
	leaves := math.Ceil(tuples / perPage)
	if leaves < 1 {
		leaves = 1
	}
	pages := 1 + leaves + math.Ceil(leaves/100)
	return int64(pages) * int64(blockSize)
}
