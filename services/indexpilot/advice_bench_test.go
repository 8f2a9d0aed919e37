package indexpilot_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/indexpilot"
)

// BenchmarkTimeToAdvice measures, with the default settings (collector
// every 30 s, scorer trigger debounce 2 s), the time from a new hot
// statement to its recorded recommendation. Each iteration starts the
// pipeline on a fresh database, waits for the collector's first poll, at
// once runs a new statement on a column no index serves 200 times (the
// worst phase: a whole interval to the next poll), and waits for the
// recommendation. Reported: the mean and the maximum over the iterations,
// and the part after the collector's poll that published the statement
// (the debounce, scoring, the gatekeeper, recording).
//
//	cd services/indexpilot && go test -run '^$' -bench 'TimeToAdvice$' -benchtime 4x .
func BenchmarkTimeToAdvice(b *testing.B) { benchAdvice(b, false) }

// BenchmarkTimeToAdviceFromHistory is the same with the 200 calls made
// before the pipeline starts and no traffic after: the time from the
// pipeline being ready to the recommendation, answered from the history
// pg_stat_statements holds (the first poll's window).
func BenchmarkTimeToAdviceFromHistory(b *testing.B) { benchAdvice(b, true) }

func benchAdvice(b *testing.B, history bool) {
	var total, afterPoll []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := pgtest.NewDatabase(b)
		db.RequireExtension(b, "hypopg")
		db.RequireExtension(b, "pg_stat_statements")
		db.Exec(b,
			"create table public.hot (id bigint primary key, c int not null, payload text)",
			"insert into public.hot select g, g % 5000, md5(g::text) from generate_series(1, 60000) g",
			"analyze public.hot",
		)
		workload := func(ctx context.Context) {
			for v := range 200 {
				if _, err := db.Pool.Exec(ctx, "select id, payload from public.hot where c = $1", v); err != nil {
					b.Fatal(err)
				}
			}
		}
		if history {
			workload(context.Background())
		}
		cfg, err := config.Load("", []string{"INDEXPILOT_DATABASE_URL=" + db.URL})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		ready := make(chan struct{})
		go func() {
			errc <- indexpilot.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), indexpilot.Options{Ready: func() { close(ready) }})
		}()
		<-ready
		wait := func(sql string) {
			deadline := time.Now().Add(3 * time.Minute)
			for time.Now().Before(deadline) {
				var ok bool
				if err := db.Pool.QueryRow(ctx, sql).Scan(&ok); err != nil {
					b.Fatal(err)
				}
				if ok {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			b.Fatalf("not within 3 min: %s", sql)
		}
		start := time.Now()
		b.StartTimer()
		if !history {
			b.StopTimer()
			wait("select exists (select from indexpilot.table_stats where table_name = 'hot')")
			b.StartTimer()
			start = time.Now()
			workload(ctx)
		}
		wait(`select exists (select from indexpilot.recommendations where table_name = 'hot' and index_spec->'columns' = '["c"]')`)
		total = append(total, time.Since(start))
		var polled time.Time
		if err := db.Pool.QueryRow(ctx, `select min(window_end) from indexpilot.workload_stats where query like '%from public.hot where c = $1'`).Scan(&polled); err != nil {
			b.Fatal(err)
		}
		afterPoll = append(afterPoll, time.Since(polled))

		b.StopTimer()
		b.Logf("run %d: %.1f s to advice, %.1f s after the poll", i+1, total[i].Seconds(), afterPoll[i].Seconds())
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	mean := func(ds []time.Duration) float64 {
		var s time.Duration
		for _, d := range ds {
			s += d
		}
		return (s / time.Duration(len(ds))).Seconds()
	}
	b.ReportMetric(mean(total), "s-to-advice-mean")
	b.ReportMetric(slices.Max(total).Seconds(), "s-to-advice-max")
	b.ReportMetric(mean(afterPoll), "s-after-poll-mean")
	b.ReportMetric(slices.Max(afterPoll).Seconds(), "s-after-poll-max")
	b.ReportMetric(0, "ns/op")
}
