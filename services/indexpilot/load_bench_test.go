package indexpilot_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

// BenchmarkLoadHundredTargets runs the whole pipeline (RunAll, memory bus,
// advisory mode) on the 100 target databases of a throwaway server for
// LOAD_DURATION (default 10m) while an application keeps running
// statements with changing arguments and single-row updates on every
// target, so that every poll publishes deltas and the scorer keeps
// scoring. Every LOAD_SAMPLE (default 30s) it forces a GC and prints a row:
// the process's RSS (VmRSS), the Go heap in use and live, the goroutines,
// and the polls and scoring runs done so far (counted from the stages' log
// records). At the end it stops RunAll and the application and compares
// the goroutines with the count before RunAll started: a goroutine left
// over is a leak (reported with its stack, and the benchmark fails).
// The collector polls every 15 s (INDEXPILOT_COLLECTOR_INTERVAL); any
// INDEXPILOT_* variable of the environment but the database URL and the
// targets overrides the settings.
//
//	cd services/indexpilot && go test -run '^$' -bench LoadHundredTargets -benchtime 1x -timeout 0 .
func BenchmarkLoadHundredTargets(b *testing.B) {
	duration := envDuration(b, "LOAD_DURATION", 10*time.Minute)
	every := envDuration(b, "LOAD_SAMPLE", 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFleet(b, ctx, budgetTargets)

	env := []string{
		"INDEXPILOT_DATABASE_URL=" + f.cluster.URL("control"),
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_COLLECTOR_INTERVAL=15s",
		"INDEXPILOT_COLLECTOR_QUERY_TIMEOUT=30s",
	}
	var list []string
	for _, db := range f.targets {
		list = append(list, db+"="+f.url(db, budgetRole))
	}
	env = append(env, "INDEXPILOT_TARGETS="+strings.Join(list, ";"))
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "INDEXPILOT_") && !strings.HasPrefix(kv, "INDEXPILOT_DATABASE_URL=") && !strings.HasPrefix(kv, "INDEXPILOT_TARGETS=") {
			env = append(env, kv)
		}
	}
	cfg, err := config.Load("", env)
	if err != nil {
		b.Fatal(err)
	}
	if cfg.Features.AutoIndexer.Mode != config.ModeAdvisory {
		b.Fatalf("the load benchmark runs in advisory mode, not %s", cfg.Features.AutoIndexer.Mode)
	}
	counts := &logCounts{warns: map[string]int{}, firstErr: map[string]string{}}
	logger := slog.New(countingHandler{counts})

	// The collector watches SIGHUP (and stops watching when it ends); the
	// first signal.Notify of a process starts the runtime's signal loop,
	// which lives as long as the process. Started here, it is not counted
	// as a goroutine RunAll left behind.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Stop(hup)
	before := settledGoroutines(0)
	runCtx, stopRun := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- indexpilot.RunAll(runCtx, cfg, logger, indexpilot.Options{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-errc:
		b.Fatalf("RunAll exited before ready: %v", err)
	case <-time.After(time.Minute):
		stopRun()
		b.Fatal("RunAll not ready within a minute")
	}
	app := startLoadApp(ctx, f)

	fmt.Fprintf(os.Stderr, "load: %d targets for %s, a row every %s (collector every %s, scorer every %s, trigger debounce %s)\n",
		len(cfg.Targets), duration, every, cfg.Collector.Interval, cfg.Scorer.Interval, cfg.Scorer.TriggerDebounce)
	fmt.Fprintln(os.Stderr, "| elapsed | RSS MiB | heap in use MiB | heap live MiB | goroutines | polls | scoring runs | app statements |")
	fmt.Fprintln(os.Stderr, "|---|---|---|---|---|---|---|---|")
	began := time.Now()
	row := func() memSample {
		s := sample(b)
		fmt.Fprintf(os.Stderr, "| %s | %.1f | %.1f | %.1f | %d | %d | %d | %d |\n",
			time.Since(began).Round(time.Second), s.rssMiB, s.heapInuseMiB, s.heapLiveMiB, s.goroutines,
			counts.polls.Load(), counts.scored.Load(), app.statements.Load())
		return s
	}
	first := row()
	tick := time.NewTicker(every)
	deadline := time.After(duration)
	var last memSample
loop:
	for {
		select {
		case <-tick.C:
			last = row()
		case <-deadline:
			break loop
		case err := <-errc:
			b.Fatalf("RunAll stopped during the run: %v", err)
		}
	}
	tick.Stop()
	if last.goroutines == 0 {
		last = row()
	}

	stopRun()
	select {
	case err := <-errc:
		if err != nil {
			b.Errorf("RunAll: %v", err)
		}
	case <-time.After(time.Minute):
		b.Fatal("RunAll did not stop within a minute of cancel")
	}
	app.stop()
	after := settledGoroutines(before)
	fmt.Fprintf(os.Stderr, "load: RSS %.1f → %.1f MiB, heap in use %.1f → %.1f MiB, live %.1f → %.1f MiB; goroutines while running %d → %d; before RunAll %d, after it stopped %d\n",
		first.rssMiB, last.rssMiB, first.heapInuseMiB, last.heapInuseMiB, first.heapLiveMiB, last.heapLiveMiB,
		first.goroutines, last.goroutines, before, after)
	fmt.Fprintf(os.Stderr, "load: %d polls, %d scoring runs, %d application statements (%d failed)\n",
		counts.polls.Load(), counts.scored.Load(), app.statements.Load(), app.failed.Load())
	counts.mu.Lock()
	msgs := make([]string, 0, len(counts.warns))
	for m, n := range counts.warns {
		msgs = append(msgs, fmt.Sprintf("%dx %q, the first: %s", n, m, counts.firstErr[m]))
	}
	counts.mu.Unlock()
	sort.Strings(msgs)
	for _, m := range msgs {
		fmt.Fprintln(os.Stderr, "load: warning or error logged:", m)
	}
	b.ReportMetric(first.rssMiB, "rss_start_MiB")
	b.ReportMetric(last.rssMiB, "rss_end_MiB")
	b.ReportMetric(first.heapInuseMiB, "heap_start_MiB")
	b.ReportMetric(last.heapInuseMiB, "heap_end_MiB")
	b.ReportMetric(float64(before), "goroutines_before")
	b.ReportMetric(float64(after), "goroutines_after")
	b.ReportMetric(float64(counts.polls.Load()), "polls")
	b.ReportMetric(float64(counts.scored.Load()), "scorings")
	if after > before {
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		b.Errorf("%d goroutines left after RunAll stopped (%d before it started):\n%s", after-before, before, buf.String())
	}
	if counts.polls.Load() == 0 || counts.scored.Load() == 0 {
		b.Errorf("the pipeline did no work: %d polls, %d scoring runs", counts.polls.Load(), counts.scored.Load())
	}
}

