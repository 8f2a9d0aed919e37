package adapters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// The health gauges, read from the control database every
// adapters.health_interval by PollHealth (one poller for every adapter).
const (
	// MetricMutationLogRows is the planner's estimate of mutation_log's
	// rows (pg_class.reltuples, 0 before the first ANALYZE): database.
	MetricMutationLogRows = "mutation_log_rows"
	// MetricMutationLogBytes is mutation_log's size with its indexes and
	// TOAST (pg_total_relation_size): database.
	MetricMutationLogBytes = "mutation_log_bytes"
	// MetricMutationLogOldest is the age in seconds of mutation_log's
	// oldest row (0 when empty): database. `indexpilot archive` lowers it.
	MetricMutationLogOldest = "mutation_log_oldest_age_seconds"
	// MetricBuildsFailed24h is the number of failed build attempts the
	// executor logged in the last 24 hours: target.
	MetricBuildsFailed24h = "builds_failed_24h"
	// MetricBuildsReverted24h is the number of indexes dropped after
	// validation in the last 24 hours: target.
	MetricBuildsReverted24h = "builds_reverted_24h"
	// MetricPollAge is the age in seconds of the collector's last
	// successful poll of a target (since the adapters started polling when
	// the target never had one): target.
	MetricPollAge = "collector_last_success_age_seconds"
	// MetricPollInterval is the collector's poll interval of a target in
	// seconds, for rules in units of intervals: target.
	MetricPollInterval = "collector_poll_interval_seconds"
	// MetricBypassActive is 1 for every bypass switch that disables
	// something now (configuration or run time), 0 once it no longer does:
	// level, name.
	MetricBypassActive = "bypass_active"
	// MetricEmergencyStop is 1 while all DDL is halted (the emergency stop
	// or the system level), else 0.
	MetricEmergencyStop = "emergency_stop"
)

// Mutation-log rows the 24-hour build gauges count: the executor's failed
// build attempts and its reverts (services/executor writes them).
const (
	logActionBuild, logOutcomeFailed    = "build", "failed"
	logActionRevert, logOutcomeReverted = "revert", "reverted"
)

// Health is one reading of the health gauges.
type Health struct {
	Database      string
	LogRows       float64
	LogBytes      float64
	LogOldestAge  float64
	Failed24h     map[string]int64 // by target
	Reverted24h   map[string]int64 // by target
	PollAge       map[string]float64
	PollInterval  map[string]float64
	Bypass        []bypass.Switch // the active switches
	EmergencyStop bool
}

// ReadHealth reads the health gauges from the control database: catalog
// estimates for mutation_log's size, its occurred_at index for the oldest
// row and the last 24 hours, one row per target of collector_targets and
// the bypass switches. Targets configured in cfg but never polled, and
// targets without failed builds or reverts, get a value too. started is
// when polling began (the age of a target that never had a successful
// poll counts from it).
func ReadHealth(ctx context.Context, control *pgxpool.Pool, cfg config.Config, started time.Time) (Health, error) {
	h := Health{Failed24h: map[string]int64{}, Reverted24h: map[string]int64{},
		PollAge: map[string]float64{}, PollInterval: map[string]float64{}}
	var now time.Time
	var oldest *time.Time
	err := control.QueryRow(ctx, `/* indexpilot:adapters */
select current_database(), now(), greatest(c.reltuples, 0)::float8, pg_total_relation_size(c.oid)::float8,
       (select min(occurred_at) from indexpilot.mutation_log)
  from pg_class c where c.oid = 'indexpilot.mutation_log'::regclass`).Scan(&h.Database, &now, &h.LogRows, &h.LogBytes, &oldest)
	if err != nil {
		return Health{}, fmt.Errorf("read mutation_log size: %w", err)
	}
	if oldest != nil {
		h.LogOldestAge = max(now.Sub(*oldest).Seconds(), 0)
	}

	for _, t := range cfg.Targets {
		h.Failed24h[t.Name], h.Reverted24h[t.Name] = 0, 0
		h.PollAge[t.Name] = max(now.Sub(started).Seconds(), 0)
	}
	rows, err := control.Query(ctx, `/* indexpilot:adapters */
select coalesce(target, ''), action, count(*) from indexpilot.mutation_log
 where occurred_at > now() - interval '24 hours'
   and ((action = $1 and outcome = $2) or (action = $3 and outcome = $4))
 group by 1, 2`, logActionBuild, logOutcomeFailed, logActionRevert, logOutcomeReverted)
	if err != nil {
		return Health{}, fmt.Errorf("read recent builds: %w", err)
	}
	var target, action string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&target, &action, &n}, func() error {
		if action == logActionBuild {
			h.Failed24h[target] = n
		} else {
			h.Reverted24h[target] = n
		}
		return nil
	})
	if err != nil {
		return Health{}, fmt.Errorf("read recent builds: %w", err)
	}

	rows, err = control.Query(ctx, `/* indexpilot:adapters */
select target, last_success_at, interval_ms from indexpilot.collector_targets`)
	if err != nil {
		return Health{}, fmt.Errorf("read collector health: %w", err)
	}
	var last *time.Time
	var intervalMs int64
	_, err = pgx.ForEachRow(rows, []any{&target, &last, &intervalMs}, func() error {
		if last != nil {
			h.PollAge[target] = max(now.Sub(*last).Seconds(), 0)
		} else if _, ok := h.PollAge[target]; !ok {
			h.PollAge[target] = max(now.Sub(started).Seconds(), 0)
		}
		h.PollInterval[target] = float64(intervalMs) / 1000
		return nil
	})
	if err != nil {
		return Health{}, fmt.Errorf("read collector health: %w", err)
	}

	runtime, err := bypass.LoadRuntime(ctx, control)
	if err != nil {
		return Health{}, err
	}
	for _, s := range append(bypass.FromConfig(cfg.Features.Bypass, started), runtime...) {
		if !s.Active(now) {
			continue
		}
		h.Bypass = append(h.Bypass, s)
		if s.Level == bypass.LevelEmergency || s.Level == bypass.LevelSystem {
			h.EmergencyStop = true
		}
	}
	return h, nil
}

