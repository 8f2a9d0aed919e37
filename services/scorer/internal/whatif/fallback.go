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
	return modelSize(tuples, blockSize, width), nil
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
