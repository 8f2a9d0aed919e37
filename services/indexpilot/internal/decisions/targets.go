package decisions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// TargetStatus is one target as `indexpilot status` shows it and
// GET /api/v1/targets returns it.
type TargetStatus struct {
	Target string `json:"target"`
	// Statements is the number of distinct statements in the retained workload.
	Statements int64 `json:"statements"`
	// LastWindow is the end of the newest retained workload window.
	LastWindow *time.Time `json:"last_window,omitempty"`
	// History names the newest first window built from the target's
	// pg_stat_statements history (events.DescribeWindow), "" when none.
	History string `json:"history,omitempty"`
	// Recommendations counts the recommendations by state.
	Recommendations map[string]int64 `json:"recommendations"`
	// BuildsPending counts the builds pending, running, or stopped by the
	// emergency stop (they resume when it ends).
	BuildsPending int64 `json:"builds_pending"`
	// Collector is the collector's health for the target; nil until a
	// collector has polled it.
	Collector *CollectorHealth `json:"collector,omitempty"`
	// Builds are the builds running now, with their progress.
	Builds []RunningBuild `json:"builds"`
	// Stages is the health of each stage for the target, in pipeline
	// order: collector, scorer, gatekeeper, executor.
	Stages []StageStatus `json:"stages"`
}

// StageStatus is one stage's health for a target: what it last did, how
// far behind it is and its last error. The collector's comes from
// collector_targets, the others' from their heartbeats in stage_health
// (and their queues).
type StageStatus struct {
	Stage string `json:"stage"`
	// State is "ok" (its latest work succeeded), "failing" (it failed
	// ConsecutiveFailures times in a row) or "never" (no record of it
	// working yet).
	State               string     `json:"state"`
	LastActivityAt      *time.Time `json:"last_activity_at,omitempty"`
	LastSuccessAt       *time.Time `json:"last_success_at,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	LastErrorAt         *time.Time `json:"last_error_at,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	// IntervalMs is the stage's rhythm: the collector's and the
	// gatekeeper's loop interval, the scorer's trigger debounce (or
	// interval), the executor's poll interval.
	IntervalMs int64 `json:"interval_ms"`
	// LagMs is how long the stage's oldest waiting work has waited beyond
	// IntervalMs at the time of reading; LagOf names that work.
	LagMs int64  `json:"lag_ms"`
	LagOf string `json:"lag_of"`
}

// Stage names, in pipeline order.
const (
	StageCollector  = "collector"
	StageScorer     = "scorer"
	StageGatekeeper = "gatekeeper"
	StageExecutor   = "executor"
)

// What each stage's lag measures (StageStatus.LagOf).
const (
	LagOfCollector  = "the last successful poll"
	LagOfScorer     = "the oldest workload window not scored yet"
	LagOfGatekeeper = "the last recheck pass"
	LagOfExecutor   = "the oldest build due and not claimed, or the last claim pass"
)

