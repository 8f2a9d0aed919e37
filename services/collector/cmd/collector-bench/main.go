// Command collector-bench measures the collector at scale on a local
// PostgreSQL, publishing to kfake (an in-process Kafka-protocol broker)
// through the production bus (watermill-kafka), and prints a table:
//
//  1. a fleet of targets (default 100 databases, 500 distinct statements
//     each, each statement run once per interval) polled every 10 s;
//  2. one target with 5,000 statements;
//  3. app-fed statistics (indexpilot.query_stats) streamed by logical
//     replication into Kafka.
//
// It creates its own databases (ipt_bench_*) and drops them and their
// replication slots at the end, also on Ctrl-C. The broker, a consumer
// that counts the events reaching it and the workload driver run in a child
// process (this binary with -helper), so that the CPU time measured in this
// process is the collector's own (and its Kafka producer's).
//
//	go run ./cmd/collector-bench -admin postgres://postgres@127.0.0.1:5432/postgres
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/collector"
	"github.com/indexpilot/indexpilot/services/collector/appstats"
)

// prefix starts the name of every database the bench creates.
const prefix = "ipt_bench_"

// setupHint is how to give the server room for the fleet.
const setupHint = "sudo infra/scripts/setup-postgres.sh --bench"

type options struct {
	admin      string
	targets    int
	statements int
	interval   time.Duration
	cycles     int
	big        int
	rows       int
}

func main() {
	var o options
	flag.StringVar(&o.admin, "admin", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database URL")
	flag.IntVar(&o.targets, "targets", 100, "target databases in the fleet scenario")
	flag.IntVar(&o.statements, "statements", 500, "distinct statements per fleet target (each run once per interval)")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "poll interval of the fleet scenario")
	flag.IntVar(&o.cycles, "cycles", 3, "poll cycles measured in the fleet scenario")
	flag.IntVar(&o.big, "big", 5000, "distinct statements of the single-target scenario")
	flag.IntVar(&o.rows, "rows", 100000, "query_stats rows streamed in the streaming scenario")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	helperMode := flag.Bool("helper", false, "internal: run kfake, the event counter and the workload driver")
	flag.Parse()
	if *helperMode {
		if err := helper(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "collector-bench helper:", err)
			os.Exit(1)
		}
		return
	}
	if o.targets < 1 || o.statements < 1 || o.cycles < 1 || o.big < 1 || o.rows < 1 || o.interval <= 0 {
		fmt.Fprintln(os.Stderr, "collector-bench: -targets, -statements, -cycles, -big, -rows and -interval must be positive")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "collector-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "collector-bench:", err)
			os.Exit(1)
		}
	}
	err := run(o)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "collector-bench:", err)
		os.Exit(1)
	}
}

type result struct{ scenario, metric, value string }

type bench struct {
	o       options
	admin   *pgx.Conn
	ctl     *pgxpool.Pool
	ctlURL  string
	bus     *bus.Bus
	helper  *helperProc
	created []string
}

