// Command collector-bench measures the collector at scale on a local
// PostgreSQL and prints a table: many targets polled together, one target
// with many statements, and app-fed statistics streamed by logical
// replication. It creates its own databases (ipbench_*) and drops them.
//
//	go run ./cmd/collector-bench -admin postgres://postgres@127.0.0.1:5432/postgres
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
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

func main() {
	admin := flag.String("admin", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database URL")
	targets := flag.Int("targets", 100, "target databases in the fleet scenario")
	statements := flag.Int("statements", 500, "distinct statements per fleet target")
	interval := flag.Duration("interval", 10*time.Second, "poll interval of the fleet scenario")
	cycles := flag.Int("cycles", 3, "poll cycles measured in the fleet scenario")
	big := flag.Int("big", 5000, "distinct statements of the single-target scenario")
	rows := flag.Int("rows", 100000, "query_stats rows streamed in the streaming scenario")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
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
		defer pprof.StopCPUProfile()
	}
	if err := run(*admin, *targets, *statements, *interval, *cycles, *big, *rows); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "collector-bench:", err)
		os.Exit(1)
	}
}

type result struct{ scenario, metric, value string }

func run(admin string, nTargets, nStmts int, interval time.Duration, cycles, big, nRows int) error {
	bg := context.Background()
	// Ctrl-C stops the measurement but still drops the databases.
	ctx, stop := signal.NotifyContext(bg, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect admin: %w", err)
	}
	defer a.Close(bg)
	var pgssMax string
	_ = a.QueryRow(ctx, "select current_setting('pg_stat_statements.max', true)").Scan(&pgssMax)
	// Each target holds about one connection while it is polled: stay well
	// below max_connections, which other users of the server need too.
	var maxConns, used int
	if err := a.QueryRow(ctx, "select current_setting('max_connections')::int, (select count(*) from pg_stat_activity)").Scan(&maxConns, &used); err != nil {
		return fmt.Errorf("read max_connections: %w", err)
	}
	if room := (maxConns - used) / 2; nTargets > room {
		fmt.Fprintf(os.Stderr, "max_connections is %d with %d in use: running %d targets instead of %d\n", maxConns, used, max(room, 1), nTargets)
		nTargets = max(room, 1)
	}

	var created []string
	defer func() {
		for _, db := range created {
			// A slot keeps WAL forever: wait for the stream to let go of it.
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				var left int
				_, _ = a.Exec(bg, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active", db)
				if a.QueryRow(bg, "select count(*) from pg_replication_slots where database = $1", db).Scan(&left) == nil && left == 0 {
					break
				}
			}
			_, _ = a.Exec(bg, "drop database if exists "+pgx.Identifier{db}.Sanitize()+" with (force)")
		}
	}()
	mkdb := func(name string) (string, error) {
		_, _ = a.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
		if _, err := a.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
		created = append(created, name)
		u, err := pgx.ParseConfig(admin)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", u.User, u.Host, u.Port, name), nil
	}
	ctlURL, err := mkdb("ipbench_control")
	if err != nil {
		return err
	}
	ctl, err := pgxpool.New(ctx, ctlURL)
	if err != nil {
		return err
	}
	defer ctl.Close()
	if _, err := metadata.Migrate(ctx, ctl); err != nil {
		return err
	}

	var res []result
	// 1. The fleet.
	fmt.Fprintf(os.Stderr, "preparing %d targets with %d statements each...\n", nTargets, nStmts)
	var fleet []config.Target
	for i := range nTargets {
		url, err := mkdb(fmt.Sprintf("ipbench_t%03d", i))
		if err != nil {
			return err
		}
		if err := workload(ctx, url, nStmts); err != nil {
			return err
		}
		fleet = append(fleet, config.Target{Name: fmt.Sprintf("t%03d", i), DSN: url, AppStats: config.AppStatsOff})
	}
	r, err := measureFleet(ctx, ctl, ctlURL, fleet, interval, cycles)
	if err != nil {
		return err
	}
	res = append(res, r...)

	// 2. One target with many statements.
	fmt.Fprintf(os.Stderr, "preparing one target with %d statements...\n", big)
	url, err := mkdb("ipbench_big")
	if err != nil {
		return err
	}
	if err := workload(ctx, url, big); err != nil {
		return err
	}
	r, err = measureFleet(ctx, ctl, ctlURL, []config.Target{{Name: "big", DSN: url, AppStats: config.AppStatsOff}}, 2*time.Second, 3)
	if err != nil {
		return err
	}
	var kept int
	_ = a.QueryRow(ctx, "select count(*) from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = 'ipbench_big'").Scan(&kept)
	for _, x := range r {
		if x.metric == "database time per poll per target (mean / max)" {
			res = append(res, result{fmt.Sprintf("1 target, %d statements (%d in pg_stat_statements)", big, kept), "database time of one poll (mean / max)", x.value})
		}
	}

	// 3. Streaming.
	fmt.Fprintf(os.Stderr, "streaming %d query_stats rows...\n", nRows)
	url, err = mkdb("ipbench_stream")
	if err != nil {
		return err
	}
	rate, err := measureStream(ctx, ctl, ctlURL, url, nRows)
	if err != nil {
		return err
	}
	res = append(res, result{fmt.Sprintf("stream %d query_stats rows", nRows), "rows/s end to end (insert to event received, memory bus)", fmt.Sprintf("%.0f", rate)})

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE")
	for _, x := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.scenario, x.metric, x.value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("\npg_stat_statements.max = %s (entries beyond it are evicted, cluster-wide)\n", pgssMax)
	return nil
}

