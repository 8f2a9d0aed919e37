// Package chaos runs the whole IndexPilot pipeline as separate `indexpilot
// run` processes against a throwaway database on a real PostgreSQL,
// injects seeded random faults (SIGKILL at a chosen moment, killed
// sessions, a long conflicting transaction, a statistics reset, the
// database made unreachable), and checks the product's promises after each
// run: no duplicate index, no INVALID leftover, every decision terminal or
// pending with a reason, no recommendation lost, no application statement
// queued behind IndexPilot's locks past executor.lock_timeout + 1 s, one
// mutation_log outcome per build.
//
// Every random choice of a run comes from a generator seeded with (seed,
// run number), so `CHAOS_SEED=s` replays the same fault plan; timing on a
// shared machine still varies, which is the point of running many runs.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// Prefix names every database the harness creates; leftovers of an
// interrupted run are dropped at start.
const Prefix = "ipchaos_"

// marker starts the harness's own statements so that the collector leaves
// them out; the workload driver's statements carry none (they play the
// application).
var marker = postgres.Marker("chaos")

// Application names of the harness's own sessions.
const (
	appDriver  = "ipchaos-app"
	appHarness = "ipchaos-harness"
	appBlocker = "ipchaos-blocker"
)

// LockTimeout is the executor.lock_timeout the runs configure; an
// application statement may wait on IndexPilot at most this plus a second.
const LockTimeout = 2 * time.Second

// Fault kinds.
const (
	FaultNone        = "none"
	FaultBroker      = "broker_stop"
	FaultKill        = "sigkill"
	FaultTerminate   = "terminate"
	FaultLongTx      = "long_tx"
	FaultStatsReset  = "stats_reset"
	FaultUnreachable = "unreachable"
)

// Faults lists every fault kind of the memory shape in the order runs
// cycle through them; the Kafka shape adds FaultBroker.
var Faults = []string{FaultKill, FaultTerminate, FaultLongTx, FaultStatsReset, FaultUnreachable, FaultNone}

// Shapes: every stage in one `indexpilot run` process per replica on the
// memory bus, or each stage its own process over a Kafka-protocol broker
// process (kfake-broker).
const (
	ShapeMemory = "memory"
	ShapeKafka  = "kafka"
)

// killPhases are the moments a SIGKILL aims at.
var killPhases = []string{"before_build", "during_build", "after_build", "validation", "removal"}

// Scale is the data the runs load: large enough that each build takes a
// noticeable time on a busy two-core machine, small enough to load in a few
// seconds.
var Scale = demo.Scale{Tenants: 50, Organizations: 5_000, Contacts: 150_000, Interactions: 500_000}

// Options configure a chaos session.
type Options struct {
	Seed     uint64
	Runs     int
	From     int      // the first run number: CHAOS_FROM=n CHAOS_RUNS=1 replays run n of a session alone
	Shape    string   // ShapeMemory or ShapeKafka
	Procs    int      // replicas per run sharing the control database: of the all-in-one process, or of the scorer and executor
	Broker   string   // the kfake-broker binary (Kafka shape); built when empty
	Faults   []string // fault kinds to cycle through
	AdminURL string   // maintenance database of the server
	Bin      string   // the indexpilot binary; built when empty
	RunLimit time.Duration
	LogDir   string // per-run process logs are kept here when a run fails
}

// Result is one run's outcome.
type Result struct {
	Run        int
	Fault      string // kind/variant, e.g. sigkill/during_build
	Settled    bool
	Violations []string
	Notes      []string
	Took       time.Duration
}

// Session runs the runs.
type Session struct {
	opts  Options
	admin *pgxpool.Pool
	out   io.Writer
}