func run(o options) error {
	bg := context.Background()
	// Ctrl-C stops the measurement but still drops the databases.
	ctx, stop := signal.NotifyContext(bg, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := pgx.Connect(ctx, o.admin)
	if err != nil {
		return fmt.Errorf("connect admin: %w", err)
	}
	defer a.Close(bg)
	b := &bench{o: o, admin: a}
	if err := b.checkServer(ctx); err != nil {
		return err
	}
	defer b.cleanup()

	// Leftovers of an interrupted run.
	var stale []string
	rows, _ := a.Query(ctx, "select datname from pg_database where datname like $1", prefix+"%")
	if names, err := pgx.CollectRows(rows, pgx.RowTo[string]); err == nil {
		stale = names
	}
	b.created = append(b.created, stale...)
	b.cleanup()
	b.created = nil

	if b.helper, err = startHelper(); err != nil {
		return err
	}
	defer b.helper.close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if b.bus, err = bus.New(config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: b.helper.brokers, Version: "3.6.0"}}, logger); err != nil {
		return err
	}
	defer b.bus.Close()

	if b.ctlURL, err = b.mkdb(ctx, prefix+"control"); err != nil {
		return err
	}
	if b.ctl, err = pgxpool.New(ctx, b.ctlURL); err != nil {
		return err
	}
	defer b.ctl.Close()
	if _, err := metadata.Migrate(ctx, b.ctl); err != nil {
		return err
	}

	var res []result
	// 1. The fleet.
	fmt.Fprintf(os.Stderr, "preparing %d targets with %d statements each...\n", o.targets, o.statements)
	names := make([]string, o.targets)
	for i := range names {
		names[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	urls, err := b.prepare(ctx, names, o.statements)
	if err != nil {
		return err
	}
	var fleet []config.Target
	for i, u := range urls {
		fleet = append(fleet, config.Target{Name: fmt.Sprintf("t%03d", i), DSN: u, AppStats: config.AppStatsOff})
	}
	r, err := b.measureFleet(ctx, fleet, prefix+"0%", o.statements, o.interval, o.cycles)
	if err != nil {
		return err
	}
	res = append(res, r...)
	res = append(res, b.statementsCost(ctx, prefix+"0%", len(fleet))...)
	// The fleet's statements would slow every later read of
	// pg_stat_statements: drop them with their databases.
	fmt.Fprintf(os.Stderr, "dropping the %d targets...\n", len(fleet))
	b.dropDBs(names)

	// 2. One target with many statements.
	fmt.Fprintf(os.Stderr, "preparing one target with %d statements...\n", o.big)
	bigURL, err := b.prepare(ctx, []string{prefix + "big"}, o.big)
	if err != nil {
		return err
	}
	r, err = b.measureFleet(ctx, []config.Target{{Name: "big", DSN: bigURL[0], AppStats: config.AppStatsOff}}, prefix+"big", o.big, 2*time.Second, 3)
	if err != nil {
		return err
	}
	var kept int
	_ = a.QueryRow(ctx, "select count(*) from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1", prefix+"big").Scan(&kept)
	label := fmt.Sprintf("1 target, %d statements (%d kept by pg_stat_statements), every 2s", o.big, kept)
	for _, x := range r {
		if x.metric == metricDBTime || x.metric == metricServer || x.metric == metricEvents {
			res = append(res, result{label, x.metric, x.value})
		}
	}

	// 3. Streaming.
	fmt.Fprintf(os.Stderr, "streaming %d query_stats rows...\n", o.rows)
	streamURL, err := b.mkdb(ctx, prefix+"stream")
	if err != nil {
		return err
	}
	rate, err := b.measureStream(ctx, streamURL, o.rows)
	if err != nil {
		return err
	}
	res = append(res, result{fmt.Sprintf("stream %d query_stats rows", o.rows), "rows/s end to end (COPY into query_stats to event consumed from kfake)", fmt.Sprintf("%.0f", rate)})

	// 4. What the bus itself can carry into kfake, without a database.
	fmt.Fprintln(os.Stderr, "publishing straight to kfake...")
	rate, err = b.measurePublish(ctx, 20000, 1000)
	if err != nil {
		return err
	}
	res = append(res, result{"publish 20000 appstat events in batches of 1000, no database", "events/s into kfake (consumed back)", fmt.Sprintf("%.0f", rate)})

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE")
	for _, x := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.scenario, x.metric, x.value)
	}
	return tw.Flush()
}

// checkServer refuses a fleet the server has no connections for: each
// target holds one connection while the collector runs, the driver a few.
func (b *bench) checkServer(ctx context.Context) error {
	var maxConns, used, pgssMax int
	if err := b.admin.QueryRow(ctx, `select current_setting('max_connections')::int, (select count(*) from pg_stat_activity),
       coalesce(current_setting('pg_stat_statements.max', true), '0')::int`).Scan(&maxConns, &used, &pgssMax); err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	const reserve = 20 // control database, driver, admin, other users
	if need := b.o.targets + reserve; used+need > maxConns {
		return fmt.Errorf("max_connections is %d with %d in use: %d targets need about %d more; run %s (max_connections=400) or pass a smaller -targets",
			maxConns, used, b.o.targets, need, setupHint)
	}
	if need := b.o.targets*b.o.statements + b.o.big; pgssMax < need {
		fmt.Fprintf(os.Stderr, "warning: pg_stat_statements.max is %d, fewer than the %d statements of the run: some are evicted (%s sets 60000)\n", pgssMax, need, setupHint)
	}
	return nil
}

// cleanup drops the databases created so far.
func (b *bench) cleanup() {
	b.dropDBs(b.created)
}

