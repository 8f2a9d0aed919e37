package collector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/statsclient"
	"github.com/indexpilot/indexpilot/services/collector/appstats"
)

// appTarget is a target database with indexpilot.query_stats and its
// publication. Its replication slot is dropped when the test ends (an
// abandoned slot holds WAL forever and keeps the database from being
// dropped); register it before starting anything that streams.
func appTarget(t *testing.T, requireLogical bool) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	logical, err := appstats.Install(context.Background(), db.Pool)
	require.NoError(t, err)
	if requireLogical && !logical {
		t.Skip("wal_level is not logical on this server; run infra/scripts/setup-postgres.sh")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		slot := appstats.SlotName("main", db.Name)
		require.Eventually(t, func() bool {
			_, err := appstats.DropSlot(ctx, db.Pool, slot)
			return err == nil
		}, 30*time.Second, 50*time.Millisecond, "the test's slot %s could not be dropped", slot)
	})
	return db
}

func insertRows(t *testing.T, db *pgtest.Database, n int, tenant *string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	for i := range n {
		_, err := tx.Exec(ctx, "insert into indexpilot.query_stats (tenant_id, table_name, field_name, query_type, duration_ms) values ($1, 'orders', 'email', 'select', $2)",
			tenant, float64(i)+0.5)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
}

// slotReady reports whether the test target's slot exists and has reached
// its consistent point: only what commits after that is streamed.
func slotReady(t *testing.T, db *pgtest.Database) bool {
	t.Helper()
	var ok bool
	require.NoError(t, db.Pool.QueryRow(context.Background(), "select exists(select 1 from pg_replication_slots where slot_name = $1 and confirmed_flush_lsn is not null)",
		appstats.SlotName("main", db.Name)).Scan(&ok))
	return ok
}

func TestStreamsAppStatsFromStatsClient(t *testing.T) {
	t.Parallel()
	db := appTarget(t, true)
	ctl := controlDB(t)
	d := deps(t, []config.Target{{Name: "main", DSN: db.URL}}, time.Hour, nil)
	d.Control = ctl.Pool
	s := subscribe(t, d.Bus)
	startWith(t, d, Options{})
	require.Eventually(t, func() bool { return slotReady(t, db) }, 20*time.Second, 10*time.Millisecond, "the collector must create its slot")

	c, err := statsclient.New(db.Pool, statsclient.Options{BatchSize: 50})
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 120 {
		tenant := fmt.Sprintf("t%d", i%3)
		if i%10 == 0 {
			tenant = ""
		}
		c.Record(ctx, statsclient.Stat{TenantID: tenant, Table: "orders", Field: "email", QueryType: "select", Duration: 2 * time.Millisecond})
	}
	require.NoError(t, c.Close(ctx))

	require.Eventually(t, func() bool { return len(s.appStats()) >= 120 }, 20*time.Second, 10*time.Millisecond,
		"every row must arrive as an appstat event, got %d", len(s.appStats()))
	var nullTenants int
	for _, e := range s.appStats() {
		require.Equal(t, "main", e.Target)
		require.Equal(t, "orders", e.Table)
		require.Equal(t, "email", *e.Field)
		require.Equal(t, "select", e.QueryType)
		require.InDelta(t, 2.0, e.DurationMs, 1e-9)
		require.False(t, e.RecordedAt.IsZero())
		if e.TenantID == nil {
			nullTenants++
		}
	}
	require.Equal(t, 12, nullTenants)

	// The slot's position moves once the events are published.
	require.Eventually(t, func() bool {
		var mode string
		var lag *int64
		err := ctl.Pool.QueryRow(ctx, "select app_stats_mode, app_stats_lag_bytes from indexpilot.collector_targets where target = 'main'").Scan(&mode, &lag)
		return err == nil && mode == "replication" && lag != nil
	}, 20*time.Second, 20*time.Millisecond, "status must show the replication mode and its lag")
}

// inbox applies each appstat event once, as a consumer does: the effect
// (a row in applied) and the processed-event mark in one transaction.
func inbox(t *testing.T, ctl *pgtest.Database, evs []appEvent) {
	t.Helper()
	ctx := context.Background()
	for _, e := range evs {
		tx, err := ctl.Pool.Begin(ctx)
		require.NoError(t, err)
		fresh, err := metadata.MarkProcessed(ctx, tx, "test.appstats", e.ID)
		require.NoError(t, err)
		if fresh {
			_, err = tx.Exec(ctx, "insert into applied (row_id) values ($1)", e.RowID)
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit(ctx))
	}
}

func TestStreamRestartLosesNothingAndDuplicatesHaveNoSecondEffect(t *testing.T) {
	t.Parallel()
	db := appTarget(t, true)
	ctl := controlDB(t)
	ctl.Exec(t, "create table applied (row_id text not null)")
	d := deps(t, []config.Target{{Name: "main", DSN: db.URL}}, time.Hour, nil)
	s := subscribe(t, d.Bus)
	target := config.Target{Name: "main", DSN: db.URL}
	settings := settingsFor(d.Config, target)
	settings.AppStatsPollInterval = 20 * time.Millisecond
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// runOnce runs the stream until hooks (or the test) cancel it.
	runOnce := func(hooks func(cancel context.CancelFunc) streamHooks) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		conn := &targetConn{target: target, stage: Name}
		a := newAppStats(d, target, settings, conn, &healthWriter{log: quiet}, quiet)
		if hooks != nil {
			a.hooks = hooks(cancel)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer conn.close()
			a.run(ctx, func() bool { return false })
		}()
		t.Cleanup(func() { cancel(); <-done })
		return func() { <-done; cancel() }
	}

	// 1. The stream dies in the middle of a 10-row transaction.
	var once sync.Once
	wait := runOnce(func(cancel context.CancelFunc) streamHooks {
		return streamHooks{onInsert: func(n int) {
			if n == 3 {
				once.Do(cancel)
			}
		}}
	})
	require.Eventually(t, func() bool { return slotReady(t, db) }, 20*time.Second, 10*time.Millisecond)
	insertRows(t, db, 10, nil)
	wait()
	require.Empty(t, s.appStats(), "nothing of an unfinished transaction may be published")

	// 2. Restarted, it gets the whole transaction, then dies after
	// publishing the next one but before confirming it.
	commits := 0
	wait = runOnce(func(cancel context.CancelFunc) streamHooks {
		return streamHooks{beforeConfirm: func() {
			// The first is the 10-row transaction again, the second the
			// 5-row one: stop before confirming that.
			if commits++; commits == 2 {
				cancel()
			}
		}}
	})
	require.Eventually(t, func() bool { return len(s.appStats()) == 10 }, 20*time.Second, 10*time.Millisecond)
	tenant := "acme"
	insertRows(t, db, 5, &tenant)
	wait()
	require.Eventually(t, func() bool { return len(s.appStats()) == 15 }, 20*time.Second, 10*time.Millisecond)

	// 3. Restarted again: the unconfirmed transaction comes again, with
	// the same event ids. This run ends with the test.
	runOnce(nil)
	require.Eventually(t, func() bool { return len(s.appStats()) == 20 }, 20*time.Second, 10*time.Millisecond,
		"the unconfirmed transaction must be delivered again, got %d events", len(s.appStats()))
	insertRows(t, db, 2, nil)
	require.Eventually(t, func() bool { return len(s.appStats()) == 22 }, 20*time.Second, 10*time.Millisecond)

	evs := s.appStats()
	ids := map[string]string{}
	for _, e := range evs {
		if prev, ok := ids[e.RowID]; ok {
			require.Equal(t, prev, e.ID, "a redelivered row must carry the same event id")
		}
		ids[e.RowID] = e.ID
	}
	require.Len(t, ids, 17, "every row exactly once among the distinct events")
	inbox(t, ctl, evs)
	var applied, distinct int
	require.NoError(t, ctl.Pool.QueryRow(context.Background(), "select count(*), count(distinct row_id) from applied").Scan(&applied, &distinct))
	require.Equal(t, 17, applied, "duplicate delivery must have no second effect")
	require.Equal(t, 17, distinct)
	for _, e := range evs {
		if e.TenantID != nil {
			require.Equal(t, "acme", *e.TenantID)
		}
	}
}

