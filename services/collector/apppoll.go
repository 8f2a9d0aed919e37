package collector

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/indexpilot/indexpilot/events"
)

// pollBatch is the most rows one read of indexpilot.query_stats returns.
const pollBatch = 5000

// pollSQL reads the rows after the watermark, in id order, that were
// inserted by transactions older than every transaction still running: a
// row whose id is lower but whose transaction has not committed yet can
// then not appear behind the watermark later (see pollOnce for the rest).
const pollSQL = `select id, recorded_at, tenant_id, table_name, field_name, query_type, duration_ms
  from indexpilot.query_stats
 where id > $1
   and age(xmin) > age((pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text::xid)
 order by id
 limit $2`

// pollOnce publishes the rows of indexpilot.query_stats written since the
// watermark and then moves the watermark (in the control database, so
// that a restart resumes where it stopped; in memory without one). Rows
// are published before the watermark moves: a crash in between publishes
// them again with the same event ids, never loses them.
//
// Ids are taken from a sequence when a row is inserted, not when it
// commits, so a gap in the ids may be a transaction still in flight. A gap
// holds the watermark back for two poll intervals; after that it is taken
// for a rolled-back insert and skipped.
func (a *appStats) pollOnce(ctx context.Context, db string) error {
	pool, _, err := a.conn.get(ctx)
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	wm, err := a.loadWatermark(ctx, db)
	if err != nil {
		return err
	}
	grace := 2 * a.settings.AppStatsPollInterval
	for {
		qctx, cancel := context.WithTimeout(ctx, a.settings.QueryTimeout)
		rows, err := pool.Query(qctx, marker+pollSQL, wm, pollBatch)
		if err != nil {
			cancel()
			return fmt.Errorf("read indexpilot.query_stats: %w", err)
		}
		var (
			evs  []*events.AppStatObserved
			last = wm
			n    int
		)
		stopped := false
		for rows.Next() {
			n++
			var (
				id  int64
				ev  = &events.AppStatObserved{Target: a.target.Name}
				rec time.Time
			)
			if err := rows.Scan(&id, &rec, &ev.TenantID, &ev.Table, &ev.Field, &ev.QueryType, &ev.DurationMs); err != nil {
				rows.Close()
				cancel()
				return fmt.Errorf("scan indexpilot.query_stats: %w", err)
			}
			if stopped {
				continue
			}
			if id > last+1 {
				first, seen := a.gaps[last+1]
				if !seen {
					a.gaps[last+1] = time.Now()
					stopped = true
					continue
				}
				if time.Since(first) < grace {
					stopped = true
					continue
				}
				delete(a.gaps, last+1)
			}
			ev.RowID = strconv.FormatInt(id, 10)
			ev.RecordedAt = rec.UTC()
			evs = append(evs, ev)
			last = id
		}
		err = rows.Err()
		rows.Close()
		cancel()
		if err != nil {
			return fmt.Errorf("read indexpilot.query_stats: %w", err)
		}
		if err := a.publish(ctx, evs); err != nil {
			return err
		}
		if last > wm {
			if err := a.saveWatermark(ctx, db, last); err != nil {
				return err
			}
			wm = last
		}
		if n < pollBatch || stopped {
			return nil
		}
	}
}

func (a *appStats) loadWatermark(ctx context.Context, db string) (int64, error) {
	if a.d.Control == nil {
		return a.watermark, nil
	}
	var wm int64
	err := a.d.Control.QueryRow(ctx, marker+`select coalesce((select last_id from indexpilot.app_stats_watermarks where target = $1 and source_db = $2), 0)`,
		a.target.Name, db).Scan(&wm)
	if err != nil {
		return 0, fmt.Errorf("read app stats watermark: %w", err)
	}
	return wm, nil
}

func (a *appStats) saveWatermark(ctx context.Context, db string, id int64) error {
	if a.d.Control == nil {
		a.watermark = id
		return nil
	}
	_, err := a.d.Control.Exec(ctx, marker+`insert into indexpilot.app_stats_watermarks (target, source_db, last_id) values ($1, $2, $3)
on conflict (target, source_db) do update set last_id = greatest(indexpilot.app_stats_watermarks.last_id, excluded.last_id), updated_at = now()`,
		a.target.Name, db, id)
	if err != nil {
		return fmt.Errorf("save app stats watermark: %w", err)
	}
	return nil
}