// dropDBs drops databases, after their replication slots (a slot keeps WAL
// forever), and forgets them.
func (b *bench) dropDBs(dbs []string) {
	bg := context.Background()
	for _, db := range slices.Clone(dbs) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var left int
			_, _ = b.admin.Exec(bg, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active", db)
			if b.admin.QueryRow(bg, "select count(*) from pg_replication_slots where database = $1", db).Scan(&left) == nil && left == 0 {
				break
			}
		}
		// Dropping a database leaves its pg_stat_statements entries behind
		// (tens of thousands here): reset this database's entries only.
		_, _ = b.admin.Exec(bg, "select pg_stat_statements_reset(0, oid, 0) from pg_database where datname = $1", db)
		if _, err := b.admin.Exec(bg, "drop database if exists "+pgx.Identifier{db}.Sanitize()+" with (force)"); err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", db, err)
			continue
		}
		b.created = slices.DeleteFunc(b.created, func(n string) bool { return n == db })
	}
}

func (b *bench) mkdb(ctx context.Context, name string) (string, error) {
	if _, err := b.admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	b.created = append(b.created, name)
	u, err := pgx.ParseConfig(b.o.admin)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", u.User, u.Host, u.Port, name), nil
}

// prepare creates the databases and runs the workload's statements once in
// each, four at a time.
func (b *bench) prepare(ctx context.Context, names []string, nStmts int) ([]string, error) {
	urls := make([]string, len(names))
	for i, n := range names {
		u, err := b.mkdb(ctx, n)
		if err != nil {
			return nil, err
		}
		urls[i] = u
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan string)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				if err := setupTarget(ctx, u, nStmts); err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, u := range urls {
		next <- u
	}
	close(next)
	wg.Wait()
	return urls, first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// setupTarget creates pg_stat_statements and the table the workload reads,
// and runs the statements once.
func setupTarget(ctx context.Context, url string, n int) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "create extension if not exists pg_stat_statements"); err != nil {
		return fmt.Errorf("create extension pg_stat_statements: %w", err)
	}
	ddl := "create table bench (id bigint primary key"
	for i := range workloadCols {
		ddl += fmt.Sprintf(", c%d int", i)
	}
	if _, err := c.Exec(ctx, ddl+")"); err != nil {
		return err
	}
	return runWorkload(ctx, c, n)
}

const (
	metricCPU    = "collector CPU per poll cycle (all targets)"
	metricDBTime = "database time per poll per target, wall clock as the collector waits (mean / p95 / max)"
	metricServer = "server time of the collector's statements per poll per target (pg_stat_statements)"
	metricEvents = "events/s reaching kfake"
)

