package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
	"github.com/indexpilot/indexpilot/services/collector/internal/pgstat"
)

// maxBackoff caps the wait between failed polls (unless the interval is
// longer).
const maxBackoff = 5 * time.Minute

// poller polls one target. It is used by one goroutine only.
type poller struct {
	d        stage.Deps
	target   string
	settings config.Collector
	log      *slog.Logger

	// base is the pg_stat_statements baseline; nil until the first
	// successful read, and again after the extension was unavailable.
	base *delta.Baseline
	// texts holds the statement texts already read, so that a poll reads
	// only the texts of new statements (when the target reads alone).
	texts pgstat.Texts
	// unavailable is why pg_stat_statements could not be read at the last
	// poll ("" when it could), so that the warning is logged once.
	unavailable string
	// conn is the target's pool; health records each poll (may be nil).
	conn   *targetConn
	health *healthWriter
	// failures counts consecutive failed polls.
	failures int
	// gate pauses polling while the bypass says so (nil: never).
	gate *gate
	// reads shares pg_stat_statements reads with the collector's other
	// targets on the same server (nil: this target reads alone); group is
	// this target's group while run runs.
	reads *sharedReads
	group *readGroup
	// lastAt is the time of the last sample read (zero before the first).
	lastAt time.Time
	// counted holds the runs of long-running statements already published
	// (see pollActivity), with their query ids.
	counted map[execution]string
}

func newPoller(d stage.Deps, target string, settings config.Collector) *poller {
	var dsn string
	for _, t := range d.Config.Targets {
		if t.Name == target {
			dsn = t.DSN
		}
	}
	return &poller{
		d: d, target: target, settings: settings, log: d.Logger.With("target", target),
		conn: &targetConn{target: config.Target{Name: target, DSN: dsn}, stage: Name},
	}
}