// workload runs n structurally distinct statements once each, so that
// pg_stat_statements holds n entries for the database.
func workload(ctx context.Context, url string, n int) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	const cols = 20
	ddl := "create table bench (id bigint primary key"
	for i := range cols {
		ddl += fmt.Sprintf(", c%d int", i)
	}
	if _, err := c.Exec(ctx, ddl+")"); err != nil {
		return err
	}
	b := &pgx.Batch{}
	for k := range n {
		// Distinct parse trees: the selected columns, the filtered column
		// and the number of ORs differ.
		x, y, z := k%cols, (k/cols)%cols, k/(cols*cols)
		q := fmt.Sprintf("select c%d from bench where c%d = $1", x, y)
		for range z {
			q += fmt.Sprintf(" or c%d = $1", x)
		}
		b.Queue(q, k)
	}
	return c.SendBatch(ctx, b).Close()
}

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// counter counts events of the given types on b.
func counter(ctx context.Context, b *bus.Bus, types ...events.Type) (*atomic.Int64, error) {
	var n atomic.Int64
	sub, err := b.Subscriber("bench")
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		msgs, err := sub.Subscribe(ctx, events.Topic(t))
		if err != nil {
			return nil, err
		}
		go func() {
			for m := range msgs {
				n.Add(1)
				m.Ack()
			}
		}()
	}
	return &n, nil
}

func measureFleet(ctx context.Context, ctl *pgxpool.Pool, ctlURL string, ts []config.Target, interval time.Duration, cycles int) ([]result, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	defer b.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n, err := counter(cctx, b, events.TypeQueryStatObserved, events.TypeTableStatObserved)
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.DatabaseURL = ctlURL
	cfg.Targets = ts
	cfg.Collector.Interval = interval
	cfg.Collector.QueryTimeout = 30 * time.Second
	d := stage.Deps{Config: cfg, Bus: b, Control: ctl, Targets: stage.NewTargets(nil, collector.Name), Logger: logger}
	if _, err := ctl.Exec(ctx, "truncate indexpilot.collector_targets"); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = collector.StartWith(cctx, d, collector.Options{NoSignals: true}) }()
	// The first cycle connects and baselines; measure the following ones.
	if !sleep(ctx, interval/2) {
		return nil, ctx.Err()
	}
	cpu0, ev0, t0 := cpu(), n.Load(), time.Now()
	if !sleep(ctx, time.Duration(cycles)*interval) {
		return nil, ctx.Err()
	}
	cpu1, ev1, t1 := cpu(), n.Load(), time.Now()
	var (
		mean, worst float64
		healthy     int
	)
	if err := ctl.QueryRow(context.Background(), `select coalesce(avg(poll_db_ms) filter (where healthy), 0), coalesce(max(poll_db_ms) filter (where healthy), 0),
       count(*) filter (where healthy) from indexpilot.collector_targets`).Scan(&mean, &worst, &healthy); err != nil {
		return nil, err
	}
	cancel()
	wg.Wait()
	label := fmt.Sprintf("%d targets, every %s", len(ts), interval)
	return []result{
		{label, "collector CPU per poll cycle", (time.Duration(float64(cpu1-cpu0) / float64(cycles))).Round(time.Millisecond).String()},
		{label, "database time per poll per target (mean / max)", fmt.Sprintf("%.1f ms / %.1f ms", mean, worst)},
		{label, "events/s published (memory bus)", fmt.Sprintf("%.0f", float64(ev1-ev0)/t1.Sub(t0).Seconds())},
		{label, "targets healthy at the end", fmt.Sprintf("%d of %d", healthy, len(ts))},
	}, nil
}

func measureStream(ctx context.Context, ctl *pgxpool.Pool, ctlURL, url string, nRows int) (float64, error) {
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
		return 0, fmt.Errorf("wal_level is not logical: the streaming scenario needs it")
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.NewMemory(logger)
	defer b.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n, err := counter(cctx, b, events.TypeAppStatObserved)
	if err != nil {
		return 0, err
	}
	cfg := config.Default()
	cfg.DatabaseURL = ctlURL
	cfg.Targets = []config.Target{{Name: "stream", DSN: url, Interval: time.Hour}}
	d := stage.Deps{Config: cfg, Bus: b, Control: ctl, Targets: stage.NewTargets(nil, collector.Name), Logger: logger}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = collector.StartWith(cctx, d, collector.Options{NoSignals: true}) }()
	defer func() { cancel(); wg.Wait() }()
	slot := appstats.SlotName("stream", "ipbench_stream")
	for deadline := time.Now().Add(time.Minute); ; {
		var ready bool
		_ = pool.QueryRow(ctx, "select exists(select 1 from pg_replication_slots where slot_name = $1 and confirmed_flush_lsn is not null and active)", slot).Scan(&ready)
		if ready {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the collector did not start streaming within a minute")
		}
		time.Sleep(50 * time.Millisecond)
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
	for n.Load() < int64(nRows) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if time.Since(start) > 5*time.Minute {
			return 0, fmt.Errorf("only %d of %d rows arrived in 5 minutes", n.Load(), nRows)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return float64(nRows) / time.Since(start).Seconds(), nil
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
