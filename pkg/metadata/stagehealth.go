package metadata

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// BeatEvery is how often a healthy stage refreshes its stage_health row at
// most: a success that follows a success less than BeatEvery ago is not
// written, a failure or a recovery always is. Readers allow for it when
// they derive a lag from last_success_at.
const BeatEvery = 5 * time.Second

// StageHealth writes a stage's heartbeats to indexpilot.stage_health (one
// row per stage and target; target "" is the stage's loop over every
// target). Its failures are logged once, never returned: a control
// database that cannot take a heartbeat must not stop the stage. A nil
// *StageHealth does nothing.
type StageHealth struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	stage    string
	instance string

	mu      sync.Mutex
	warned  bool
	written map[string]beat
}

// beat is the last heartbeat written for a target.
type beat struct {
	at     time.Time
	failed bool
}

// NewStageHealth returns the heartbeat writer of stage; instance names the
// process in the row (host/pid).
func NewStageHealth(pool *pgxpool.Pool, log *slog.Logger, stage string) *StageHealth {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	return &StageHealth{pool: pool, log: log, stage: stage, instance: fmt.Sprintf("%s/%d", host, os.Getpid()),
		written: map[string]beat{}}
}

// Beat records that the stage worked on target at now: successfully when
// err is nil, else failing with err's text (which must carry no secret;
// the stages' errors name no DSN). interval is the stage's rhythm for that
// work, position the newest input handled (nil when it has no time).
func (h *StageHealth) Beat(ctx context.Context, target string, now time.Time, interval time.Duration, position *time.Time, err error) {
	if h == nil || h.pool == nil {
		return
	}
	failed := err != nil
	h.mu.Lock()
	last, seen := h.written[target]
	if seen && !failed && !last.failed && now.Sub(last.at) < BeatEvery && position == nil {
		h.mu.Unlock()
		return
	}
	h.written[target] = beat{at: now, failed: failed}
	h.mu.Unlock()
	msg := ""
	if failed {
		msg = err.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, xerr := h.pool.Exec(ctx, postgres.Marker(h.stage)+`insert into indexpilot.stage_health as h
  (stage, target, instance, last_run_at, last_success_at, last_error, last_error_at, consecutive_failures, interval_ms, position)
values ($1, $2, $3, $4, case when $5 then null else $4::timestamptz end, $6, case when $5 then $4::timestamptz end,
        case when $5 then 1 else 0 end, $7, $8)
on conflict (stage, target) do update set
  instance = excluded.instance, last_run_at = excluded.last_run_at,
  last_success_at = coalesce(excluded.last_success_at, h.last_success_at),
  last_error = case when $5 then excluded.last_error else h.last_error end,
  last_error_at = coalesce(excluded.last_error_at, h.last_error_at),
  consecutive_failures = case when $5 then h.consecutive_failures + 1 else 0 end,
  interval_ms = excluded.interval_ms,
  position = coalesce(excluded.position, h.position)`,
		h.stage, target, h.instance, now, failed, msg, interval.Milliseconds(), position)
	if xerr != nil {
		h.mu.Lock()
		delete(h.written, target)
		warned := h.warned
		h.warned = true
		h.mu.Unlock()
		if !warned && ctx.Err() == nil {
			h.log.Warn("cannot record stage health in the control database (run indexpilot init)", "stage", h.stage,
				"error", postgres.Describe(xerr))
		}
	}
}
