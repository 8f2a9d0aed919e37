package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// runState is what one run shares between its goroutines.
type runState struct {
	s      *Session
	rng    *rand.Rand
	name   string
	url    string
	target *pgxpool.Pool // harness session on the run's database
	procs  []*proc       // the IndexPilot processes
	broker *proc         // the Kafka shape's broker
	notes  []string
	mu     sync.Mutex

	closers     []func()
	maxLockWait atomic.Int64 // longest wait of an application statement on IndexPilot, ns
	appErrors   atomic.Int64
	appOK       atomic.Int64
}

func (r *runState) note(f string, a ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(f, a...))
	r.mu.Unlock()
}

// run performs run i with the given fault kind and checks the invariants.
func (s *Session) run(ctx context.Context, i int, fault string) (res Result) {
	began := time.Now()
	rng := runRand(s.opts.Seed, i)
	res = Result{Run: i, Fault: fault}
	name := fmt.Sprintf("%s%d_%d", Prefix, os.Getpid(), i)
	defer func() {
		// Cleanup must run even when ctx was cancelled (Ctrl-C).
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.dropDatabase(cctx, name); err != nil {
			fmt.Fprintf(s.out, "chaos: %v\n", err)
		}
		res.Took = time.Since(began)
	}()
	fail := func(f string, a ...any) Result {
		res.Violations = append(res.Violations, "harness: "+fmt.Sprintf(f, a...))
		res.Took = time.Since(began)
		return res
	}

	dbURL, err := demo.CreateDatabase(ctx, s.opts.AdminURL, name)
	if err != nil {
		return fail("%v", err)
	}
	target, err := connect(ctx, dbURL, appHarness, 2)
	if err != nil {
		return fail("%v", err)
	}
	defer target.Close()
	if err := demo.LoadSchema(ctx, target, Scale, nil); err != nil {
		return fail("load schema: %v", err)
	}
	if err := seedRemovals(ctx, target); err != nil {
		return fail("%v", err)
	}
	r := &runState{s: s, rng: rng, name: name, url: dbURL, target: target}

	dir, err := os.MkdirTemp("", "ipchaos-run")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	env := processEnv(dbURL)
	newProc := func(name string, args ...string) (*proc, error) {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, len(r.procs))))
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { _ = f.Close() })
		return &proc{name: name, bin: s.opts.Bin, dir: dir, args: args, env: env, log: f}, nil
	}
	var observed *bus.Recorder
	if s.opts.Shape == ShapeKafka {
		// The stages' processes do not migrate the control schema: the
		// operator does (here, the harness), as `indexpilot init` would.
		if _, err := metadata.Migrate(ctx, target); err != nil {
			return fail("migrate: %v", err)
		}
		port, err := freePort()
		if err != nil {
			return fail("%v", err)
		}
		brokers := fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, "INDEXPILOT_BUS_TRANSPORT=kafka", "INDEXPILOT_BUS_KAFKA_BROKERS="+brokers,
			"INDEXPILOT_BUS_KAFKA_VERSION=3.6.0")
		b, err := newProc("broker", "-port", fmt.Sprint(port), "-data-dir", filepath.Join(dir, "broker"))
		if err != nil {
			return fail("%v", err)
		}
		b.bin = s.opts.Broker
		if err := b.start(); err != nil {
			return fail("%v", err)
		}
		r.broker = b
		defer b.stop(10 * time.Second)
		if observed, err = r.observe(ctx, brokers); err != nil {
			return fail("observe candidates: %v", err)
		}
		for _, st := range s.opts.processes() {
			p, err := newProc(st, st)
			if err != nil {
				return fail("%v", err)
			}
			if err := p.start(); err != nil {
				return fail("%v", err)
			}
			r.procs = append(r.procs, p)
		}
	} else {
		for range s.opts.processes() {
			p, err := newProc("indexpilot", "run")
			if err != nil {
				return fail("%v", err)
			}
			if err := p.start(); err != nil {
				return fail("%v", err)
			}
			r.procs = append(r.procs, p)
		}
	}
	defer func() {
		for _, p := range r.procs {
			p.stop(30 * time.Second)
		}
		if len(res.Violations) > 0 && s.opts.LogDir != "" {
			keepLogs(dir, filepath.Join(s.opts.LogDir, fmt.Sprintf("run-%d", i)))
		}
	}()

	defer func() {
		for _, c := range r.closers {
			c()
		}
	}()
	rctx, stopRun := context.WithTimeout(ctx, s.opts.RunLimit)
	defer stopRun()
	var wg sync.WaitGroup
	appCtx, stopApp := context.WithCancel(ctx)
	app, err := connect(ctx, dbURL, appDriver, 2)
	if err != nil {
		stopApp()
		return fail("%v", err)
	}
	defer app.Close()
	// Every draw from rng happens here, in order, never in a goroutine:
	// the same seed gives the same plan.
	driverSeed := rng.Uint64()
	variant, faultDone := r.inject(rctx, fault)
	res.Fault = variant
	wg.Add(3)
	go func() { defer wg.Done(); r.drive(appCtx, app, driverSeed) }()
	go func() { defer wg.Done(); r.sampleLocks(appCtx) }()
	go func() { defer wg.Done(); r.supervise(appCtx) }()

	res.Settled = r.waitSettled(rctx, faultDone)
	stopApp()
	wg.Wait()
	// Producers first (the processes were started consumers first): a
	// candidate a scorer publishes while stopping must still find the
	// gatekeeper, which drains what it was sent before it stops.
	for k := len(r.procs) - 1; k >= 0; k-- {
		p := r.procs[k]
		if p.name == "gatekeeper" && observed != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			r.waitDrained(dctx, observed)
			cancel()
		}
		if !p.stop(30 * time.Second) {
			r.note("%s did not stop within 30 s of SIGTERM", p.name)
		}
	}
	if ctx.Err() != nil {
		return fail("interrupted")
	}
	if n := backedOff(dir); n > 0 {
		r.note("%d process(es) backed off for want of free connection slots on the server", n)
	}
	for k, p := range r.procs {
		if p.crashes > 0 {
			r.note("process %d exited on its own %d time(s) and was restarted", k, p.crashes)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if observed != nil {
		res.Violations = append(res.Violations, CheckCandidates(cctx, target, observed.All())...)
		r.note("%d candidate events observed", observed.DistinctIDs())
	}
	res.Violations = append(res.Violations, Check(cctx, target, time.Duration(r.maxLockWait.Load()))...)
	var removed int64
	if err := target.QueryRow(cctx, marker+`select count(*) from indexpilot.removals where state = 'done'`).Scan(&removed); err == nil {
		r.note("%d index(es) removed", removed)
	}
	var recovered int64
	if err := target.QueryRow(cctx, `select count(*) from indexpilot.mutation_log
 where stage = 'executor' and action = 'build' and outcome = 'queued' and reason = 'decision_event_missing'`).Scan(&recovered); err == nil && recovered > 0 {
		// Not a violation: the executor made up for a decision event that
		// never reached it (lost, or held up on the bus).
		r.note("%d build(s) queued without their decision event", recovered)
	}
	r.mu.Lock()
	res.Notes = append(res.Notes, r.notes...)
	r.mu.Unlock()
	res.Notes = append(res.Notes, fmt.Sprintf("app %d ok/%d errors, max lock wait on IndexPilot %s",
		r.appOK.Load(), r.appErrors.Load(), time.Duration(r.maxLockWait.Load()).Round(time.Millisecond)))
	return res
}

// Seeded are the user's indexes each run starts with besides the demo's
// primary keys: two with one definition, on a leading column of indexes the
// workload needs. In removal apply mode the pipeline drops one as a
// duplicate within its first rounds, and the other as a left prefix once
// it has built contacts (tenant_id, …): so every run has removals, early
// and between builds, for a fault to meet (sigkill/removal).
var Seeded = []string{"chaos_contacts_tenant", "chaos_contacts_tenant_copy"}

func seedRemovals(ctx context.Context, target *pgxpool.Pool) error {
	for _, name := range Seeded {
		if _, err := target.Exec(ctx, marker+"create index "+postgres.Ident(name)+" on "+postgres.Ident("public", "contacts")+" (tenant_id)"); err != nil {
			return fmt.Errorf("seed index %s: %s", name, postgres.Describe(err))
		}
	}
	return nil
}

// processEnv configures `indexpilot run` for a run: apply mode for
// building and removal, short intervals, validation within seconds, no CPU
// throttle (the shared host is busy), budgets sized for the test data.
func processEnv(dbURL string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if len(kv) > 11 && kv[:11] == "INDEXPILOT_" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"INDEXPILOT_CONFIG=",
		"INDEXPILOT_DATABASE_URL="+dbURL,
		"INDEXPILOT_TARGETS=chaos="+dbURL,
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=apply",
		"INDEXPILOT_FEATURES_INDEX_REMOVAL_MODE=apply",
		"INDEXPILOT_COLLECTOR_INTERVAL=1s",
		"INDEXPILOT_SCORER_INTERVAL=2s",
		"INDEXPILOT_SCORER_STORAGE_BUDGET_MB=1024",
		"INDEXPILOT_GATEKEEPER_STORAGE_MAX_MB=1024",
		"INDEXPILOT_GATEKEEPER_STORAGE_MAX_PCT_OF_DATABASE=0",
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_GATEKEEPER_RECHECK_INTERVAL=1s",
		"INDEXPILOT_EXECUTOR_CPU_ENABLED=false",
		"INDEXPILOT_EXECUTOR_POLL_INTERVAL=250ms",
		"INDEXPILOT_EXECUTOR_LEASE=5s",
		"INDEXPILOT_EXECUTOR_LOCK_TIMEOUT="+LockTimeout.String(),
		"INDEXPILOT_EXECUTOR_MAX_ATTEMPTS=10",
		"INDEXPILOT_EXECUTOR_RECOVER_AFTER=30s",
		"INDEXPILOT_EXECUTOR_VALIDATION_MIN_WAIT=3s",
		"INDEXPILOT_EXECUTOR_VALIDATION_MAX_WAIT=40s",
		"INDEXPILOT_EXECUTOR_VALIDATION_MIN_CALLS=10",
		"INDEXPILOT_LOG_LEVEL=debug", // kept only for a failed run (CHAOS_LOG_DIR)
	)
}