// CollectorHealth is the collector's record of its last polls of a target.
type CollectorHealth struct {
	Healthy             bool       `json:"healthy"`
	LastPollAt          *time.Time `json:"last_poll_at,omitempty"`
	LastSuccessAt       *time.Time `json:"last_success_at,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	IntervalMs          int64      `json:"interval_ms"`
	PollDBMs            float64    `json:"poll_db_ms"`
	AppStatsMode        string     `json:"app_stats_mode,omitempty"`
	AppStatsLagBytes    *int64     `json:"app_stats_lag_bytes,omitempty"`
	// LagMs is how far the last successful poll is behind the expected
	// rhythm at the time of reading (0 while polls come on time).
	LagMs int64 `json:"lag_ms"`
}

// BuildProgress is what the executor records of a running build
// (pg_stat_progress_create_index, sampled).
type BuildProgress struct {
	Table       string   `json:"table"`
	Phase       string   `json:"phase"`
	BlocksDone  int64    `json:"blocks_done"`
	BlocksTotal int64    `json:"blocks_total"`
	TuplesDone  int64    `json:"tuples_done"`
	TuplesTotal int64    `json:"tuples_total"`
	CPUPercent  *float64 `json:"cpu_pct,omitempty"`
	// Partitions is how many partitions of a partitioned table's build
	// are done; ObservedAt when the executor sampled the progress.
	Partitions int64     `json:"partitions_done,omitempty"`
	ObservedAt time.Time `json:"observed_at,omitzero"`
}

// Percent is the share done, by blocks, else by tuples; ok is false when
// neither is known.
func (p BuildProgress) Percent() (pct float64, unit string, ok bool) {
	switch {
	case p.BlocksTotal > 0:
		return 100 * float64(p.BlocksDone) / float64(p.BlocksTotal), "blocks", true
	case p.TuplesTotal > 0:
		return 100 * float64(p.TuplesDone) / float64(p.TuplesTotal), "tuples", true
	}
	return 0, "", false
}

// RunningBuild is one build in progress.
type RunningBuild struct {
	Target    string         `json:"target"`
	IndexName string         `json:"index_name"`
	ClaimedBy string         `json:"claimed_by,omitempty"`
	Attempts  int            `json:"attempts"`
	Progress  *BuildProgress `json:"progress,omitempty"`
}

// ErrNoCollectorTable means the schema predates the collector's health
// table: `indexpilot init` upgrades it.
var ErrNoCollectorTable = errors.New("collector health is not recorded yet: run indexpilot init to upgrade the schema")

// TargetStatuses reads the status of every configured target at now.
// Collector health is left nil (with no error) where the schema has no
// health table yet.
func TargetStatuses(ctx context.Context, q postgres.Querier, cfg config.Config, now time.Time) ([]TargetStatus, error) {
	builds, err := RunningBuilds(ctx, q)
	if err != nil {
		return nil, err
	}
	beats, err := stageBeats(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]TargetStatus, 0, len(cfg.Targets))
	for _, t := range cfg.Targets {
		s := TargetStatus{Target: t.Name, Recommendations: map[string]int64{}, Builds: []RunningBuild{}}
		var states []string
		var counts []int64
		var hSource *string
		var hStart, hEnd *time.Time
		err := q.QueryRow(ctx, `/* indexpilot:cli */
select (select count(distinct query_id) from indexpilot.workload_stats where target = $1),
       (select max(window_end) from indexpilot.workload_stats where target = $1),
       coalesce((select array_agg(state order by state) from (select state from indexpilot.recommendations where target = $1 group by state) s), '{}'),
       coalesce((select array_agg(n order by state) from (select state, count(*) n from indexpilot.recommendations where target = $1 group by state) s), '{}'),
       (select count(*) from indexpilot.builds where target = $1 and state in ('pending','running','stopped')),
       h.window_source, h.window_start, h.window_end
  from (select 1) one
  left join lateral (
    select window_source, min(window_start) as window_start, window_end
      from indexpilot.workload_stats
     where target = $1 and window_source like 'history:%'
     group by window_end, window_source order by window_end desc limit 1) h on true`, t.Name).
			Scan(&s.Statements, &s.LastWindow, &states, &counts, &s.BuildsPending, &hSource, &hStart, &hEnd)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", t.Name, err)
		}
		if hSource != nil && hStart != nil && hEnd != nil {
			s.History = events.DescribeWindow(*hSource, *hStart, *hEnd)
		}
		for i, st := range states {
			s.Recommendations[st] = counts[i]
		}
		s.Collector, err = collectorHealth(ctx, q, t.Name, now)
		if err != nil && !errors.Is(err, ErrNoCollectorTable) {
			return nil, err
		}
		for _, b := range builds {
			if b.Target == t.Name {
				s.Builds = append(s.Builds, b)
			}
		}
		if s.Stages, err = stageStatuses(ctx, q, t.Name, s.Collector, beats, now); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// collectorHealth reads the collector's health of target; nil when no
// collector has polled it yet.
func collectorHealth(ctx context.Context, q postgres.Querier, target string, now time.Time) (*CollectorHealth, error) {
	var h CollectorHealth
	err := q.QueryRow(ctx, `/* indexpilot:cli */
select healthy, last_poll_at, last_success_at, last_error, consecutive_failures, interval_ms, poll_db_ms,
       app_stats_mode, app_stats_lag_bytes
  from indexpilot.collector_targets where target = $1`, target).
		Scan(&h.Healthy, &h.LastPollAt, &h.LastSuccessAt, &h.LastError, &h.ConsecutiveFailures, &h.IntervalMs, &h.PollDBMs,
			&h.AppStatsMode, &h.AppStatsLagBytes)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case postgres.SQLState(err) == "42P01":
		return nil, ErrNoCollectorTable
	case err != nil:
		return nil, fmt.Errorf("collector health of %s: %w", target, err)
	}
	if h.LastSuccessAt != nil {
		behind := now.Sub(*h.LastSuccessAt) - time.Duration(h.IntervalMs)*time.Millisecond
		h.LagMs = max(behind, 0).Milliseconds()
	}
	return &h, nil
}

// CollectorHealths reads the collector's health of every configured
// target, in order; an entry is nil for a target no collector has polled.
// ErrNoCollectorTable when the schema has no health table yet.
func CollectorHealths(ctx context.Context, q postgres.Querier, cfg config.Config, now time.Time) ([]*CollectorHealth, error) {
	out := make([]*CollectorHealth, 0, len(cfg.Targets))
	for _, t := range cfg.Targets {
		h, err := collectorHealth(ctx, q, t.Name, now)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// RunningBuilds reads the builds running now, by target and index.
func RunningBuilds(ctx context.Context, q postgres.Querier) ([]RunningBuild, error) {
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select target, index_name, coalesce(claimed_by, ''), attempts, progress
  from indexpilot.builds where state = 'running' order by target, index_name`)
	if err != nil {
		return nil, fmt.Errorf("read running builds: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RunningBuild, error) {
		var r RunningBuild
		err := row.Scan(&r.Target, &r.IndexName, &r.ClaimedBy, &r.Attempts, &r.Progress)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read running builds: %w", err)
	}
	return list, nil
}