func TestRemovingATargetDropsItsSlot(t *testing.T) {
	t.Parallel()
	db := appTarget(t, true)
	work := pgtest.NewDatabase(t)
	var mu sync.Mutex
	next := []config.Target{{Name: "main", DSN: db.URL}, {Name: "other", DSN: work.URL}}
	load := func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		cfg := config.Default()
		cfg.DatabaseURL = work.URL
		cfg.Targets = append([]config.Target(nil), next...)
		cfg.Collector.Interval = time.Hour
		return cfg, cfg.Validate()
	}
	d := deps(t, next, time.Hour, nil)
	reload := make(chan struct{})
	startWith(t, d, Options{LoadConfig: load, Reload: reload})
	require.Eventually(t, func() bool { return slotReady(t, db) }, 20*time.Second, 10*time.Millisecond)

	mu.Lock()
	next = []config.Target{{Name: "other", DSN: work.URL}}
	mu.Unlock()
	reload <- struct{}{}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), "select count(*) from pg_replication_slots where slot_name = $1",
			appstats.SlotName("main", db.Name)).Scan(&n))
		return n == 0
	}, 30*time.Second, 20*time.Millisecond, "removing a target must drop its slot")
}

func TestPollFallbackWithWatermark(t *testing.T) {
	t.Parallel()
	db := appTarget(t, false)
	ctl := controlDB(t)
	target := config.Target{Name: "main", DSN: db.URL, AppStats: config.AppStatsPoll}
	run := func() (*sink, func()) {
		d := deps(t, []config.Target{target}, time.Hour, nil)
		d.Control = ctl.Pool
		d.Config.Collector.AppStatsPollInterval = 20 * time.Millisecond
		s := subscribe(t, d.Bus)
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		d.OnReady = func() { close(ready) }
		done := make(chan error, 1)
		go func() { done <- StartWith(ctx, d, Options{NoSignals: true}) }()
		<-ready
		var once sync.Once
		stop := func() { once.Do(func() { cancel(); require.NoError(t, <-done) }) }
		t.Cleanup(stop)
		return s, stop
	}
	tenant := "acme"
	insertRows(t, db, 7, &tenant)
	insertRows(t, db, 3, nil)
	s1, stop1 := run()
	require.Eventually(t, func() bool { return len(s1.appStats()) == 10 }, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		var wm int64
		err := ctl.Pool.QueryRow(context.Background(), "select last_id from indexpilot.app_stats_watermarks where target = 'main'").Scan(&wm)
		return err == nil && wm == 10
	}, 20*time.Second, 10*time.Millisecond, "the watermark must be kept in the control database")
	var mode, detail string
	require.NoError(t, ctl.Pool.QueryRow(context.Background(), "select app_stats_mode, app_stats_detail from indexpilot.collector_targets where target = 'main'").Scan(&mode, &detail))
	require.Equal(t, "poll", mode)
	require.False(t, slotReady(t, db), "polling creates no slot")

	// A second collector (a restart) starts from the watermark.
	stop1()
	s2, _ := run()
	insertRows(t, db, 2, nil)
	require.Eventually(t, func() bool { return len(s2.appStats()) >= 2 }, 20*time.Second, 10*time.Millisecond)
	for _, e := range s2.appStats() {
		require.Contains(t, []string{"11", "12"}, e.RowID, "a restart must not publish the rows before the watermark again")
	}
	var nulls, acme int
	for _, e := range s1.appStats() {
		if e.TenantID == nil {
			nulls++
		} else if *e.TenantID == "acme" {
			acme++
		}
	}
	require.Equal(t, 3, nulls)
	require.Equal(t, 7, acme)
}
