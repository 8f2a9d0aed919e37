package bypass_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// BenchmarkChangeReachesInstance measures how long a run-time bypass
// change takes to reach another running instance through LISTEN/NOTIFY
// alone (its periodic re-read set to an hour, the in-process bus, which
// carries nothing between processes). One sub-benchmark per level and
// per way of listening: "listening" with the LISTEN connection up,
// "after_reconnect" with its backend terminated (pg_terminate_backend)
// right before each change, written as soon as the backend is gone, so
// that the change is the first one after the drop and its latency
// includes the listener's back-off (100 ms first), reconnection and
// re-read. Each iteration disables the level (for
// emergency: the stop) and enables it again (the resume). The latency runs
// from the start of the writing call (bypass.Set: its transaction, the
// commit included, on a pool of its own as the CLI has) to the instance's
// State answering with the change, woken by State.Changed as GuardDDL
// is. Reported per direction: median and max, in ms. Run it with
//
//	cd pkg && go test -run '^$' -bench BenchmarkChangeReachesInstance -benchtime 10x ./bypass/
func BenchmarkChangeReachesInstance(b *testing.B) {
	db := pgtest.NewDatabase(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(b, err)
	writer, err := pgxpool.New(ctx, db.URL)
	require.NoError(b, err)
	defer writer.Close()
	st := watchNoRefresh(b, ctx, db)
	pid := listenerPID(b, ctx, db, 0)

	// change writes c and returns how long until st shows it.
	change := func(b *testing.B, c bypass.Change) time.Duration {
		seen := func() bool { ok, _ := st.Allows(c.Level, c.Name); return ok == !c.Disabled }
		wake := st.Changed()
		start := time.Now()
		_, err := bypass.Set(ctx, writer, nil, c, start)
		require.NoError(b, err)
		for !seen() {
			select {
			case <-wake:
				wake = st.Changed()
			case <-time.After(30 * time.Second):
				b.Fatalf("%s %s disabled=%v did not reach the instance in 30 s", c.Level, c.Name, c.Disabled)
			}
		}
		return time.Since(start)
	}
	// kill terminates the LISTEN backend and returns as soon as it has
	// left pg_stat_activity (pg_terminate_backend's own wait polls every
	// 100 ms, which would hide the listener's back-off).
	kill := func(b *testing.B) {
		var ok bool
		require.NoError(b, db.Pool.QueryRow(ctx, "select pg_terminate_backend($1)", pid).Scan(&ok))
		require.True(b, ok, "the LISTEN backend %d was not signalled", pid)
		for alive := true; alive; {
			require.NoError(b, db.Pool.QueryRow(ctx, "select exists(select 1 from pg_stat_activity where pid = $1)", pid).Scan(&alive))
		}
	}
	levels := []struct {
		level bypass.Level
		name  string
	}{
		{bypass.LevelEmergency, ""},
		{bypass.LevelSystem, ""},
		{bypass.LevelStage, "executor"},
		{bypass.LevelFeature, config.FeatureAutoIndexing},
		{bypass.LevelStartup, ""},
	}
	for _, mode := range []string{"listening", "after_reconnect"} {
		for _, l := range levels {
			b.Run(string(l.level)+"/"+mode, func(b *testing.B) {
				var lat [2][]time.Duration // disable, enable
				for i := 0; i < b.N; i++ {
					for d, disabled := range []bool{true, false} {
						if mode == "after_reconnect" {
							kill(b)
						}
						lat[d] = append(lat[d], change(b, bypass.Change{Level: l.level, Name: l.name, Disabled: disabled,
							Reason: "bench", Actor: "bench"}))
						if mode == "after_reconnect" {
							// Seen after the reconnection: the new session listens.
							pid = listenerPID(b, ctx, db, pid)
						}
					}
				}
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
				for d, what := range []string{"disable", "enable"} {
					l := slices.Clone(lat[d])
					slices.Sort(l)
					b.ReportMetric(ms(l[len(l)/2]), what+"-p50-ms")
					b.ReportMetric(ms(l[len(l)-1]), what+"-max-ms")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