// Main runs a whole session and returns the process exit code.
func Main(ctx context.Context, opts Options, out, errOut io.Writer) int {
	if err := opts.validate(); err != nil {
		fmt.Fprintln(errOut, "chaos:", err)
		return 2
	}
	fmt.Fprintf(out, "chaos: seed %d, shape %s, %d runs, %d replica(s)\n", opts.Seed, opts.Shape, opts.Runs, opts.Procs)
	results, err := Run(ctx, opts, out)
	PrintTable(out, opts, results)
	if err != nil {
		fmt.Fprintf(errOut, "chaos: %v (reproduce: CHAOS_SEED=%d CHAOS_RUNS=%d CHAOS_PROCS=%d CHAOS_SHAPE=%s)\n", err, opts.Seed, opts.Runs, opts.Procs, opts.Shape)
		return 1
	}
	bad := 0
	for _, r := range results {
		if len(r.Violations) > 0 {
			bad++
		}
	}
	if bad > 0 {
		fmt.Fprintf(errOut, "chaos: %d of %d runs violated an invariant; reproduce: CHAOS_SEED=%d CHAOS_RUNS=%d CHAOS_PROCS=%d CHAOS_SHAPE=%s make chaos\n",
			bad, len(results), opts.Seed, opts.Runs, opts.Procs, opts.Shape)
		return 1
	}
	return 0
}

func (o *Options) validate() error {
	if o.Runs < 1 {
		return fmt.Errorf("CHAOS_RUNS must be at least 1, got %d", o.Runs)
	}
	if o.Procs < 1 || o.Procs > 4 {
		return fmt.Errorf("CHAOS_PROCS must be 1 to 4, got %d", o.Procs)
	}
	if o.Shape == "" {
		o.Shape = ShapeMemory
	}
	valid := Faults
	switch o.Shape {
	case ShapeMemory:
	case ShapeKafka:
		valid = append([]string{FaultBroker}, Faults...)
	default:
		return fmt.Errorf("CHAOS_SHAPE must be %s or %s, got %q", ShapeMemory, ShapeKafka, o.Shape)
	}
	if len(o.Faults) == 0 {
		o.Faults = valid
	}
	for _, f := range o.Faults {
		if !contains(valid, f) {
			return fmt.Errorf("unknown fault %q for shape %s (valid: %s)", f, o.Shape, strings.Join(valid, ", "))
		}
	}
	if o.RunLimit <= 0 {
		o.RunLimit = 3 * time.Minute
	}
	return nil
}

// Run executes opts.Runs runs and returns their results. An error means the
// harness itself could not work (no server, no binary), not a violation.
func Run(ctx context.Context, opts Options, out io.Writer) ([]Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	admin, err := connect(ctx, opts.AdminURL, appHarness, 3)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	s := &Session{opts: opts, admin: admin, out: out}
	if err := s.dropLeftovers(ctx); err != nil {
		return nil, err
	}
	if short, err := s.shortOfSlots(ctx); err != nil {
		return nil, err
	} else if short != "" {
		return nil, fmt.Errorf("%s: IndexPilot would back off and the runs could not settle; raise max_connections (infra/scripts/setup-postgres.sh --bench) or run fewer sessions side by side", short)
	}
	binDir, err := os.MkdirTemp("", "ipchaos-bin")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(binDir)
	if s.opts.Bin, err = goBuild(ctx, out, s.opts.Bin, binDir, "github.com/indexpilot/indexpilot/services/indexpilot/cmd/indexpilot"); err != nil {
		return nil, err
	}
	if opts.Shape == ShapeKafka {
		if s.opts.Broker, err = goBuild(ctx, out, s.opts.Broker, binDir, "github.com/indexpilot/indexpilot/integration/cmd/kfake-broker"); err != nil {
			return nil, err
		}
	}
	var results []Result
	for i := opts.From; i < opts.From+opts.Runs; i++ {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		fault := opts.Faults[i%len(opts.Faults)]
		short, _ := s.shortOfSlots(ctx)
		r := s.run(ctx, i, fault)
		if short != "" {
			r.Notes = append(r.Notes, "at its start "+short)
		}
		if ctx.Err() != nil {
			return results, fmt.Errorf("interrupted during run %d", i) // not counted
		}
		results = append(results, r)
		status := "ok"
		if len(r.Violations) > 0 {
			status = "VIOLATION: " + strings.Join(r.Violations, "; ")
		}
		fmt.Fprintf(out, "run %3d  %-26s settled=%-5v %6.1fs  %s", i, r.Fault, r.Settled, r.Took.Seconds(), status)
		if len(r.Notes) > 0 {
			fmt.Fprintf(out, "  (%s)", strings.Join(r.Notes, "; "))
		}
		fmt.Fprintln(out)
	}
	return results, nil
}

