package collector

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/collector/internal/activity"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
	"github.com/indexpilot/indexpilot/services/collector/internal/pgstat"
)

// maxSamplesPerEvent caps the parameter samples one activity event carries.
const maxSamplesPerEvent = 16

// execution is one run of a statement: a backend and when the run began.
type execution struct {
	pid   int32
	start time.Time
}

// pollActivity publishes the statements running for at least
// collector.activity_threshold that earlier polls have not counted: per
// query id one event with a call per run, the time each had run so far (a
// lower bound: it may still be running, or be cancelled or time out,
// which pg_stat_statements never records), and the constants of the runs
// whose text has them inline. It returns how many events.
func (p *poller) pollActivity(ctx context.Context, pool *pgxpool.Pool, dbTime *time.Duration) (int, error) {
	if p.settings.ActivityThreshold <= 0 {
		return 0, nil
	}
	qctx, cancel := context.WithTimeout(ctx, p.settings.QueryTimeout)
	var (
		running []pgstat.Running
		err     error
	)
	timed(dbTime, func() { running, err = pgstat.ReadActivity(qctx, pool, p.settings.ActivityThreshold) })
	cancel()
	if err != nil {
		return 0, err
	}
	evs, seen := activityEvents(p.target, running, p.counted)
	if done, err := publishAll(ctx, p.d.Bus, evs); err != nil {
		// Runs of unpublished events are counted at the next poll if
		// they are still running.
		for i, ev := range evs {
			if !done[i] {
				for x, id := range seen {
					if id == ev.QueryID {
						delete(seen, x)
					}
				}
			}
		}
		p.counted = seen
		return 0, fmt.Errorf("publish running statements: %w", err)
	}
	p.counted = seen
	return len(evs), nil
}

// activityEvents groups the runs not in counted by query id, in query-id
// order, and returns the events and the runs seen now (the next counted).
// IndexPilot's own statements and utility statements are left out.
func activityEvents(target string, running []pgstat.Running, counted map[execution]string) ([]*events.QueryStatObserved, map[execution]string) {
	seen := map[execution]string{}
	byID := map[string]*events.QueryStatObserved{}
	for _, r := range running {
		if delta.Excluded(r.Query) {
			continue
		}
		x := execution{pid: r.PID, start: r.QueryStart}
		seen[x] = r.QueryID
		if _, ok := counted[x]; ok {
			continue
		}
		text, values, literal := activity.Literal(r.Query)
		if !literal {
			// Already in $n form (extended protocol), or not parsable:
			// the text as sent.
			text = r.Query
		}
		ev := byID[r.QueryID]
		if ev == nil {
			ev = &events.QueryStatObserved{Target: target, QueryID: r.QueryID, Query: text, WindowStart: r.QueryStart,
				WindowEnd: r.At.Truncate(time.Microsecond), WindowSource: events.WindowActivity, Unfinished: true}
			byID[r.QueryID] = ev
		}
		ev.Calls++
		ev.TotalExecTimeMs += r.RunningMs
		if r.QueryStart.Before(ev.WindowStart) {
			ev.WindowStart = r.QueryStart
		}
		if literal && len(values) > 0 && len(ev.ParamSamples) < maxSamplesPerEvent {
			ev.ParamSamples = append(ev.ParamSamples, values)
		}
	}
	out := make([]*events.QueryStatObserved, 0, len(byID))
	for _, ev := range byID {
		ev.MeanExecTimeMs = ev.TotalExecTimeMs / float64(ev.Calls)
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueryID < out[j].QueryID })
	return out, seen
}
