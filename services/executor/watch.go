package executor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Stopper is the seam of the emergency stop: when Stopped reports true, the
// executor claims nothing new and cancels its in-flight builds (cleaning up
// their leftovers and putting them back to pending). The reason is logged.
//
// The run-time bypass (pkg/bypass) satisfies it; until it is wired,
// NoStop is used.
type Stopper interface {
	Stopped() (bool, string)
}

// changeNotifier is what a Stopper may also offer: a channel closed at its
// next change (the run-time bypass has it). With it the executor acts on
// an emergency stop, or a resume, the moment it is known; without it, at
// the next poll.
type changeNotifier interface {
	Changed() <-chan struct{}
}

// stopChanged returns the stopper's change channel, or nil (never ready)
// when it has none.
func (x *executor) stopChanged() <-chan struct{} {
	if n, ok := x.stopper.(changeNotifier); ok {
		return n.Changed()
	}
	return nil
}

// NoStop is the Stopper that never stops.
type NoStop struct{}

// Stopped always reports false.
func (NoStop) Stopped() (bool, string) { return false, "" }

// StopperFunc adapts a function to Stopper.
type StopperFunc func() (bool, string)

// Stopped calls f.
func (f StopperFunc) Stopped() (bool, string) { return f() }

// CPUSource reports how busy the database host of a target is, in percent
// (0–100). A source that cannot tell yet (a first sample that needs a
// second to make a delta) returns ErrNoSample.
type CPUSource interface {
	CPUPercent(ctx context.Context, target string, pool *pgxpool.Pool) (float64, error)
}

// ErrNoSample is returned by a CPUSource that has no reading yet.
var ErrNoSample = errors.New("no cpu sample yet")

// CPUFunc adapts a function to CPUSource.
type CPUFunc func(ctx context.Context, target string) (float64, error)

// CPUPercent calls f.
func (f CPUFunc) CPUPercent(ctx context.Context, target string, _ *pgxpool.Pool) (float64, error) {
	return f(ctx, target)
}

// Options are the executor's injectable collaborators. Zero fields take the
// defaults: NoStop, the database-side CPU source (PGCPU) and the global
// meter provider.
type Options struct {
	Stopper Stopper
	CPU     CPUSource
	// Meter receives the running builds' gauges; nil means the global
	// meter provider.
	Meter metric.MeterProvider
}

// PGCPU measures a target's CPU on the database side: busy time from
// /proc/stat read through pg_read_file where the role may (superuser or
// pg_read_server_files), otherwise active backends against the core count
// (Cores, or the server's when 0 and it can be read, else 1 per 100 %).
type PGCPU struct {
	Cores int

	mu   sync.Mutex
	last map[string][2]uint64 // target -> (busy, total) jiffies
}

// CPUPercent implements CPUSource.
func (c *PGCPU) CPUPercent(ctx context.Context, target string, pool *pgxpool.Pool) (float64, error) {
	var stat string
	err := pool.QueryRow(ctx, marker+"select split_part(pg_read_file('/proc/stat'), chr(10), 1)").Scan(&stat)
	if err == nil {
		busy, total, perr := parseProcStat(stat)
		if perr == nil {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.last == nil {
				c.last = map[string][2]uint64{}
			}
			prev, ok := c.last[target]
			c.last[target] = [2]uint64{busy, total}
			if !ok || total <= prev[1] {
				return 0, ErrNoSample
			}
			return 100 * float64(busy-prev[0]) / float64(total-prev[1]), nil
		}
	}
	var active int
	if err := pool.QueryRow(ctx, marker+`select count(*) from pg_stat_activity
 where state = 'active' and backend_type = 'client backend' and pid <> pg_backend_pid()`).Scan(&active); err != nil {
		return 0, fmt.Errorf("read active backends: %w", err)
	}
	cores := c.Cores
	if cores <= 0 {
		cores = 1
	}
	return min(100, 100*float64(active)/float64(cores)), nil
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: busy is
// everything but idle and iowait.
func parseProcStat(line string) (busy, total uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat line")
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 8 { // guest times are already counted in user and nice
			break
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}

// Progress is a running build's progress as pg_stat_progress_create_index
// reports it, stored in builds.progress.
type Progress struct {
	Target      string    `json:"target"`
	Index       string    `json:"index"`
	Table       string    `json:"table"`
	Phase       string    `json:"phase"`
	BlocksDone  int64     `json:"blocks_done"`
	BlocksTotal int64     `json:"blocks_total"`
	TuplesDone  int64     `json:"tuples_done"`
	TuplesTotal int64     `json:"tuples_total"`
	Partitions  int64     `json:"partitions_done,omitempty"`
	CPUPercent  *float64  `json:"cpu_pct,omitempty"`
	ObservedAt  time.Time `json:"observed_at"`
}

// Stop reasons of a watched build.
const (
	stopNone = iota
	stopCPU
	stopEmergency
)

// watcher follows one build: its progress, the CPU, and the emergency stop.
type watcher struct {
	x      *executor
	j      *job
	pool   *pgxpool.Pool
	cancel context.CancelFunc

	mu       sync.Mutex
	table    string
	pid      uint32
	reason   int
	detail   string
	over     int
	lastCPU  *float64
	partDone int64
}

// started is build.Options.OnStart.
func (w *watcher) started(table string, pid uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pid != 0 {
		w.partDone++
	}
	w.table, w.pid = table, pid
}

func (w *watcher) stopReason() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reason, w.detail
}

// run samples every interval until ctx is done. The emergency stop is
// checked at once, at every sample and whenever the stopper reports a
// change, so that a stop cancels the build as soon as this process knows
// of it.
func (w *watcher) run(ctx context.Context) {
	interval := min(w.x.cfg.CPU.Interval, time.Second)
	if !w.x.cfg.CPU.Enabled {
		interval = time.Second
	}
	t := time.NewTicker(max(interval, 10*time.Millisecond))
	defer t.Stop()
	nextCPU := time.Now()
	for {
		changed := w.x.stopChanged()
		if w.emergency() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			continue
		case <-t.C:
		}
		if w.x.cfg.CPU.Enabled && !time.Now().Before(nextCPU) {
			nextCPU = time.Now().Add(w.x.cfg.CPU.Interval)
			if w.sampleCPU(ctx) {
				return
			}
		}
		w.recordProgress(ctx)
	}
}