// processes lists a run's IndexPilot processes by subcommand, in the
// order they start: `run` per replica (memory), or one process per stage
// with the scorer and executor replicated (kafka; consumers first: the
// collector's first poll is a baseline).
func (o Options) processes() []string {
	if o.Shape != ShapeKafka {
		procs := make([]string, o.Procs)
		for k := range procs {
			procs[k] = "run"
		}
		return procs
	}
	stages := []string{"executor", "gatekeeper", "scorer"}
	for k := 1; k < o.Procs; k++ {
		stages = append(stages, "executor", "scorer")
	}
	return append(stages, "collector")
}

// slotsPerRun is how many connections one run holds at its peak: each
// IndexPilot process its budget on the server (the control database is the
// run's database there), its bypass listener and a build; the harness its
// admin, target, application and blocker sessions. Sampled every 3 s over
// two minutes of runs, a kafka-shape run with CHAOS_PROCS=2 held at most 36
// (this gives 38) and a memory-shape run 13 (this gives 13).
func (o Options) slotsPerRun() int {
	return len(o.processes())*(config.Default().Connections.PerServer+2) + 3 + 2 + 2 + 1
}

// shortOfSlots says why the server lacks the connection slots a run needs
// on top of the margin IndexPilot's guard keeps free, or "" when it has
// them. Sessions side by side on one server add up.
func (s *Session) shortOfSlots(ctx context.Context) (string, error) {
	c, err := s.admin.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("read connection slots: %s", postgres.Describe(err))
	}
	defer c.Release()
	free, keep, err := postgres.Headroom(ctx, c.Conn(), config.Default().Connections)
	if err != nil {
		return "", fmt.Errorf("read connection slots: %s", postgres.Describe(err))
	}
	if need := s.opts.slotsPerRun(); free < need+keep {
		return fmt.Sprintf("the server has %d connection slots free, a run needs up to %d plus the %d IndexPilot leaves free", free, need, keep), nil
	}
	return "", nil
}

// goBuild returns bin, or builds pkg into dir when bin is empty (the
// workspace's go.work resolves the sibling modules).
func goBuild(ctx context.Context, out io.Writer, bin, dir, pkg string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(dir, filepath.Base(pkg))
	fmt.Fprintln(out, "chaos: building", filepath.Base(pkg))
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v: %s", filepath.Base(pkg), err, lastLine(string(b)))
	}
	return bin, nil
}