// run polls until ctx is done. While the bypass pauses collection it
// does not poll; the statement baseline is kept, so the first poll after
// the pause reports the calls made meanwhile over one longer window.
func (p *poller) run(ctx context.Context) {
	if p.reads != nil {
		if key := readKey(p.conn.target.DSN); key != "" {
			g, leave := p.reads.join(key, p)
			p.group = g
			defer func() { leave(); p.group = nil }()
		}
	}
	for {
		if !p.gate.wait(ctx, p.log, "polling") {
			return
		}
		// The next poll starts one interval after this one started, so that
		// targets started together keep polling together (and share their
		// pg_stat_statements read); a poll longer than the interval is
		// followed by a tenth of the interval's rest.
		start := time.Now()
		res, err := p.poll(ctx)
		wait := max(p.settings.Interval-time.Since(start), p.settings.Interval/10)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = p.failed(err, wait)
		} else if p.failures > 0 {
			p.log.Info("poll recovered", "after_failures", p.failures)
			p.failures = 0
		}
		if p.health != nil {
			at := res.At
			if at.IsZero() {
				at = p.d.Clock().UTC()
			}
			p.health.poll(p.target, at, p.settings.Interval, res.DBTime, p.failures, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// failed counts a failed poll, logs it and returns the wait before the
// next one (wait when the poll is only deferred). A poll the server had no
// connection slot for (postgres.NoHeadroom: the budget's back-off, or a
// 53300 met by a dial inside one of the poll's queries) is deferred to the
// next interval quietly: the server's budget logged its back-off once and
// resumes by itself.
func (p *poller) failed(err error, wait time.Duration) time.Duration {
	p.failures++
	if postgres.NoHeadroom(err) {
		p.log.Debug("poll deferred", "error", err.Error(), "failures", p.failures)
		return wait
	}
	wait = backoff(p.settings.Interval, p.failures)
	p.log.Warn("poll failed", "error", err.Error(), "failures", p.failures, "retry_in", wait.String())
	return wait
}

// backoff is the wait after the n-th consecutive failure: the interval,
// doubled per further failure, capped at max(interval, maxBackoff).
func backoff(interval time.Duration, n int) time.Duration {
	limit := max(interval, maxBackoff)
	d := interval
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// polled is what one poll published.
type polled struct {
	// At is the poll time: the WindowEnd of its query statistics and the
	// ObservedAt of its table statistics.
	At         time.Time
	QueryStats int
	TableStats int
	// Running is the number of events of long-running statements.
	Running int
	// DBTime is the time spent waiting on the target's statistics queries.
	DBTime time.Duration
}

// poll reads and publishes one round of statistics of the target. The
// statement, table and running-statement parts are independent: one
// failing does not keep the others from being published.
func (p *poller) poll(ctx context.Context) (polled, error) {
	pctx, cancel := context.WithTimeout(ctx, p.settings.QueryTimeout)
	pool, version, err := p.conn.get(pctx)
	cancel()
	if err != nil {
		return polled{}, fmt.Errorf("open target: %w", err)
	}
	// Microseconds: the precision of event id recipes and of PostgreSQL.
	res := polled{At: p.d.Clock().UTC().Truncate(time.Microsecond)}
	var errS, errT, errA error
	res.QueryStats, errS = p.pollStatements(ctx, pool, res.At, &res.DBTime)
	res.TableStats, errT = p.pollTables(ctx, pool, version, res.At, &res.DBTime)
	res.Running, errA = p.pollActivity(ctx, pool, &res.DBTime)
	return res, errors.Join(errS, errT, errA)
}

// timed runs fn and adds its duration to *total.
func timed(total *time.Duration, fn func()) {
	start := time.Now()
	fn()
	*total += time.Since(start)
}

// pollStatements publishes the statement deltas and returns how many.
func (p *poller) pollStatements(ctx context.Context, pool *pgxpool.Pool, at time.Time, dbTime *time.Duration) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, p.settings.QueryTimeout)
	var (
		src pgstat.Source
		err error
	)
	timed(dbTime, func() { src, err = pgstat.ProbeStatements(qctx, pool) })
	cancel()
	if err != nil {
		return 0, err
	}
	if !src.Usable {
		p.markUnavailable(src.Reason)
		return 0, nil
	}
	qctx, cancel = context.WithTimeout(ctx, p.settings.QueryTimeout)
	var sample delta.Sample
	timed(dbTime, func() { sample, err = p.readStatements(qctx, pool, src, at) })
	cancel()
	if errors.Is(err, pgstat.ErrNotLoaded) {
		p.markUnavailable(pgstat.ErrNotLoaded.Error() + " (add it and restart the server)")
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if p.unavailable != "" {
		p.log.Info("pg_stat_statements is available again: taking a new baseline")
		p.unavailable = ""
	}

	prev := p.base
	evs, next := delta.Compute(p.target, prev, sample)
	p.base = next
	if done, err := publishAll(ctx, p.d.Bus, evs); err != nil {
		// Keep the unpublished statements' old counters: the next poll
		// reports their calls over a longer window, once.
		published := 0
		for i, ev := range evs {
			if done[i] {
				published++
			} else {
				next.Restore(prev, ev)
			}
		}
		return published, fmt.Errorf("publish query statistics: %w", err)
	}
	p.log.Debug("polled pg_stat_statements", "statements", next.Statements(), "published", len(evs))
	return len(evs), nil
}

// readStatements reads the target's pg_stat_statements sample: from a read
// shared with the collector's other targets on the same server when there
// are any (its time then ends the window, and is at most a quarter of the
// interval before at), else on its own.
func (p *poller) readStatements(ctx context.Context, pool *pgxpool.Pool, src pgstat.Source, at time.Time) (delta.Sample, error) {
	var (
		s   delta.Sample
		err error
	)
	if p.group == nil || !p.reads.shared(p.group) {
		s, err = pgstat.ReadStatements(ctx, pool, src, at, &p.texts)
	} else {
		// Never a read older than this target's last sample: a window
		// never ends before it starts.
		var c pgstat.Counters
		c, err = p.reads.read(ctx, p.group, p, pool, src, p.lastAt, p.settings.Interval/4, func() time.Time { return at })
		if err != nil {
			return delta.Sample{At: at}, err
		}
		s, err = p.reads.sample(ctx, p.group, p, pool, src, c)
	}
	if err == nil {
		p.lastAt = s.At
	}
	return s, err
}

// markUnavailable logs, once per cause, that the target publishes table
// statistics only, and forgets the baseline: whatever ran meanwhile cannot
// be attributed to a window.
func (p *poller) markUnavailable(reason string) {
	p.base = nil
	if p.unavailable == reason {
		return
	}
	p.unavailable = reason
	p.log.Warn("pg_stat_statements unavailable: publishing table statistics only for this target", "reason", reason)
}

// pollTables publishes the table statistics and returns how many.
func (p *poller) pollTables(ctx context.Context, pool *pgxpool.Pool, version int, at time.Time, dbTime *time.Duration) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, p.settings.QueryTimeout)
	var (
		tables []*events.TableStatObserved
		err    error
	)
	timed(dbTime, func() { tables, err = pgstat.ReadTables(qctx, pool, p.target, version, at) })
	cancel()
	if err != nil {
		return 0, err
	}
	for i, t := range tables {
		if err := p.d.Bus.Publish(ctx, Name, "", t); err != nil {
			return i, fmt.Errorf("publish table statistics: %w", err)
		}
	}
	return len(tables), nil
}