// envDuration is the duration in environment variable name, or def.
func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q is not a positive duration", name, v)
	}
	return d
}

// memSample is the process's memory and goroutines after a GC.
type memSample struct {
	rssMiB, heapInuseMiB, heapLiveMiB float64
	goroutines                        int
}

func sample(b *testing.B) memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err := vmRSS()
	if err != nil {
		b.Fatal(err)
	}
	const mib = 1 << 20
	return memSample{
		rssMiB:       float64(rss) / mib,
		heapInuseMiB: float64(ms.HeapInuse) / mib,
		heapLiveMiB:  float64(ms.HeapAlloc) / mib,
		goroutines:   runtime.NumGoroutine(),
	}
}

// vmRSS is the process's resident set size in bytes (VmRSS of
// /proc/self/status).
func vmRSS() (int64, error) {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// settledGoroutines is the number of goroutines once it stops falling or
// reaches want (at most 30 s): goroutines of closed connections and
// stopped timers end shortly after their owner returns.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(500 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m <= want || (want == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}

// logCounts counts the stages' log records the load benchmark reads:
// successful polls, scoring runs, and warnings and errors by message.
type logCounts struct {
	polls, scored atomic.Int64
	mu            sync.Mutex
	warns         map[string]int
	firstErr      map[string]string
}

// countingHandler is a slog handler that only counts (a handler that kept
// the records would grow the memory the benchmark measures).
type countingHandler struct{ c *logCounts }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "polled pg_stat_statements":
		h.c.polls.Add(1)
	case "scored target":
		h.c.scored.Add(1)
	}
	if r.Level >= slog.LevelWarn {
		k := r.Level.String() + " " + r.Message
		h.c.mu.Lock()
		if h.c.warns[k]++; h.c.warns[k] == 1 {
			// The first one's error, to say what they were.
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "error" {
					h.c.firstErr[k] = a.Value.String()
				}
				return true
			})
		}
		h.c.mu.Unlock()
	}
	return nil
}

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// loadApp is the application of the load benchmark: four sessions that
// go round the targets, each visit connecting to one target and running
// three statement shapes with random arguments and a few single-row
// updates, a round at most every 10 s.
type loadApp struct {
	statements, failed atomic.Int64
	cancel             context.CancelFunc
	done               sync.WaitGroup
}

func startLoadApp(ctx context.Context, f *fleet) *loadApp {
	ctx, cancel := context.WithCancel(ctx)
	a := &loadApp{cancel: cancel}
	const sessions = 4
	for s := range sessions {
		a.done.Add(1)
		go func() {
			defer a.done.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 13))
			for ctx.Err() == nil {
				round := time.Now()
				for i := s; i < len(f.targets) && ctx.Err() == nil; i += sessions {
					a.visit(ctx, f.cluster.URL(f.targets[i]), rng)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Until(round.Add(10 * time.Second))):
				}
			}
		}()
	}
	return a
}

func (a *loadApp) visit(ctx context.Context, url string, rng *rand.Rand) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		if ctx.Err() == nil {
			a.failed.Add(1)
		}
		return
	}
	defer c.Close(context.Background())
	run := func(sql string, args ...any) {
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			if ctx.Err() == nil {
				a.failed.Add(1)
			}
			return
		}
		a.statements.Add(1)
	}
	for range 10 {
		run("select status from public.orders where customer_id = $1", rng.IntN(2000))
		run("select id from public.orders where status = $1 and customer_id > $2 order by id limit 10",
			fmt.Sprintf("s%d", rng.IntN(5)), rng.IntN(2000))
		lo := rng.IntN(2000)
		run("select count(*) from public.orders where customer_id between $1 and $2", lo, lo+5)
	}
	for range 3 {
		run("update public.orders set status = $1 where id = $2", fmt.Sprintf("s%d", rng.IntN(5)), 1+rng.IntN(20000))
	}
}

func (a *loadApp) stop() {
	a.cancel()
	a.done.Wait()
}