// stageBeat is one stage_health row.
type stageBeat struct {
	lastRun, lastSuccess, lastErrorAt, position *time.Time
	lastError                                   string
	failures                                    int
	intervalMs                                  int64
}

// heartbeatEvery mirrors metadata.BeatEvery: a healthy stage refreshes its
// row at most this often, so a loop's lag allows for it.
const heartbeatEvery = 5 * time.Second

// stageBeats reads every stage_health row by stage and target; none (no
// error) on a schema without the table.
func stageBeats(ctx context.Context, q postgres.Querier) (map[[2]string]stageBeat, error) {
	type row struct {
		stage, target string
		b             stageBeat
	}
	rows, err := q.Query(ctx, `/* indexpilot:cli */
select stage, target, last_run_at, last_success_at, last_error, last_error_at, consecutive_failures, interval_ms, position
  from indexpilot.stage_health`)
	var list []row
	if err == nil {
		list, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.stage, &x.target, &x.b.lastRun, &x.b.lastSuccess, &x.b.lastError, &x.b.lastErrorAt, &x.b.failures,
				&x.b.intervalMs, &x.b.position)
			return x, err
		})
	}
	switch {
	case postgres.SQLState(err) == "42P01":
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read stage health: %w", err)
	}
	out := make(map[[2]string]stageBeat, len(list))
	for _, x := range list {
		out[[2]string{x.stage, x.target}] = x.b
	}
	return out, nil
}

