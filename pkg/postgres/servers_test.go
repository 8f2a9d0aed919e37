package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Three databases of one server share a budget of 2: however many
// queries run at once through their pools, the server never sees more
// than 2 of the registry's connections, and none remain once idle.
func TestRegistrySharesOneBudgetPerServer(t *testing.T) {
	admin := pgtest.Admin(t)
	dbs := []*pgtest.Database{pgtest.NewDatabase(t), pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.PerServer, c.IdleTimeout = 2, 300*time.Millisecond
	r.Configure(c, nil)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	stage := "budgettest" + hex.EncodeToString(b)
	ctx := context.Background()

	var pools []interface{ Close() }
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	stop := make(chan struct{})
	peak := 0
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var n int
			if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = $1", "indexpilot-"+stage).Scan(&n); err == nil {
				peak = max(peak, n)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	for _, db := range dbs {
		p, err := r.Open(ctx, db.URL, stage)
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, p)
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if _, err := p.Exec(qctx, "select pg_sleep(0.05)"); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	key := postgres.ServerKey(mustParse(t, dbs[0].URL))
	var st postgres.ServerStats
	for _, s := range r.Stats() {
		if s.Server == key {
			st = s
		}
	}
	if st.Peak > 2 || st.Peak < 1 {
		t.Errorf("registry peak %d connections, want 1..2", st.Peak)
	}
	// Idle connections close by themselves.
	deadline := time.Now().Add(10 * time.Second)
	for r.StatsOf(dbs[0].URL).Open > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-sampled
	if open := r.StatsOf(dbs[0].URL).Open; open != 0 {
		t.Errorf("%d connections still open after the idle timeout", open)
	}
	if peak > 2 {
		t.Errorf("pg_stat_activity showed %d connections of the budget at once, want at most 2", peak)
	}
	if st.FreeSlots < 0 {
		t.Error("no headroom reading was taken")
	}
	for _, p := range pools {
		p.Close()
	}
}

// A margin larger than the server's free slots: the pool opens the one
// connection that reads the headroom, closes it, and then refuses to
// connect (ErrNoHeadroom) without dialing until the back-off is over.
func TestRegistryBacksOffWithoutHeadroom(t *testing.T) {
	db := pgtest.NewDatabase(t)
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.HeadroomMin = 100000
	c.BackoffMax = time.Hour
	r.Configure(c, nil)
	ctx := context.Background()
	_, err := r.Open(ctx, db.URL, "budgettest")
	if !errors.Is(err, postgres.ErrNoHeadroom) {
		t.Fatalf("open without headroom: %v, want ErrNoHeadroom", err)
	}
	st := r.StatsOf(db.URL)
	if !st.BackingOff || st.Backoffs != 1 || st.FreeSlots < 0 {
		t.Fatalf("stats %+v: want backing off once with a reading", st)
	}
	peak := st.Peak
	for range 3 {
		if _, err := r.Open(ctx, db.URL, "budgettest"); !errors.Is(err, postgres.ErrNoHeadroom) {
			t.Fatalf("open while backing off: %v", err)
		}
	}
	if st := r.StatsOf(db.URL); st.Peak != peak || st.Backoffs != 1 {
		t.Errorf("while backing off: %+v (peak was %d): a connection was opened or the back-off restarted", st, peak)
	}
}

func mustParse(t *testing.T, dsn string) *pgconn.Config {
	t.Helper()
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// While a server is short of slots, one probe at a time reads the
// headroom, and the next probe waits until the last one's backend has
// left the server: however many callers keep asking (each refused), the
// server never sees two of the registry's connections at once. The
// back-off is short so that probes follow each other quickly.
func TestRegistryProbesOneAtATime(t *testing.T) {
	db := pgtest.NewDatabase(t)
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.HeadroomMin = 100000
	c.BackoffMax = 5 * time.Millisecond
	r.Configure(c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.Open(ctx, db.URL, "probetest"); !errors.Is(err, postgres.ErrNoHeadroom) {
		t.Fatalf("open without headroom: %v, want ErrNoHeadroom", err)
	}
	for r.StatsOf(db.URL).Open > 0 {
		if ctx.Err() != nil {
			t.Fatal("the first connection was never closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := r.Open(ctx, db.URL, "probetest"); !errors.Is(err, postgres.ErrNoHeadroom) {
					t.Errorf("open while short: %v, want ErrNoHeadroom", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := r.StatsOf(db.URL)
	if st.Peak != 1 {
		t.Errorf("peak %d connections while the server was short of slots, want 1 (one probe at a time): %+v", st.Peak, st)
	}
	if st.Backoffs != 1 {
		t.Errorf("backoffs %d, want 1: %+v", st.Backoffs, st)
	}
}

// meterReader makes an in-memory reader the global meter provider's (the
// registry's gauges are registered there by Configure, so call it first)
// and puts the previous provider back when the test ends.
func meterReader(t *testing.T) *sdkmetric.ManualReader {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prev := otel.GetMeterProvider()
	// The first provider set in the process also receives what was
	// registered on the global one before: the gauges of earlier tests'
	// registries, for the same server. A no-op provider takes them.
	otel.SetMeterProvider(noop.NewMeterProvider())
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetMeterProvider(prev)
		_ = mp.Shutdown(context.Background())
	})
	return reader
}

// serverGauges collects the gauges observed for server: name → value; a
// gauge not observed for it is absent.
func serverGauges(t *testing.T, reader *sdkmetric.ManualReader, server string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok {
				continue
			}
			for _, dp := range g.DataPoints {
				if v, ok := dp.Attributes.Value("server"); ok && v.AsString() == server {
					out[m.Name] = dp.Value
				}
			}
		}
	}
	return out
}

// asRole is dsn connecting as role (trust authentication, no password).
func asRole(t *testing.T, dsn, role string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.User = url.User(role)
	return u.String()
}

// A role whose CONNECTION LIMIT is reached: the server refuses its next
// connection with too_many_connections (53300, as for a full server). The
// registry takes it as a shortage: Open fails with ErrNoHeadroom, the
// server backs off (one warning, the metric at 1), callers asking again
// meanwhile are refused without dialing but for one probe per back-off
// period, a build connection is refused too, and once the role's
// connection is free the target connects again by itself.
func TestRegistryBacksOffWhenTheServerRefusesTooManyConnections(t *testing.T) {
	db := pgtest.NewDatabase(t)
	role := pgtest.RoleName(t, db, "ipt_full_")
	db.Exec(t, "create role "+postgres.Ident(role)+" login connection limit 1")
	roleURL := asRole(t, db.URL, role)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The role's one connection, held by someone else; the server's own
	// answer to a second one is 53300.
	held, err := pgx.Connect(ctx, roleURL)
	require.NoError(t, err)
	defer held.Close(context.Background())
	_, err = pgx.Connect(ctx, roleURL)
	require.Error(t, err, "a second connection of a role with connection limit 1 was accepted")
	require.Equal(t, postgres.TooManyConnections, postgres.SQLState(err), "the server's refusal: %v", err)

	reader := meterReader(t)
	logs := &logtest.Buffer{}
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.IdleTimeout = time.Minute // the connection that recovers stays for the gauges
	c.BackoffMax = 4 * time.Second
	r.Configure(c, slog.New(slog.NewJSONHandler(logs, nil)))
	key := postgres.ServerKey(mustParse(t, roleURL))

	start := time.Now()
	_, err = r.Open(ctx, roleURL, "fulltest")
	require.ErrorIs(t, err, postgres.ErrNoHeadroom, "open as a role at its connection limit")
	require.Equal(t, postgres.TooManyConnections, postgres.SQLState(err), "the error keeps the server's SQLSTATE: %v", err)
	st := r.StatsOf(roleURL)
	require.True(t, st.BackingOff, "not backing off after a 53300 refusal: %+v", st)
	require.Equal(t, 1, st.Backoffs, "%+v", st)
	require.Equal(t, 1, st.Dials, "%+v", st)

	// Callers keep asking for 2 s: each is refused; the registry dials
	// only the probe due after each back-off (at least 1 s apart).
	attempts := 0
	for time.Since(start) < 2*time.Second {
		_, err := r.Open(ctx, roleURL, "fulltest")
		require.ErrorIs(t, err, postgres.ErrNoHeadroom, "open while backing off")
		attempts++
		time.Sleep(10 * time.Millisecond)
	}
	bcfg, err := pgx.ParseConfig(roleURL)
	require.NoError(t, err)
	_, err = r.ConnectBuild(ctx, bcfg)
	require.ErrorIs(t, err, postgres.ErrNoHeadroom, "a build connection while backing off")
	st = r.StatsOf(roleURL)
	elapsed := time.Since(start)
	require.LessOrEqual(t, st.Dials, 1+int(elapsed/time.Second),
		"%d dials in %s for %d refused opens and a build: a retry loop, not a back-off (%+v)", st.Dials, elapsed.Round(time.Millisecond), attempts, st)
	require.True(t, st.BackingOff, "%+v", st)
	require.Equal(t, 1, st.Backoffs, "a refused probe prolongs the same back-off: %+v", st)
	require.Zero(t, st.Builds, "%+v", st)
	require.Eventually(t, func() bool { return r.StatsOf(roleURL).Open == 0 }, 10*time.Second, 10*time.Millisecond,
		"the refused connections are still counted open")
	g := serverGauges(t, reader, key)
	require.Equal(t, int64(1), g[postgres.MetricServerBackingOff], "gauges while backing off: %v", g)
	require.Contains(t, g, postgres.MetricServerConnections, "gauges while backing off: %v", g)
	require.Zero(t, g[postgres.MetricServerConnections], "gauges while backing off: %v", g)
	require.NotContains(t, g, postgres.MetricServerFreeSlots, "no headroom was read, yet: %v", g)

	// The role's connection is freed: after the back-off the target
	// connects again.
	require.NoError(t, held.Close(ctx))
	var p *pgxpool.Pool
	require.Eventually(t, func() bool {
		p, err = r.Open(ctx, roleURL, "fulltest")
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the target did not connect again once the role had a free connection: %v", err)
	t.Cleanup(func() { r.Close(p) })
	require.NoError(t, p.Ping(ctx))
	st = r.StatsOf(roleURL)
	require.False(t, st.BackingOff, "%+v", st)
	require.Equal(t, 1, st.Backoffs, "%+v", st)
	require.Equal(t, 1, st.Open, "%+v", st)
	require.GreaterOrEqual(t, st.FreeSlots, 0, "%+v", st)
	g = serverGauges(t, reader, key)
	require.Equal(t, map[string]int64{
		postgres.MetricServerBackingOff:  0,
		postgres.MetricServerConnections: 1,
		postgres.MetricServerFreeSlots:   int64(st.FreeSlots),
	}, g, "gauges after recovery (stats %+v)", st)

	warns := 0
	for _, rec := range logs.Records(t) {
		if rec["level"] == "WARN" {
			warns++
		}
	}
	require.Equal(t, 1, warns, "want one warning for the shortage:\n%s", logs.String())
	require.Equal(t, 1, logs.Count("server short of connection slots"), "%s", logs.String())
}

// A pool that is already open dials inside a query when its connections
// are busy. When the server refuses that dial with too_many_connections
// (here the role's CONNECTION LIMIT 2: one slot is the pool's busy
// connection, the other someone else's), pgx hands the query the bare
// server error: NoHeadroom recognises it, with its SQLSTATE kept, and the
// server backs off as for a refused Open (one warning).
func TestPoolQueryRefusedWithTooManyConnectionsIsNoHeadroom(t *testing.T) {
	db := pgtest.NewDatabase(t)
	role := pgtest.RoleName(t, db, "ipt_dial_")
	db.Exec(t, "create role "+postgres.Ident(role)+" login connection limit 2")
	roleURL := db.URLAs(t, role)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	logs := &logtest.Buffer{}
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.IdleTimeout = time.Minute // the pool's connection stays while the test holds it
	r.Configure(c, slog.New(slog.NewJSONHandler(logs, nil)))
	p, err := r.Open(ctx, roleURL, "dialtest")
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(p) })
	busy, err := p.Acquire(ctx)
	require.NoError(t, err)
	defer busy.Release()
	other, err := pgx.Connect(ctx, roleURL)
	require.NoError(t, err, "the role's second connection")
	defer other.Close(context.Background())
	require.Equal(t, int32(1), p.Stat().TotalConns(), "the pool holds its one busy connection only")

	var one int
	err = p.QueryRow(ctx, "select 1").Scan(&one)
	require.Error(t, err, "a query that had to dial a third connection of a role limited to 2 succeeded")
	require.Equal(t, postgres.TooManyConnections, postgres.SQLState(err), "the query's error keeps the server's SQLSTATE: %v", err)
	require.True(t, postgres.NoHeadroom(err), "the query's error %v is not taken as no headroom", err)
	require.NotContains(t, err.Error(), "postgres://", "the error carries the DSN")
	st := r.StatsOf(roleURL)
	require.True(t, st.BackingOff, "not backing off after a 53300 refusal inside a query: %+v", st)
	require.Equal(t, 1, logs.Count("server short of connection slots"), "%s", logs.String())

	// The next query while backing off is refused by the budget itself,
	// without dialing.
	err = p.QueryRow(ctx, "select 1").Scan(&one)
	require.ErrorIs(t, err, postgres.ErrNoHeadroom, "a query while backing off")
	require.True(t, postgres.NoHeadroom(err), "%v", err)
	require.Equal(t, st.Dials, r.StatsOf(roleURL).Dials, "the refused query dialed")
}

// The dedicated connection of an index build, from the pool's ConnConfig
// as the executor makes it, takes no slot of the shared budget: with both
// slots held it still connects at once, it is counted (Open, Builds, the
// connections gauge) and the server sees per_server + 1 connections of
// the stage, no more.
func TestBuildConnectionIsOneMoreThanTheBudget(t *testing.T) {
	db := pgtest.NewDatabase(t)
	admin := pgtest.Admin(t)
	reader := meterReader(t)
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.PerServer, c.IdleTimeout = 2, time.Minute
	r.Configure(c, nil)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	stage := "buildtest" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := postgres.ServerKey(mustParse(t, db.URL))
	onServer := func() int {
		var n int
		require.NoError(t, admin.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = $1", "indexpilot-"+stage).Scan(&n))
		return n
	}

	p, err := r.Open(ctx, db.URL, stage)
	require.NoError(t, err)
	defer r.Close(p)
	// Both shared slots in use.
	c1, err := p.Acquire(ctx)
	require.NoError(t, err)
	defer c1.Release()
	c2, err := p.Acquire(ctx)
	require.NoError(t, err)
	defer c2.Release()
	require.Equal(t, 2, onServer())

	bctx, bcancel := context.WithTimeout(ctx, 15*time.Second)
	defer bcancel()
	build, err := r.ConnectBuild(bctx, p.Config().ConnConfig)
	require.NoError(t, err, "a build connection waited for a slot of the shared budget")
	var one int
	require.NoError(t, build.QueryRow(ctx, "select 1").Scan(&one))
	st := r.StatsOf(db.URL)
	require.Equal(t, 3, st.Open, "%+v", st)
	require.Equal(t, 1, st.Builds, "%+v", st)
	require.Equal(t, 3, st.Peak, "%+v", st)
	require.Equal(t, 3, onServer(), "connections of the stage on the server with a build open: want per_server + 1")
	g := serverGauges(t, reader, key)
	require.Equal(t, int64(3), g[postgres.MetricServerConnections], "gauges with a build open: %v", g)
	require.Equal(t, int64(0), g[postgres.MetricServerBackingOff], "gauges with a build open: %v", g)
	require.Equal(t, int64(st.FreeSlots), g[postgres.MetricServerFreeSlots], "gauges with a build open: %v (stats %+v)", g, st)

	require.NoError(t, build.Close(ctx))
	require.Eventually(t, func() bool { st := r.StatsOf(db.URL); return st.Builds == 0 && st.Open == 2 },
		10*time.Second, 10*time.Millisecond, "the closed build connection is still counted: %+v", r.StatsOf(db.URL))
	require.Equal(t, 2, onServer())
	require.Equal(t, int64(2), serverGauges(t, reader, key)[postgres.MetricServerConnections])
}

// A role without pg_read_all_stats sees no backend_type of the other
// roles' sessions: its headroom reading still counts them, so the free
// slots it reads are no more than those the held connections leave.
func TestHeadroomCountsSessionsARoleCannotSee(t *testing.T) {
	db := pgtest.NewDatabase(t)
	admin := pgtest.Admin(t)
	role := pgtest.RoleName(t, db, "ipt_nostats_")
	db.Exec(t, "create role "+postgres.Ident(role)+" login")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const others = 5
	for range others {
		c, err := pgx.Connect(ctx, db.URL)
		require.NoError(t, err)
		defer c.Close(context.Background())
	}
	var maxConns, superReserved int
	require.NoError(t, admin.QueryRow(ctx, "select current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int").Scan(&maxConns, &superReserved))

	r := postgres.NewRegistry()
	r.Configure(config.Default().Connections, nil)
	roleURL := asRole(t, db.URL, role)
	p, err := r.Open(ctx, roleURL, "nostatstest")
	require.NoError(t, err)
	defer r.Close(p)
	st := r.StatsOf(roleURL)
	// At least the held connections and the registry's own are clients.
	require.GreaterOrEqual(t, st.FreeSlots, 0, "%+v", st)
	require.LessOrEqual(t, st.FreeSlots, maxConns-superReserved-(others+1),
		"free slots read by a role without pg_read_all_stats, with %d other sessions held (max_connections %d, superuser_reserved_connections %d): %+v",
		others, maxConns, superReserved, st)
}

// Statements sent one after another through a pool use one connection:
// a released connection is back in its pool before Release returns, so
// the next statement never finds the pool empty and dials a second.
func TestPoolReusesItsConnectionBackToBack(t *testing.T) {
	db := pgtest.NewDatabase(t)
	r := postgres.NewRegistry()
	c := config.Default().Connections
	c.IdleTimeout = time.Minute
	r.Configure(c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := r.Open(ctx, db.URL, "backtobacktest")
	require.NoError(t, err)
	defer r.Close(p)
	for range 200 {
		_, err := p.Exec(ctx, "select 1")
		require.NoError(t, err)
	}
	st := r.StatsOf(db.URL)
	require.Equal(t, 1, st.Dials, "200 statements in a row dialed more than once: %+v", st)
	require.Equal(t, 1, st.Peak, "%+v", st)
}

// tlsRefusingURL is db's URL with sslmode=prefer, pgx's default and the
// one of a DSN that names no sslmode: pgx first asks for TLS and, when
// the server refuses it, dials again without. It reaches db's server
// where that server refuses TLS: over TCP when its ssl is off (a cluster
// made by initdb), else through a relay to its Unix socket, where
// PostgreSQL always refuses TLS. The relay only forwards bytes, and the
// end of each direction as such: every answer, and when the server
// closes, are the server's own.
func tlsRefusingURL(t *testing.T, db *pgtest.Database) string {
	t.Helper()
	ctx := context.Background()
	var ssl, dirs string
	var port int
	require.NoError(t, db.Pool.QueryRow(ctx, "select current_setting('ssl'), current_setting('unix_socket_directories'), current_setting('port')::int").
		Scan(&ssl, &dirs, &port))
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("sslmode", "prefer")
	u.RawQuery = q.Encode()
	if ssl == "off" {
		return u.String()
	}
	sock := filepath.Join(strings.TrimSpace(strings.Split(dirs, ",")[0]), fmt.Sprintf(".s.PGSQL.%d", port))
	probe, err := net.Dial("unix", sock)
	if err != nil {
		// The server is elsewhere, with TLS on: nothing here can make it
		// refuse TLS.
		if os.Getenv("CI") == "true" {
			t.Fatalf("the test server has ssl on and its Unix socket %s is out of reach (%v): no server refusing TLS", sock, err)
		}
		t.Skipf("the test server has ssl on and its Unix socket %s is out of reach: %v", sock, err)
	}
	_ = probe.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			_ = c.Close()
		}
	})
	// forward copies src to dst, then passes the end of src on to dst.
	forward := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if hc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
	}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", sock)
			if err != nil {
				_ = client.Close()
				continue
			}
			mu.Lock()
			open = append(open, client, server)
			mu.Unlock()
			go func() {
				done := make(chan struct{})
				go func() { forward(server, client); close(done) }()
				forward(client, server)
				<-done
				_ = client.Close()
				_ = server.Close()
			}()
		}
	}()
	u.Host = ln.Addr().String()
	return u.String()
}

