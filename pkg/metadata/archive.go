package metadata

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ArchiveBatch is how many mutation_log rows one statement of ArchiveLog
// moves.
const ArchiveBatch = 10000

// ArchiveLog moves the mutation_log rows that occurred before cutoff into
// mutation_log_archive, unchanged, in one transaction (batch rows per
// statement; batch <= 0 means ArchiveBatch), and returns how many moved.
// With dryRun it only counts them. It is the one sanctioned remover of
// mutation_log rows.
func ArchiveLog(ctx context.Context, pool *pgxpool.Pool, cutoff time.Time, batch int, dryRun bool) (int64, error) {
	if batch <= 0 {
		batch = ArchiveBatch
	}
	if dryRun {
		var n int64
		err := pool.QueryRow(ctx, `/* indexpilot:archive */
select count(*) from indexpilot.mutation_log where occurred_at < $1`, cutoff).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("count mutation_log rows to archive: %w", err)
		}
		return n, nil
	}
	var moved int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for {
			tag, err := tx.Exec(ctx, `/* indexpilot:archive */
with moved as (
  delete from indexpilot.mutation_log
   where id in (select id from indexpilot.mutation_log where occurred_at < $1 order by id limit $2)
  returning id, occurred_at, stage, action, outcome, target, tenant_id, schema_name, table_name, fields,
            index_name, ddl, reason, evidence, event_id, candidate_id, recommendation_id, parent_id)
insert into indexpilot.mutation_log_archive
  (id, occurred_at, stage, action, outcome, target, tenant_id, schema_name, table_name, fields,
   index_name, ddl, reason, evidence, event_id, candidate_id, recommendation_id, parent_id)
select * from moved`, cutoff, batch)
			if err != nil {
				return err
			}
			moved += tag.RowsAffected()
			if tag.RowsAffected() < int64(batch) {
				return nil
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("archive mutation_log: %w", err)
	}
	return moved, nil
}
