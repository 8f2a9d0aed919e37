package indexpilot_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/indexpilot"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// budgetTargets is the number of databases of the throwaway server that
// are targets.
const budgetTargets = 100

// budgetRole is the least-privilege role the targets are watched as;
// weakRole watches one more target with pg_monitor but without SELECT on
// the table, noStatsRole another without pg_monitor.
const (
	budgetRole    = "indexpilot"
	weakRole      = "indexpilot_weak"
	weakTarget    = "weak"
	noStatsRole   = "indexpilot_nostats"
	noStatsTarget = "nostats"
)

// TestHundredTargetsStayWithinTheBudget runs the whole pipeline (one
// process, memory bus) on 100 databases of one throwaway server with
// max_connections = 100, as the least-privilege role: IndexPilot's
// connections on the server, sampled every 100 ms from pg_stat_activity,
// never exceed connections.per_server (3; no build runs in advisory mode),
// an outside client connects at every sample, and every target is
// collected and scored. Then someone else fills the server until fewer
// than the margin of slots remain: IndexPilot opens nothing new, logs the
// back-off once, and catches up once the slots are freed. Two more
// targets are watched by roles without pg_monitor and without SELECT: the
// errors name the missing privilege, once, and the one granted SELECT is
// scored from its retained workload.
func TestHundredTargetsStayWithinTheBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a throwaway PostgreSQL cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	f := startFleet(t, ctx, budgetTargets)
	cluster, admin, targets := f.cluster, f.admin, f.targets
	exec := f.exec
	runWorkload := func(dbs ...string) { f.workload(ctx, dbs...) }
	perServer := config.Default().Connections.PerServer
	runWorkload(append(targets, weakTarget, noStatsTarget)...)

	// The outside observer: IndexPilot's connections (by role) every
	// 100 ms, and a fresh connection of an ordinary client each time.
	var peak, samples, refused atomic.Int64
	var blockedPhase atomic.Bool
	var peakBlocked, blockedSince atomic.Int64
	var freshSeen lines
	// The sampler's own connection: admin is used by the test meanwhile.
	sampler, err := pgx.Connect(ctx, cluster.URL("postgres"))
	require.NoError(t, err)
	defer sampler.Close(context.Background())
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int64
			if err := sampler.QueryRow(sampleCtx, "select count(*) from pg_stat_activity where usename in ($1, $2, $3) and application_name like 'indexpilot-%'", budgetRole, weakRole, noStatsRole).Scan(&n); err == nil {
				samples.Add(1)
				if n > peak.Load() {
					peak.Store(n)
				}
				// While the server is short of slots: the connections
				// IndexPilot opened since (backend_start after the phase
				// began) — at most the one probe. Connections it already
				// held serve the statements in flight until idle.
				var fresh int64
				if since := blockedSince.Load(); blockedPhase.Load() && since != 0 &&
					sampler.QueryRow(sampleCtx, "select count(*) from pg_stat_activity where usename in ($1, $2, $3) and application_name like 'indexpilot-%' and backend_start > $4",
						budgetRole, weakRole, noStatsRole, time.Unix(0, since)).Scan(&fresh) == nil && fresh > peakBlocked.Load() {
					peakBlocked.Store(fresh)
					// What they were, for the failure message.
					rows, err := sampler.Query(sampleCtx, "select pid, backend_type, usename, datname, application_name, backend_start, coalesce(state, ''), left(query, 80) from pg_stat_activity where usename in ($1, $2, $3) and application_name like 'indexpilot-%' and backend_start > $4",
						budgetRole, weakRole, noStatsRole, time.Unix(0, since))
					if err == nil {
						for rows.Next() {
							var pid int
							var bt, user, db, app, state, query string
							var start time.Time
							if rows.Scan(&pid, &bt, &user, &db, &app, &start, &state, &query) == nil {
								freshSeen.Add(fmt.Sprintf("pid %d %s %s@%s %s start %s state %q query %q", pid, bt, user, db, app, start.Format("15:04:05.000"), state, query))
							}
						}
						rows.Close()
					}
				}
			}
			if !blockedPhase.Load() {
				cctx, ccancel := context.WithTimeout(sampleCtx, 5*time.Second)
				c, err := pgx.Connect(cctx, cluster.URL("postgres"))
				ccancel()
				if err != nil {
					if sampleCtx.Err() == nil {
						refused.Add(1)
					}
				} else {
					_ = c.Close(context.Background())
				}
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	env := []string{
		"INDEXPILOT_DATABASE_URL=" + cluster.URL("control"),
		"INDEXPILOT_GATEKEEPER_CPU_SOURCE=none",
		"INDEXPILOT_COLLECTOR_INTERVAL=15s",
		"INDEXPILOT_COLLECTOR_QUERY_TIMEOUT=30s",
		"INDEXPILOT_SCORER_INTERVAL=1s",
		"INDEXPILOT_CONNECTIONS_BACKOFF_MAX=2s",
	}
	var list []string
	for _, db := range targets {
		u := f.url(db, budgetRole)
		list = append(list, db+"="+u)
	}
	weakURL := f.url(weakTarget, weakRole)
	list = append(list, weakTarget+"="+weakURL, noStatsTarget+"="+f.url(noStatsTarget, noStatsRole))
	env = append(env, "INDEXPILOT_TARGETS="+strings.Join(list, ";"))
	cfg, err := config.Load("", env)
	require.NoError(t, err)
	logs := &logtest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(logs.String(), "\n") {
				if (strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"target":"weak"`) || strings.Contains(l, `"target":"nostats"`)) && !strings.Contains(l, "app stats failed") {
					t.Log(l)
				}
			}
		}
	})
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	runCtx, stopRun := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		errc <- indexpilot.RunAll(runCtx, cfg, logger, indexpilot.Options{Ready: func() { close(ready) }})
	}()
	// However the test ends, the pipeline has stopped before the next
	// test starts: the registry of servers is the process's.
	t.Cleanup(func() {
		stopRun()
		select {
		case <-ran:
		case <-time.After(60 * time.Second):
			t.Error("RunAll did not stop within 60 s of cancel")
		}
	})
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("RunAll exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("RunAll not ready within 60 s")
	}
	control, err := pgx.Connect(ctx, cluster.URL("control"))
	require.NoError(t, err)
	defer control.Close(context.Background())
	count := func(sql string) int {
		var n int
		require.NoError(t, control.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	started := time.Now()
	// Every target collected twice (a baseline and a window), then the
	// workload again, then every target scored.
	require.Eventually(t, func() bool {
		return count("select count(*) from indexpilot.collector_targets where last_success_at is not null and target like 't%'") == budgetTargets
	}, 90*time.Second, 500*time.Millisecond, "not every target was collected")
	runWorkload(append(targets, weakTarget, noStatsTarget)...)
	require.Eventually(t, func() bool {
		return count("select count(distinct target) from indexpilot.workload_stats where target like 't%'") == budgetTargets
	}, 90*time.Second, 500*time.Millisecond, "not every target's workload was collected")
	require.Eventually(t, func() bool {
		return count("select count(distinct target) from indexpilot.recommendations where target like 't%'") == budgetTargets
	}, 6*time.Minute, time.Second, "not every target was scored")
	t.Logf("all %d targets collected and scored in %s; peak %d connections of role %s over %d samples",
		budgetTargets, time.Since(started).Round(time.Second), peak.Load(), budgetRole, samples.Load())
	require.LessOrEqual(t, peak.Load(), int64(perServer), "IndexPilot held more connections than connections.per_server")
	require.Zero(t, refused.Load(), "an outside client could not connect")
	require.NotContains(t, logs.String(), "role "+budgetRole+" lacks", "the role has its privileges")

	// Someone else fills the server until fewer than the margin of slots
	// (10 of max_connections 100) remain, even with IndexPilot holding
	// nothing: 97 slots for ordinary roles, 6 left free.
	var others int
	require.NoError(t, admin.QueryRow(ctx, "select count(*) from pg_stat_activity where backend_type = 'client backend' and usename not in ($1, $2, $3)", budgetRole, weakRole, noStatsRole).Scan(&others))
	var filler []*pgx.Conn
	for range 97 - 6 - others {
		c, err := pgx.Connect(ctx, cluster.URL("postgres"))
		require.NoError(t, err)
		filler = append(filler, c)
	}
	url0 := f.url(targets[0], budgetRole)
	require.Eventually(t, func() bool { return postgres.Servers().StatsOf(url0).BackingOff },
		30*time.Second, 100*time.Millisecond, "IndexPilot did not notice the server is short of slots")
	// From then on it opens nothing new but the one probe at a time that
	// reads the headroom (issue 19: "IndexPilot opens nothing new").
	time.Sleep(3 * time.Second)
	blockedSince.Store(time.Now().UnixNano())
	blockedPhase.Store(true)
	time.Sleep(8 * time.Second)
	blockedPhase.Store(false)
	require.LessOrEqual(t, peakBlocked.Load(), int64(1), "IndexPilot opened connections while the server was short of slots:\n%s", freshSeen.String())
	require.Equal(t, 1, logs.Count("server short of connection slots"), "the back-off was not logged exactly once")
	freed := time.Now()
	for _, c := range filler {
		require.NoError(t, c.Close(ctx))
	}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, control.QueryRow(ctx, "select count(*) from indexpilot.collector_targets where last_success_at > $1", freed).Scan(&n))
		return n == budgetTargets+2
	}, 60*time.Second, 500*time.Millisecond, "IndexPilot did not catch up once the slots were freed")
	require.Equal(t, 1, logs.Count("connection headroom is back"))

	// The roles without privileges. Without pg_monitor the collector
	// names pg_read_all_stats once, and keeps collecting what it sees.
	// Without SELECT the scorer names it once, and leaves the statements
	// in the retained workload: granted, the target is scored.
	require.Equal(t, 1, logs.Count("role "+noStatsRole+" lacks pg_read_all_stats (grant pg_monitor"), "the missing pg_read_all_stats was not named once")
	require.Eventually(t, func() bool {
		return count("select count(*) from indexpilot.collector_targets where target = 'nostats' and last_success_at is not null") == 1
	}, 60*time.Second, time.Second, "the target of the role without pg_monitor was not collected")
	require.Eventually(t, func() bool {
		return logs.Count("role "+weakRole+` lacks SELECT on \"public\".\"orders\"`) == 1
	}, 60*time.Second, time.Second, "the missing SELECT privilege was not named")
	require.Zero(t, count("select count(*) from indexpilot.recommendations where target = 'weak'"))
	weakDB, err := pgx.Connect(ctx, cluster.URL(weakTarget))
	require.NoError(t, err)
	defer weakDB.Close(context.Background())
	exec(weakDB, "grant select on public.orders to "+weakRole)
	require.Eventually(t, func() bool {
		runWorkload(weakTarget)
		return count("select count(*) from indexpilot.recommendations where target = 'weak'") > 0
	}, 90*time.Second, 3*time.Second, "the target was not scored once its role had the privilege")
	require.Equal(t, 1, logs.Count("role "+weakRole+" lacks SELECT"), "the missing SELECT was named more than once")
	// A build needs ownership: the check says so before connecting.
	weakConn, err := pgx.Connect(ctx, weakURL)
	require.NoError(t, err)
	err = postgres.CheckBuildPrivilege(ctx, weakConn, "public", "orders")
	require.ErrorIs(t, err, postgres.ErrPrivilege)
	require.Contains(t, err.Error(), "CREATE INDEX needs ownership of the table")
	require.NoError(t, weakConn.Close(ctx))

	stopRun()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("RunAll did not stop within 60 s of cancel")
	}
	stopSampling()
	<-sampled
	t.Logf("peak %d connections of role %s over %d samples; while short of slots %d", peak.Load(), budgetRole, samples.Load(), peakBlocked.Load())
}