// PollHealth reads the health gauges (ReadHealth) every interval until ctx
// ends and sets them on every sink. A label set that disappears (a bypass
// switch turned back on, a target removed) is set to zero.
func PollHealth(ctx context.Context, control *pgxpool.Pool, cfg config.Config, interval time.Duration, sinks []Sink, onErr func(error)) {
	started := time.Now()
	var last map[gaugeKey]bool
	repeat(ctx, interval, func() {
		h, err := ReadHealth(ctx, control, cfg, started)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) && onErr != nil {
				onErr(err)
			}
			return
		}
		now := h.gauges()
		for k := range last {
			if _, ok := now[k]; !ok {
				for _, s := range sinks {
					s.Gauge(ctx, k.name, 0, k.tags())
				}
			}
		}
		last = map[gaugeKey]bool{}
		for k, v := range now {
			for _, s := range sinks {
				s.Gauge(ctx, k.name, v, k.tags())
			}
			last[k] = true
		}
	})
}

// gaugeKey is a gauge name with up to two labels.
type gaugeKey struct{ name, k1, v1, k2, v2 string }

func (k gaugeKey) tags() []Tag {
	var out []Tag
	if k.k1 != "" {
		out = append(out, Tag{k.k1, k.v1})
	}
	if k.k2 != "" {
		out = append(out, Tag{k.k2, k.v2})
	}
	return out
}

// gauges lists every value of h by gauge and labels.
func (h Health) gauges() map[gaugeKey]float64 {
	out := map[gaugeKey]float64{
		{name: MetricMutationLogRows, k1: "database", v1: h.Database}:   h.LogRows,
		{name: MetricMutationLogBytes, k1: "database", v1: h.Database}:  h.LogBytes,
		{name: MetricMutationLogOldest, k1: "database", v1: h.Database}: h.LogOldestAge,
		{name: MetricEmergencyStop}:                                     0,
	}
	if h.EmergencyStop {
		out[gaugeKey{name: MetricEmergencyStop}] = 1
	}
	for t, n := range h.Failed24h {
		out[gaugeKey{name: MetricBuildsFailed24h, k1: "target", v1: t}] = float64(n)
	}
	for t, n := range h.Reverted24h {
		out[gaugeKey{name: MetricBuildsReverted24h, k1: "target", v1: t}] = float64(n)
	}
	for t, v := range h.PollAge {
		out[gaugeKey{name: MetricPollAge, k1: "target", v1: t}] = v
	}
	for t, v := range h.PollInterval {
		out[gaugeKey{name: MetricPollInterval, k1: "target", v1: t}] = v
	}
	for _, s := range h.Bypass {
		out[gaugeKey{name: MetricBypassActive, k1: "level", v1: string(s.Level), k2: "name", v2: s.Name}] = 1
	}
	return out
}