// stageStatuses builds the four stages' health for target.
func stageStatuses(ctx context.Context, q postgres.Querier, target string, col *CollectorHealth, beats map[[2]string]stageBeat,
	now time.Time) ([]StageStatus, error) {
	c := StageStatus{Stage: StageCollector, State: "never", LagOf: LagOfCollector}
	if col != nil {
		c.State = "ok"
		if !col.Healthy {
			c.State = "failing"
		}
		c.LastActivityAt, c.LastSuccessAt, c.LastError = col.LastPollAt, col.LastSuccessAt, col.LastError
		c.ConsecutiveFailures, c.IntervalMs, c.LagMs = col.ConsecutiveFailures, col.IntervalMs, col.LagMs
	}
	sc := fromBeats(StageScorer, LagOfScorer, beats[[2]string{StageScorer, target}])
	gk := fromBeats(StageGatekeeper, LagOfGatekeeper, beats[[2]string{StageGatekeeper, target}], beats[[2]string{StageGatekeeper, ""}])
	ex := fromBeats(StageExecutor, LagOfExecutor, beats[[2]string{StageExecutor, target}], beats[[2]string{StageExecutor, ""}])

	// The work each stage has waiting: workload windows newer than the
	// scorer's last scored one, builds due and not claimed.
	var scoredThrough *time.Time
	if b, ok := beats[[2]string{StageScorer, target}]; ok {
		scoredThrough = b.position
	}
	var oldestUnscored, oldestDue *time.Time
	err := q.QueryRow(ctx, `/* indexpilot:cli */
select (select min(window_end) from indexpilot.workload_stats
         where target = $1 and ($2::timestamptz is null or window_end > $2)),
       (select min(not_before) from indexpilot.builds where target = $1 and state = 'pending' and not_before <= $3)`,
		target, scoredThrough, now).Scan(&oldestUnscored, &oldestDue)
	if err != nil {
		return nil, fmt.Errorf("stage lag of %s: %w", target, err)
	}
	if oldestUnscored != nil {
		sc.LagMs = behind(now, *oldestUnscored, sc.IntervalMs)
	}
	// The loops: how far their last successful pass is behind.
	if b, ok := beats[[2]string{StageGatekeeper, ""}]; ok && b.lastSuccess != nil {
		gk.LagMs = behind(now, *b.lastSuccess, max(b.intervalMs, heartbeatEvery.Milliseconds()))
	}
	if b, ok := beats[[2]string{StageExecutor, ""}]; ok && b.lastSuccess != nil {
		ex.LagMs = behind(now, *b.lastSuccess, max(b.intervalMs, heartbeatEvery.Milliseconds()))
	}
	if oldestDue != nil {
		ex.LagMs = max(ex.LagMs, behind(now, *oldestDue, ex.IntervalMs))
	}
	return []StageStatus{c, sc, gk, ex}, nil
}

// behind is how long since at, beyond intervalMs, in milliseconds (0 when
// not beyond).
func behind(now, at time.Time, intervalMs int64) int64 {
	return max(now.Sub(at)-time.Duration(intervalMs)*time.Millisecond, 0).Milliseconds()
}

// fromBeats is a stage's status from its heartbeat rows: the target's own
// and, for a stage with a loop over every target, the loop's. The latest
// activity and error of the two count; the stage is failing when the
// latest beat of either failed.
func fromBeats(stage, lagOf string, rows ...stageBeat) StageStatus {
	s := StageStatus{Stage: stage, State: "never", LagOf: lagOf}
	later := func(a, b *time.Time) *time.Time {
		if a == nil || (b != nil && b.After(*a)) {
			return b
		}
		return a
	}
	for _, b := range rows {
		if b.lastRun == nil {
			continue
		}
		if s.State == "never" {
			s.State = "ok"
		}
		if b.failures > 0 {
			s.State = "failing"
			s.ConsecutiveFailures = max(s.ConsecutiveFailures, b.failures)
		}
		s.LastActivityAt = later(s.LastActivityAt, b.lastRun)
		s.LastSuccessAt = later(s.LastSuccessAt, b.lastSuccess)
		if b.lastErrorAt != nil && (s.LastErrorAt == nil || b.lastErrorAt.After(*s.LastErrorAt)) {
			s.LastErrorAt, s.LastError = b.lastErrorAt, b.lastError
		}
		s.IntervalMs = max(s.IntervalMs, b.intervalMs)
	}
	return s
}