// fleet is a throwaway server (max_connections = 100) with n target
// databases t000.., the databases weak and nostats, a control database,
// the roles indexpilot (pg_monitor, SELECT on the table), indexpilot_weak
// (pg_monitor only) and indexpilot_nostats (nothing), and in every target a table public.orders with 20,000 rows
// and no index on customer_id.
type fleet struct {
	tb      testing.TB
	cluster *demo.Cluster
	admin   *pgx.Conn
	targets []string
}

func startFleet(tb testing.TB, ctx context.Context, n int) *fleet {
	tb.Helper()
	dir := tb.TempDir()
	if os.Geteuid() == 0 {
		// The server runs as OS user postgres: t.TempDir's private parent
		// gets o+x.
		require.NoError(tb, os.Chmod(filepath.Dir(dir), 0o711))
	}
	cluster, err := demo.StartClusterWith(ctx, filepath.Join(dir, "cluster"), nil, demo.ClusterOptions{MaxConnections: 100})
	if errors.Is(err, demo.ErrPrerequisite) && os.Getenv("CI") != "true" {
		tb.Skip(err)
	}
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = admin.Close(context.Background()) })
	f := &fleet{tb: tb, cluster: cluster, admin: admin}
	// Every target inherits the extensions and a table from template1;
	// the role owns nothing and may build nothing (advisory mode).
	perServer := config.Default().Connections.PerServer
	for _, q := range postgres.RoleStatements(budgetRole, perServer+2, nil) {
		f.exec(admin, q)
	}
	f.exec(admin, "create role "+weakRole+" login in role pg_monitor")
	f.exec(admin, "create role "+noStatsRole+" login")
	tpl, err := pgx.Connect(ctx, cluster.URL("template1"))
	require.NoError(tb, err)
	f.exec(tpl, "create extension pg_stat_statements")
	f.exec(tpl, "create extension hypopg")
	f.exec(tpl, `create table public.orders (id bigint primary key, customer_id int not null, status text not null)`)
	f.exec(tpl, `insert into public.orders select g, g % 2000, 's' || (g % 5) from generate_series(1, 20000) g`)
	f.exec(tpl, "analyze public.orders")
	// EXPLAIN, which prices the what-ifs, needs SELECT on the table.
	f.exec(tpl, "grant select on public.orders to "+budgetRole)
	require.NoError(tb, tpl.Close(ctx))
	began := time.Now()
	f.targets = make([]string, n)
	for i := range f.targets {
		f.targets[i] = fmt.Sprintf("t%03d", i)
		f.exec(admin, "create database "+f.targets[i]+" strategy file_copy")
	}
	f.exec(admin, "create database control")
	f.exec(admin, "create database "+weakTarget+" strategy file_copy")
	f.exec(admin, "create database "+noStatsTarget+" strategy file_copy")
	tb.Logf("created %d databases in %s", n, time.Since(began).Round(time.Millisecond))
	return f
}

func (f *fleet) exec(c *pgx.Conn, sql string) {
	f.tb.Helper()
	_, err := c.Exec(context.Background(), sql)
	require.NoError(f.tb, err, sql)
}

// url is db's URL as role.
func (f *fleet) url(db, role string) string {
	return strings.Replace(f.cluster.URL(db), "postgres://postgres@", "postgres://"+role+"@", 1)
}

// workload runs, in each of dbs, the same unindexed filter 30 times.
func (f *fleet) workload(ctx context.Context, dbs ...string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, db := range dbs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := pgx.Connect(ctx, f.cluster.URL(db))
			if err != nil {
				f.tb.Error(err)
				return
			}
			defer c.Close(context.Background())
			for k := range 30 {
				if _, err := c.Exec(ctx, "select status from public.orders where customer_id = $1", k); err != nil {
					f.tb.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// lines collects strings from several goroutines.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) Add(s string) { l.mu.Lock(); l.l = append(l.l, s); l.mu.Unlock() }

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.l, "\n")
}