// PrintTable prints runs and violations per fault variant.
func PrintTable(out io.Writer, opts Options, results []Result) {
	type row struct{ runs, bad, unsettled int }
	rows := map[string]*row{}
	for _, r := range results {
		x := rows[r.Fault]
		if x == nil {
			x = &row{}
			rows[r.Fault] = x
		}
		x.runs++
		if len(r.Violations) > 0 {
			x.bad++
		}
		if !r.Settled {
			x.unsettled++
		}
	}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "\nchaos seed %d, shape %s, %d runs, %d replica(s)\n", opts.Seed, opts.Shape, len(results), opts.Procs)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tRUNS\tVIOLATIONS\tNOT SETTLED")
	total := row{}
	for _, k := range keys {
		x := rows[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", k, x.runs, x.bad, x.unsettled)
		total.runs += x.runs
		total.bad += x.bad
		total.unsettled += x.unsettled
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\n", total.runs, total.bad, total.unsettled)
	_ = tw.Flush()
}

// dropLeftovers drops the databases of an interrupted session.
func (s *Session) dropLeftovers(ctx context.Context) error {
	rows, err := s.admin.Query(ctx, marker+"select datname from pg_database where datname like $1", Prefix+"%")
	if err != nil {
		return fmt.Errorf("list leftover databases: %s", postgres.Describe(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list leftover databases: %s", postgres.Describe(err))
	}
	for _, n := range names {
		if sessionAlive(n) {
			continue // another chaos session on this machine is using it
		}
		if err := s.dropDatabase(ctx, n); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "chaos: dropped leftover database %s\n", n)
	}
	return nil
}

// sessionAlive reports whether the database name (ipchaos_<pid>_<run>)
// belongs to a chaos process still running on this machine.
func sessionAlive(name string) bool {
	rest := strings.TrimPrefix(name, Prefix)
	pidText, _, ok := strings.Cut(rest, "_")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func (s *Session) dropDatabase(ctx context.Context, name string) error {
	// A database left with connections disallowed must accept them again
	// before it can be dropped by a later session.
	if _, err := s.admin.Exec(ctx, marker+"alter database "+postgres.Ident(name)+" allow_connections true"); err != nil {
		return fmt.Errorf("drop database %s: %s", name, postgres.Describe(err))
	}
	// Its statements leave pg_stat_statements with it: hundreds of runs
	// would otherwise fill the shared server's table with entries of dropped
	// databases, and a full table evicts other users' newest entries.
	// Without the extension in the maintenance database there is nothing
	// to call (42883).
	if _, err := s.admin.Exec(ctx, marker+"select pg_stat_statements_reset(0, d.oid, 0) from pg_database d where d.datname = $1", name); err != nil && postgres.SQLState(err) != "42883" {
		return fmt.Errorf("reset statements of %s: %s", name, postgres.Describe(err))
	}
	if _, err := s.admin.Exec(ctx, marker+"drop database if exists "+postgres.Ident(name)+" with (force)"); err != nil {
		return fmt.Errorf("drop database %s: %s", name, postgres.Describe(err))
	}
	return nil
}

// connect opens a small pool with an application name of the harness.
func connect(ctx context.Context, dsn, app string, max int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("parse connection string: invalid format")
	}
	pc.ConnConfig.RuntimeParams["application_name"] = app
	pc.MaxConns = max
	pc.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %s", postgres.Describe(err))
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %s", postgres.Describe(err))
	}
	return pool, nil
}

// proc is one `indexpilot run` process; it can be killed and restarted.
type proc struct {
	name     string // "run", a stage name or "broker"
	bin, dir string
	args     []string
	env      []string
	log      *os.File
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	// held is set while the harness itself has the process down (killed
	// and about to be restarted, or stopping): the supervisor leaves it.
	held bool
	// crashes counts exits the harness did not cause.
	crashes int
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start indexpilot run: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done, p.held = cmd, done, false
	fmt.Fprintf(p.log, "\n--- chaos: started pid %d at %s\n", cmd.Process.Pid, time.Now().Format(time.RFC3339Nano))
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.held = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	fmt.Fprintf(p.log, "\n--- chaos: SIGKILL pid %d at %s\n", cmd.Process.Pid, time.Now().Format(time.RFC3339Nano))
}

// stop asks the process to stop (SIGTERM) and kills it after grace. It
// reports whether it stopped in time.
func (p *proc) stop(grace time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.held = true
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return false
	}
}

// restartIfCrashed plays the service manager: a process that exited
// without the harness causing it (a failed start while its database was
// unreachable, say) is started again. It reports whether it was.
func (p *proc) restartIfCrashed() (bool, error) {
	p.mu.Lock()
	if p.held || p.done == nil {
		p.mu.Unlock()
		return false, nil
	}
	select {
	case <-p.done:
	default:
		p.mu.Unlock()
		return false, nil
	}
	p.crashes++
	p.mu.Unlock()
	return true, p.start()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runRand returns the generator of one run: every choice of run i of seed
// comes from it.
func runRand(seed uint64, run int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(run)))
}