// measureFleet runs the collector over ts, with the driver running each
// target's nStmts statements once per interval, and measures cycles poll
// cycles after the first (which connects, reads every text and baselines).
//
// like matches the names of the targets' databases.
func (b *bench) measureFleet(ctx context.Context, ts []config.Target, like string, nStmts int, interval time.Duration, cycles int) ([]result, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := config.Default()
	cfg.DatabaseURL = b.ctlURL
	cfg.Targets = ts
	cfg.Collector.Interval = interval
	cfg.Collector.QueryTimeout = 30 * time.Second
	d := stage.Deps{Config: cfg, Bus: b.bus, Control: b.ctl, Targets: stage.NewTargets(nil, collector.Name), Logger: logger}
	if _, err := b.ctl.Exec(ctx, "truncate indexpilot.collector_targets"); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); _ = collector.StartWith(cctx, d, collector.Options{NoSignals: true}) }()

	// Wait for every target's first poll.
	for deadline := time.Now().Add(3 * time.Minute); ; {
		var polled int
		if err := b.ctl.QueryRow(ctx, "select count(*) from indexpilot.collector_targets where last_poll_at is not null").Scan(&polled); err != nil {
			return nil, err
		}
		if polled == len(ts) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d targets polled once within 3 minutes", polled, len(ts))
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	var urls []string
	for _, t := range ts {
		urls = append(urls, t.DSN)
	}
	if err := b.helper.drive(interval, nStmts, urls); err != nil {
		return nil, err
	}
	defer func() { _ = b.helper.drive(0, 0, nil) }()
	// One interval for the driver to get round every target once.
	if !sleep(ctx, interval) {
		return nil, ctx.Err()
	}

	type pollKey struct {
		target string
		at     time.Time
	}
	var (
		mu       sync.Mutex
		dbMs     = map[pollKey]float64{}
		maxConns int
	)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sleep(sampleCtx, 500*time.Millisecond) {
			rows, err := b.ctl.Query(sampleCtx, "select target, last_poll_at, poll_db_ms from indexpilot.collector_targets where healthy and last_poll_at is not null")
			if err == nil {
				for rows.Next() {
					var (
						k  pollKey
						ms float64
					)
					if rows.Scan(&k.target, &k.at, &ms) == nil {
						mu.Lock()
						dbMs[k] = ms
						mu.Unlock()
					}
				}
				rows.Close()
			}
			var n int
			if b.ctl.QueryRow(sampleCtx, "select count(*) from pg_stat_activity where application_name = $1", "indexpilot-"+collector.Name).Scan(&n) == nil {
				mu.Lock()
				maxConns = max(maxConns, n)
				mu.Unlock()
			}
		}
	}()

	srv0, err := b.collectorServerMs(ctx, like)
	if err != nil {
		stopSampling()
		return nil, err
	}
	cpu0, t0 := cpu(), time.Now()
	ev0, err := b.helper.count()
	if err != nil {
		stopSampling()
		return nil, err
	}
	ok := sleep(ctx, time.Duration(cycles)*interval)
	cpu1, t1 := cpu(), time.Now()
	ev1, err := b.helper.count()
	stopSampling()
	<-sampled
	if !ok {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	srv1, err := b.collectorServerMs(ctx, like)
	if err != nil {
		return nil, err
	}
	var healthy int
	if err := b.ctl.QueryRow(ctx, "select count(*) from indexpilot.collector_targets where healthy").Scan(&healthy); err != nil {
		return nil, err
	}
	var samples []float64
	for k, ms := range dbMs {
		if k.at.After(t0) && !k.at.After(t1) {
			samples = append(samples, ms)
		}
	}
	window := t1.Sub(t0)
	label := fmt.Sprintf("%d targets × %d statements, every %s", len(ts), nStmts, interval)
	return []result{
		{label, metricCPU, (time.Duration(float64(cpu1-cpu0) / (window.Seconds() / interval.Seconds()))).Round(time.Millisecond).String()},
		{label, metricDBTime, summary(samples)},
		{label, metricServer, fmt.Sprintf("%.1f ms", (srv1-srv0)/float64(max(len(samples), 1)))},
		{label, metricEvents, fmt.Sprintf("%.0f (%d in %.0f s)", float64(ev1.total()-ev0.total())/window.Seconds(), ev1.total()-ev0.total(), window.Seconds())},
		{label, "collector connections to PostgreSQL (max seen)", fmt.Sprintf("%d", maxConns)},
		{label, "targets healthy at the end", fmt.Sprintf("%d of %d", healthy, len(ts))},
	}, nil
}

// collectorServerMs is the execution time pg_stat_statements recorded for
// the collector's statements in the databases matching like.
func (b *bench) collectorServerMs(ctx context.Context, like string) (float64, error) {
	var ms float64
	err := b.admin.QueryRow(ctx, `select coalesce(sum(s.total_exec_time), 0)
  from pg_stat_statements s join pg_database d on d.oid = s.dbid
 where d.datname like $1 and s.query like '/* indexpilot:collector */%'`, like).Scan(&ms)
	return ms, err
}

// summary is "mean / p95 / max ms (n polls)".
func summary(ms []float64) string {
	if len(ms) == 0 {
		return "no poll measured"
	}
	slices.Sort(ms)
	var sum float64
	for _, x := range ms {
		sum += x
	}
	p95 := ms[min(len(ms)-1, int(float64(len(ms))*0.95))]
	return fmt.Sprintf("%.1f / %.1f / %.1f ms (%d polls)", sum/float64(len(ms)), p95, ms[len(ms)-1], len(ms))
}

