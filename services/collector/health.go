package collector

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// healthWriter records each target's health in
// indexpilot.collector_targets of the control database. Without a control
// pool it does nothing. Its failures are logged once, never returned: a
// broken control database must not stop collection.
type healthWriter struct {
	control *pgxpool.Pool
	log     *slog.Logger
	mu      sync.Mutex
	warned  bool
}

func (h *healthWriter) warn(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.warned {
		return
	}
	h.warned = true
	h.log.Warn("cannot record collector health in the control database (run indexpilot init)", "error", postgres.Describe(err))
}

func (h *healthWriter) exec(sql string, args ...any) {
	if h.control == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.control.Exec(ctx, sql, args...); err != nil {
		h.warn(err)
	}
}

// poll records the outcome of one poll.
func (h *healthWriter) poll(target string, at time.Time, interval time.Duration, dbTime time.Duration, failures int, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
	}
	h.exec(marker+`insert into indexpilot.collector_targets as c
  (target, healthy, last_poll_at, last_success_at, last_error, consecutive_failures, interval_ms, poll_db_ms, updated_at)
values ($1, $2, $3, case when $2 then $3::timestamptz end, $4, $5, $6, $7, now())
on conflict (target) do update set
  healthy = excluded.healthy, last_poll_at = excluded.last_poll_at,
  last_success_at = coalesce(excluded.last_success_at, c.last_success_at),
  last_error = excluded.last_error, consecutive_failures = excluded.consecutive_failures,
  interval_ms = excluded.interval_ms, poll_db_ms = excluded.poll_db_ms, updated_at = now()`,
		target, err == nil, at, msg, failures, interval.Milliseconds(), float64(dbTime.Microseconds())/1000)
}

// appStats records how the target's app-fed statistics are read: mode is
// "replication", "poll", "off", "not installed" or "failing"; lagBytes is
// nil when unknown.
func (h *healthWriter) appStats(target, mode, detail string, lagBytes *int64) {
	if len(detail) > 500 {
		detail = detail[:500]
	}
	h.exec(marker+`insert into indexpilot.collector_targets as c (target, healthy, app_stats_mode, app_stats_detail, app_stats_lag_bytes, app_stats_at)
values ($1, true, $2, $3, $4, now())
on conflict (target) do update set
  app_stats_mode = excluded.app_stats_mode, app_stats_detail = excluded.app_stats_detail,
  app_stats_lag_bytes = excluded.app_stats_lag_bytes, app_stats_at = now(), updated_at = now()`,
		target, mode, detail, lagBytes)
}

// forget deletes the row of a target that left the configuration.
func (h *healthWriter) forget(target string) {
	h.exec(marker+"delete from indexpilot.collector_targets where target = $1", target)
}