// The scoring run's pattern (services/scorer: the what-if session is a
// connection of the target pool, held for the run, and the run's catalog
// reads go through the same pool, so they open a second connection)
// against a server that refuses TLS, reached with pgx's default
// sslmode=prefer: every new connection is a refused TLS attempt, then a
// plain one. Each refused attempt is dialed through the budget; its slot
// must be free again as soon as the server has ended it, or the catalog
// read waits behind it with nothing idle to close. The slots of closed
// connections are held here for up to a minute (drainWait), and idle
// connections kept a minute: a read that waited for either fails with its
// deadline.
func TestRefusedTLSAttemptsGiveTheirSlotBackAtOnce(t *testing.T) {
	db := pgtest.NewDatabase(t)
	admin := pgtest.Admin(t)
	dsn := tlsRefusingURL(t, db)
	r := postgres.NewRegistry()
	c := config.Default().Connections // per_server 3, as in the bench
	c.IdleTimeout = time.Minute
	r.Configure(c, nil)
	postgres.SetDrainWait(r, time.Minute)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	stage := "tlsrefused" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	p, err := r.Open(ctx, dsn, stage)
	require.NoError(t, err)
	defer r.Close(p)
	for range 3 { // the run's reads before the session
		_, err := p.Exec(ctx, "select 1")
		require.NoError(t, err)
	}
	sess, err := p.Acquire(ctx)
	require.NoError(t, err)
	defer sess.Release()
	var tables int
	err = p.QueryRow(ctx, "select count(*) from pg_catalog.pg_class").Scan(&tables)
	require.NoError(t, err, "the catalog read beside the held session got no slot: %+v", r.StatsOf(dsn))

	st := r.StatsOf(dsn)
	require.Equal(t, 4, st.Dials, "two connections, each a refused TLS attempt and a plain one: %+v", st)
	require.LessOrEqual(t, st.Peak, 3, "%+v", st)
	require.Eventually(t, func() bool { return r.StatsOf(dsn).Open == 2 }, 10*time.Second, 10*time.Millisecond,
		"the refused TLS attempts still hold slots: %+v", r.StatsOf(dsn))
	var n int
	require.NoError(t, admin.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = $1", "indexpilot-"+stage).Scan(&n))
	require.Equal(t, 2, n, "the stage's sessions on the server")
}

// Three pools of one server (three target databases) share per_server 3:
// a what-if session holds a connection of the first, the second has two
// idle connections left by a burst, and the third needs one. It is served
// by closing the second pool's idle connections at once, not by their idle
// timeout (a minute here, far beyond the third pool's deadline), and the
// registry never holds more than 3 connections to the server.
func TestWaiterIsServedByClosingAnotherPoolsIdleConnection(t *testing.T) {
	dbs := []*pgtest.Database{pgtest.NewDatabase(t), pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	r := postgres.NewRegistry()
	c := config.Default().Connections // per_server 3
	c.IdleTimeout = time.Minute
	r.Configure(c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	whatIf, err := r.Open(ctx, dbs[0].URL, "waitertest")
	require.NoError(t, err)
	defer r.Close(whatIf)
	sess, err := whatIf.Acquire(ctx)
	require.NoError(t, err)
	defer sess.Release()

	idle, err := r.Open(ctx, dbs[1].URL, "waitertest")
	require.NoError(t, err)
	defer r.Close(idle)
	c1, err := idle.Acquire(ctx)
	require.NoError(t, err)
	c2, err := idle.Acquire(ctx)
	require.NoError(t, err)
	c1.Release()
	c2.Release()
	require.Equal(t, int32(2), idle.Stat().IdleConns(), "the second pool's idle connections")
	st := r.StatsOf(dbs[0].URL)
	require.Equal(t, 3, st.Open, "the budget is full: %+v", st)

	third, err := r.Open(ctx, dbs[2].URL, "waitertest")
	require.NoError(t, err, "the third pool got no slot: %+v", r.StatsOf(dbs[0].URL))
	defer r.Close(third)
	var one int
	require.NoError(t, third.QueryRow(ctx, "select 1").Scan(&one))

	st = r.StatsOf(dbs[0].URL)
	require.LessOrEqual(t, st.Peak, 3, "%+v", st)
	require.Equal(t, 4, st.Dials, "one connection per pool and the burst's second: %+v", st)
	require.Less(t, idle.Stat().TotalConns(), int32(2), "no idle connection of the second pool was closed")
	require.Zero(t, idle.Stat().MaxIdleDestroyCount(), "the second pool's connection was closed by its idle timeout")
}
