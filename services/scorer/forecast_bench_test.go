package scorer

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// BenchmarkForecastDetection reads and judges 35 days of history of 100
// statements polled every 5 minutes (1 008 000 workload_stats rows), of
// which 10 have a nightly peak: the work a scoring run does once per
// scorer.forecast.refresh.
func BenchmarkForecastDetection(b *testing.B) {
	db := pgtest.NewDatabase(b)
	ctx := context.Background()
	if _, err := metadata.Migrate(ctx, db.Pool); err != nil {
		b.Fatal(err)
	}
	end := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	db.Exec(b, `insert into indexpilot.workload_stats (target, query_id, window_end, window_start, query, calls, total_exec_time_ms, rows)
select 'main', q::text, e, e - interval '5 minutes', 'select ' || q, 10,
       case when q <= 10 and extract(hour from e at time zone 'UTC') = 2 then 5000 else 10 + (q * 7 + extract(epoch from e)::bigint / 300) % 5 end, 10
  from generate_series(1, 100) q,
       generate_series(timestamptz '2026-12-07 12:00+00' - interval '35 days', timestamptz '2026-12-07 12:00+00' - interval '5 minutes', interval '5 minutes') e`,
		`analyze indexpilot.workload_stats`)
	cfg := config.Default()
	s := &Scorer{deps: stage.Deps{Config: cfg, Control: db.Pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	b.ResetTimer()
	for b.Loop() {
		fcs, n, _, err := s.detectForecasts(ctx, "main", end)
		if err != nil {
			b.Fatal(err)
		}
		if len(fcs) != 10 || n != 100 {
			b.Fatalf("%d forecasts of %d statements, want 10 of 100", len(fcs), n)
		}
	}
}