// statementsCost reads, from pg_stat_statements itself, what the
// collector's pg_stat_statements reads cost the server in the databases
// matching like.
func (b *bench) statementsCost(ctx context.Context, like string, targets int) []result {
	var (
		counterCalls, textCalls int64
		counterMs, textMs       float64
	)
	// pg_stat_statements normalizes the showtext constant to $1: the two
	// reads are told apart by their columns.
	err := b.admin.QueryRow(ctx, `select coalesce(sum(s.calls) filter (where s.query like '%s.shared_blks_read%'), 0),
       coalesce(sum(s.total_exec_time) filter (where s.query like '%s.shared_blks_read%'), 0),
       coalesce(sum(s.calls) filter (where s.query like '%s.dbid, s.queryid, s.query%'), 0),
       coalesce(sum(s.total_exec_time) filter (where s.query like '%s.dbid, s.queryid, s.query%'), 0)
  from pg_stat_statements s join pg_database d on d.oid = s.dbid
 where d.datname like $1 and s.query like '/* indexpilot:collector */%pg_stat_statements%'`, like).Scan(&counterCalls, &counterMs, &textCalls, &textMs)
	if err != nil || counterCalls == 0 {
		return nil
	}
	label := fmt.Sprintf("%d targets, whole run", targets)
	out := []result{{label, "pg_stat_statements counters reads (no texts; one read serves every target): reads, server time per read", fmt.Sprintf("%d, %.1f ms", counterCalls, counterMs/float64(counterCalls))}}
	if textCalls > 0 {
		out = append(out, result{label, "pg_stat_statements texts reads (all databases, only when a new query id shows up): reads, server time per read",
			fmt.Sprintf("%d, %.1f ms", textCalls, textMs/float64(textCalls))})
	}
	return out
}

func (b *bench) measureStream(ctx context.Context, url string, nRows int) (float64, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	logical, err := appstats.Install(ctx, pool)
	if err != nil {
		return 0, err
	}
	if !logical {
		return 0, errors.New("wal_level is not logical: the streaming scenario needs it")
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cctx, cancel := context.WithCancel(ctx)
	cfg := config.Default()
	cfg.DatabaseURL = b.ctlURL
	cfg.Targets = []config.Target{{Name: "stream", DSN: url, Interval: time.Hour}}
	d := stage.Deps{Config: cfg, Bus: b.bus, Control: b.ctl, Targets: stage.NewTargets(nil, collector.Name), Logger: logger}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = collector.StartWith(cctx, d, collector.Options{NoSignals: true}) }()
	defer func() { cancel(); wg.Wait() }()
	slot := appstats.SlotName("stream", prefix+"stream")
	for deadline := time.Now().Add(time.Minute); ; {
		var ready bool
		_ = pool.QueryRow(ctx, "select exists(select 1 from pg_replication_slots where slot_name = $1 and confirmed_flush_lsn is not null and active)", slot).Scan(&ready)
		if ready {
			break
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the collector did not start streaming within a minute")
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
	c0, err := b.helper.count()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	const perTxn = 1000
	now := time.Now()
	for done := 0; done < nRows; done += perTxn {
		batch := make([][]any, 0, perTxn)
		for i := 0; i < perTxn && done+i < nRows; i++ {
			batch = append(batch, []any{now, fmt.Sprintf("t%d", i%50), "orders", "email", "select", 1.5})
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"indexpilot", "query_stats"},
			[]string{"recorded_at", "tenant_id", "table_name", "field_name", "query_type", "duration_ms"}, pgx.CopyFromRows(batch)); err != nil {
			return 0, err
		}
	}
	for {
		c, err := b.helper.count()
		if err != nil {
			return 0, err
		}
		if got := c.appStats - c0.appStats; got >= int64(nRows) {
			return float64(nRows) / time.Since(start).Seconds(), nil
		} else if time.Since(start) > 5*time.Minute {
			return 0, fmt.Errorf("only %d of %d rows reached kfake in 5 minutes", got, nRows)
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// measurePublish publishes n app-stat events through the bus in batches
// of batch, as the collector publishes a poll or a transaction, and
// returns the rate at which they were consumed back from kfake: the
// ceiling of the streaming scenario.
func (b *bench) measurePublish(ctx context.Context, n, batch int) (float64, error) {
	c0, err := b.helper.count()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	evs := make([]events.Payload, 0, batch)
	for lo := 0; lo < n; lo += batch {
		evs = evs[:0]
		for i := lo; i < min(lo+batch, n); i++ {
			evs = append(evs, &events.AppStatObserved{Target: "publish", RowID: fmt.Sprint(i), Table: "orders", QueryType: "select", DurationMs: 1.5, RecordedAt: start})
		}
		if _, err := b.bus.PublishBatch(ctx, collector.Name, "", evs); err != nil {
			return 0, err
		}
	}
	for {
		c, err := b.helper.count()
		if err != nil {
			return 0, err
		}
		if c.appStats-c0.appStats >= int64(n) {
			return float64(n) / time.Since(start).Seconds(), nil
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// collectorTopics are the topics the collector publishes to.
func collectorTopics() []string {
	return []string{events.Topic(events.TypeQueryStatObserved), events.Topic(events.TypeTableStatObserved), events.Topic(events.TypeAppStatObserved)}
}