// emergency cancels the build when the emergency stop is on, and reports
// whether it did. Cancelling the build's context makes its connection send
// the server a cancel request for the running CREATE INDEX (and stops a
// build still connecting or waiting for its table lock); the build then
// drops its INVALID leftover on the same session, which no late cancel
// signal can reach any more.
func (w *watcher) emergency() bool {
	stop, why := w.x.stopper.Stopped()
	if !stop {
		return false
	}
	w.mu.Lock()
	w.reason, w.detail = stopEmergency, why
	w.mu.Unlock()
	w.cancel()
	return true
}

// sampleCPU takes one CPU sample and cancels the build on the server after
// Samples consecutive samples over the ceiling. It reports whether it did.
func (w *watcher) sampleCPU(ctx context.Context) bool {
	pct, err := w.x.cpu.CPUPercent(ctx, w.j.target, w.pool)
	if err != nil {
		if !errors.Is(err, ErrNoSample) && ctx.Err() == nil {
			w.x.log.Debug("sample cpu", "target", w.j.target, "error", postgres.Describe(err))
		}
		return false
	}
	w.mu.Lock()
	w.lastCPU = &pct
	if pct > w.x.cfg.CPU.CeilingPct {
		w.over++
	} else {
		w.over = 0
	}
	over, pid := w.over, w.pid
	w.mu.Unlock()
	if over < w.x.cfg.CPU.Samples || pid == 0 {
		return false
	}
	w.mu.Lock()
	w.reason = stopCPU
	w.detail = fmt.Sprintf("cpu %.0f%% above the %.0f%% ceiling for %d samples", pct, w.x.cfg.CPU.CeilingPct, over)
	w.mu.Unlock()
	var ok bool
	if err := w.pool.QueryRow(ctx, marker+"select pg_cancel_backend($1)", int32(pid)).Scan(&ok); err != nil || !ok {
		// The session is gone or not ours to cancel: cancel from our side.
		w.cancel()
	}
	return true
}

// recordProgress copies the build's pg_stat_progress_create_index row into
// builds.progress.
func (w *watcher) recordProgress(ctx context.Context) {
	w.mu.Lock()
	pid, table, cpu, parts := w.pid, w.table, w.lastCPU, w.partDone
	w.mu.Unlock()
	if pid == 0 {
		return
	}
	p := Progress{Target: w.j.target, Index: w.j.indexName, Table: table, CPUPercent: cpu, Partitions: parts}
	err := w.pool.QueryRow(ctx, marker+`select phase, blocks_done, blocks_total, tuples_done, tuples_total, now()
  from pg_stat_progress_create_index where pid = $1`, int32(pid)).
		Scan(&p.Phase, &p.BlocksDone, &p.BlocksTotal, &p.TuplesDone, &p.TuplesTotal, &p.ObservedAt)
	if err != nil {
		return // between statements, or finished
	}
	w.x.setProgress(w.j.recID, p)
	if _, err := w.x.d.Control.Exec(ctx, marker+`update indexpilot.builds set progress = $3
 where recommendation_id = $1 and claimed_by = $2 and state = 'running'`, w.j.recID, w.x.id, p); err != nil && ctx.Err() == nil {
		w.x.log.Debug("record build progress", "error", postgres.Describe(err))
	}
}

func (x *executor) setProgress(recID string, p Progress) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.progress[recID] = p
}

func (x *executor) clearProgress(recID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.progress, recID)
}

// guard returns a context that is cancelled as soon as the emergency stop
// is known (at the latest at the next poll, a second at most): an in-flight DROP INDEX of a revert or a
// removal is then cancelled on the server, and retried after the stop.
func (x *executor) guard(ctx context.Context) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(min(x.cfg.PollInterval, time.Second))
		defer t.Stop()
		for {
			changed := x.stopChanged()
			if stop, _ := x.stopper.Stopped(); stop {
				cancel()
				return
			}
			select {
			case <-gctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
		}
	}()
	return gctx, cancel
}