// drive plays the application: two sessions running the demo's statements
// with random arguments, and single-row updates, until ctx ends. Errors
// (the database made unreachable, say) are counted, not fatal.
func (r *runState) drive(ctx context.Context, app *pgxpool.Pool, seed uint64) {
	stmts := demo.Workload(Scale)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var err error
				if rng.IntN(10) == 0 {
					_, err = app.Exec(ctx, "update contacts set updated_at = now() where id = $1", 1+rng.IntN(Scale.Contacts))
				} else {
					st := stmts[rng.IntN(len(stmts))]
					var rows pgx.Rows
					rows, err = app.Query(ctx, st.SQL, st.Args(rng)...)
					if err == nil {
						for rows.Next() {
						}
						rows.Close()
						err = rows.Err()
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						r.appErrors.Add(1)
					}
					sleep(ctx, 200*time.Millisecond)
					continue
				}
				r.appOK.Add(1)
				sleep(ctx, 20*time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// sampleLocks watches the application's sessions every 100 ms and keeps
// the longest time one statement waited on a lock held or queued for by an
// IndexPilot session (application_name indexpilot-*).
func (r *runState) sampleLocks(ctx context.Context) {
	type key struct {
		pid   int32
		start time.Time
	}
	first := map[key]time.Time{}
	for ctx.Err() == nil {
		rows, err := r.s.admin.Query(ctx, marker+`select a.pid, a.query_start
  from pg_stat_activity a
 where a.datname = $1 and a.application_name = $2 and a.wait_event_type = 'Lock'
   and exists (select 1 from pg_stat_activity b
                where b.pid = any(pg_blocking_pids(a.pid)) and b.application_name like 'indexpilot-%')`, r.name, appDriver)
		if err == nil {
			now := time.Now()
			for rows.Next() {
				var k key
				if rows.Scan(&k.pid, &k.start) != nil {
					continue
				}
				f, ok := first[k]
				if !ok {
					first[k] = now
					f = now
				}
				// Count the sampling interval: the wait began before it was seen.
				if w := now.Sub(f) + 100*time.Millisecond; int64(w) > r.maxLockWait.Load() {
					r.maxLockWait.Store(int64(w))
				}
			}
			rows.Close()
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// observe records every candidate event the scorers publish, in a consumer
// group of the harness's own, from the start of the topic.
func (r *runState) observe(ctx context.Context, brokers string) (*bus.Recorder, error) {
	cfg := config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: []string{brokers}, Version: "3.6.0"}}
	var b *bus.Bus
	var err error
	for try := 0; try < 50; try++ { // the broker process is starting
		if b, err = bus.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			break
		}
		sleep(ctx, 200*time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() { _ = b.Close() })
	return bus.Record(ctx, b, "indexpilot.chaos.observer", events.TypeIndexCandidateScored)
}

// waitDrained waits (until ctx ends) until the gatekeeper has processed every
// candidate event observed, so that the check does not count an event
// still in flight as lost.
func (r *runState) waitDrained(ctx context.Context, rec *bus.Recorder) {
	for ctx.Err() == nil {
		ids := eventIDs(rec.All())
		var missing int
		err := r.target.QueryRow(ctx, marker+`select count(*) from unnest($1::uuid[]) e(id)
 where not exists (select 1 from indexpilot.processed_events p where p.consumer = $2 and p.event_id = e.id)`,
			ids, gatekeeper.Consumer).Scan(&missing)
		if err == nil && missing == 0 {
			return
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

func eventIDs(envs []events.Envelope) []string {
	ids := make([]string, 0, len(envs))
	for _, e := range envs {
		ids = append(ids, e.ID)
	}
	return ids
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// supervise restarts, after a second, a process that exited on its own.
func (r *runState) supervise(ctx context.Context) {
	for ctx.Err() == nil {
		sleep(ctx, time.Second)
		for _, p := range r.procs {
			if _, err := p.restartIfCrashed(); err != nil {
				r.note("restart: %v", err)
			}
		}
	}
}

// waitSettled waits, until ctx ends, for the fault to be over and the
// pipeline to be quiet: at least one index built, nothing approved or
// building, no build, validation or removal due, and the seeded duplicate
// no longer two indexes, for 3 s in a row.
func (r *runState) waitSettled(ctx context.Context, faultDone <-chan struct{}) bool {
	select {
	case <-faultDone:
	case <-ctx.Done():
		return false
	}
	var quietSince time.Time
	for ctx.Err() == nil {
		var busy, applied int
		err := r.target.QueryRow(ctx, marker+`select
  (select count(*) from indexpilot.recommendations where state in ('approved','building'))
  + (select count(*) from indexpilot.builds where state in ('pending','running'))
  + (select count(*) from indexpilot.validations where state <> 'done')
  + (select count(*) from indexpilot.removals where state in ('pending','running'))
  + (select greatest(count(*) - 1, 0) from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relname = any($1)),
  (select count(*) from indexpilot.recommendations where state in ('applied','reverted'))`, Seeded).Scan(&busy, &applied)
		switch {
		case err != nil || busy > 0 || applied == 0:
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = time.Now()
		case time.Since(quietSince) >= 3*time.Second:
			return true
		}
		sleep(ctx, 500*time.Millisecond)
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// backedOff counts the processes whose log says the connection budget's
// guard stopped them opening connections: a run starved of slots (other
// sessions side by side on the server, say) may not settle, and its
// violations then say what IndexPilot was kept from finishing.
func backedOff(dir string) int {
	n := 0
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(postgres.MsgBackingOff)) {
			n++
		}
	}
	return n
}

// keepLogs copies the processes' logs of a failed run for inspection.
func keepLogs(from, to string) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return
	}
	files, _ := filepath.Glob(filepath.Join(from, "*.log"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644)
		}
	}
}
