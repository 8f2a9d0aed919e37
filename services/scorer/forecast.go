package scorer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/scorer/internal/forecast"
)

// peakForecast is one statement's recurring peak, as the detector found it
// in the history [HistoryStart, HistoryEnd), and the next occurrence after
// the scoring window's end.
type peakForecast struct {
	QueryID                  string
	Peak                     forecast.Peak
	HistoryStart, HistoryEnd time.Time
	// Next and NextEnd bound the next peak (or the one running).
	Next, NextEnd time.Time
}

// Forecast is one recurring statement in a Report.
type Forecast struct {
	QueryID    string    `json:"query_id"`
	Period     string    `json:"period"`
	Phase      string    `json:"phase"`
	PeakHours  int       `json:"peak_hours"`
	Amplitude  float64   `json:"amplitude"`
	Confidence float64   `json:"confidence"`
	Periods    int       `json:"periods"`
	Hits       int       `json:"hits"`
	NextPeakAt time.Time `json:"next_peak_at"`
}

func (f *peakForecast) report() Forecast {
	return Forecast{QueryID: f.QueryID, Period: f.Peak.Name(), Phase: f.Peak.PhaseString(), PeakHours: f.Peak.Width,
		Amplitude: round2(f.Peak.Amplitude), Confidence: round3(f.Peak.Confidence), Periods: f.Peak.Periods,
		Hits: f.Peak.Hits, NextPeakAt: f.Next}
}

// forecasts returns the target's statements with a recurring peak, by
// query id, their next peak counted from now (the scoring window's end).
// A live run (no Since, Until or Retained) reuses the stored detection
// while it is younger than scorer.forecast.refresh and stores a new one
// otherwise; a replay detects from the stored history up to its window's
// end and stores nothing. A replay from the bus (Retained) has no hourly
// history: no forecasts.
func (s *Scorer) forecasts(ctx context.Context, target string, now time.Time, opts Options) (map[string]*peakForecast, error) {
	fc := s.deps.Config.Scorer.Forecast
	if !fc.Enabled || opts.Retained != nil || now.IsZero() {
		return nil, nil
	}
	live := opts.Since.IsZero() && opts.Until.IsZero()
	if live {
		out, ok, err := s.storedForecasts(ctx, target, now)
		if err != nil || ok {
			return out, err
		}
	}
	out, stmts, start, err := s.detectForecasts(ctx, target, now)
	if err != nil {
		return nil, err
	}
	if live {
		if err := s.storeForecasts(ctx, target, out, stmts, start, now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// params are the detector's thresholds from the configuration.
func (s *Scorer) params() forecast.Params {
	fc := s.deps.Config.Scorer.Forecast
	return forecast.Params{MinPeriods: fc.MinPeriods, MinConfidence: fc.MinConfidence, MinAmplitude: fc.MinAmplitude}
}

// storedForecasts reads the last detection of target when it is recent
// enough for now (ok false otherwise).
func (s *Scorer) storedForecasts(ctx context.Context, target string, now time.Time) (map[string]*peakForecast, bool, error) {
	var end time.Time
	err := s.deps.Control.QueryRow(ctx, `/* indexpilot:scorer */
select history_end from indexpilot.forecast_runs where target = $1`, target).Scan(&end)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read forecast run of %s: %w", target, err)
	}
	if end.After(now) || now.Sub(end) >= s.deps.Config.Scorer.Forecast.Refresh {
		return nil, false, nil
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select query_id, period_hours, phase_hour, peak_hours, hot_hours, amplitude, confidence, periods, hits, peak_ms, mean_ms,
       history_start, history_end
  from indexpilot.workload_forecasts where target = $1 order by query_id`, target)
	if err != nil {
		return nil, false, fmt.Errorf("read forecasts of %s: %w", target, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*peakForecast, error) {
		f := &peakForecast{}
		p := &f.Peak
		var hot []int32
		if err := r.Scan(&f.QueryID, &p.PeriodHours, &p.Phase, &p.Width, &hot, &p.Amplitude, &p.Confidence, &p.Periods,
			&p.Hits, &p.PeakMs, &p.MeanMs, &f.HistoryStart, &f.HistoryEnd); err != nil {
			return nil, err
		}
		for _, h := range hot {
			p.Hot = append(p.Hot, int(h))
		}
		f.HistoryStart, f.HistoryEnd = f.HistoryStart.UTC(), f.HistoryEnd.UTC()
		return f, nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("read forecasts of %s: %w", target, err)
	}
	out := make(map[string]*peakForecast, len(list))
	for _, f := range list {
		f.Next, f.NextEnd = f.Peak.Next(now)
		out[f.QueryID] = f
	}
	return out, true, nil
}

// detectForecasts reads the target's hourly history up to the hour of now
// and runs the detector on each statement. An hour is observed from the
// target's first delta window on, except the hours a window longer than an
// hour covers (a collector gap, or a history window that replaced the
// deltas: docs/collector.md): their calls cannot be placed in an hour. It
// returns the forecasts, the number of statements judged and the history's
// start.
func (s *Scorer) detectForecasts(ctx context.Context, target string, now time.Time) (map[string]*peakForecast, int, time.Time, error) {
	end := now.UTC().Truncate(time.Hour) // the current hour is not over: left out
	from := end.Add(-s.deps.Config.Scorer.Forecast.History)
	var first *time.Time
	if err := s.deps.Control.QueryRow(ctx, `/* indexpilot:scorer */
select min(date_trunc('hour', window_end, 'UTC')) from indexpilot.workload_stats
 where target = $1 and window_source = '' and window_end >= $2 and window_end < $3`, target, from, end).Scan(&first); err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("read workload history of %s: %w", target, err)
	}
	if first == nil {
		return nil, 0, time.Time{}, nil
	}
	start := first.UTC()
	hours := int(end.Sub(start) / time.Hour)
	if hours <= 0 {
		return nil, 0, start, nil
	}
	observed := make([]bool, hours)
	for i := range observed {
		observed[i] = true
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select distinct window_start, window_end from indexpilot.workload_stats
 where target = $1 and window_end >= $2 and window_start < $3
   and (window_source like 'history:%' or (window_source = '' and window_end - window_start > interval '1 hour'))`, target, start, end)
	if err != nil {
		return nil, 0, start, fmt.Errorf("read workload history of %s: %w", target, err)
	}
	type span struct{ from, to time.Time }
	gaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (span, error) {
		var g span
		return g, r.Scan(&g.from, &g.to)
	})
	if err != nil {
		return nil, 0, start, fmt.Errorf("read workload history of %s: %w", target, err)
	}
	for _, g := range gaps {
		for h := max(0, int(g.from.Sub(start)/time.Hour)); h < hours && start.Add(time.Duration(h)*time.Hour).Before(g.to); h++ {
			observed[h] = false
		}
	}
	rows, err = s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select query_id, date_trunc('hour', window_end, 'UTC'), sum(total_exec_time_ms)::float8
  from indexpilot.workload_stats
 where target = $1 and window_source = '' and window_end >= $2 and window_end < $3
   and window_end - window_start <= interval '1 hour'
 group by 1, 2
 order by 1, 2`, target, start, end)
	if err != nil {
		return nil, 0, start, fmt.Errorf("read workload history of %s: %w", target, err)
	}
	loads := map[string][]float64{}
	var ids []string
	var id string
	var hour time.Time
	var ms float64
	_, err = pgx.ForEachRow(rows, []any{&id, &hour, &ms}, func() error {
		l := loads[id]
		if l == nil {
			l = make([]float64, hours)
			loads[id] = l
			ids = append(ids, id)
		}
		if h := int(hour.Sub(start) / time.Hour); h >= 0 && h < hours {
			l[h] += ms
		}
		return nil
	})
	if err != nil {
		return nil, 0, start, fmt.Errorf("read workload history of %s: %w", target, err)
	}
	out := map[string]*peakForecast{}
	pr := s.params()
	for _, id := range ids {
		p, ok := forecast.Detect(forecast.Series{Start: start, Load: loads[id], Observed: observed}, pr)
		if !ok {
			continue
		}
		f := &peakForecast{QueryID: id, Peak: p, HistoryStart: start, HistoryEnd: end}
		f.Next, f.NextEnd = p.Next(now)
		out[id] = f
	}
	return out, len(ids), start, nil
}

// storeForecasts replaces the target's stored detection.
func (s *Scorer) storeForecasts(ctx context.Context, target string, fcs map[string]*peakForecast, stmts int, start, now time.Time) error {
	end := now.UTC().Truncate(time.Hour)
	if start.IsZero() {
		start = end
	}
	err := pgx.BeginFunc(ctx, s.deps.Control, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `/* indexpilot:scorer */ delete from indexpilot.workload_forecasts where target = $1`, target); err != nil {
			return err
		}
		for _, id := range sortedKeys(fcs) {
			f := fcs[id]
			p := f.Peak
			if _, err := tx.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.workload_forecasts (target, query_id, period_hours, phase_hour, peak_hours, hot_hours, amplitude, confidence,
  periods, hits, peak_ms, mean_ms, next_peak_at, history_start, history_end)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
				target, id, p.PeriodHours, p.Phase, p.Width, p.Hot, p.Amplitude, p.Confidence, p.Periods, p.Hits, p.PeakMs, p.MeanMs,
				f.Next, f.HistoryStart, f.HistoryEnd); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `/* indexpilot:scorer */
insert into indexpilot.forecast_runs (target, history_end, statements, forecasts, detected_at) values ($1, $2, $3, $4, now())
on conflict (target) do update set history_end = excluded.history_end, statements = excluded.statements,
       forecasts = excluded.forecasts, detected_at = excluded.detected_at`, target, now, stmts, len(fcs))
		return err
	})
	if err != nil {
		return fmt.Errorf("store forecasts of %s: %w", target, err)
	}
	return nil
}

// withForecasted adds to the window's statements those with a forecast
// peak that the window does not hold (the peak is elsewhere in the
// period), so that the index for the next peak is priced: their delta
// windows over the history, with calls, time and rows averaged down to
// the scoring window's length. A statement in the window keeps its
// window's numbers. Every forecast statement carries its forecast.
func (s *Scorer) withForecasted(ctx context.Context, target string, stmts []*statement, fcs map[string]*peakForecast, window time.Duration) ([]*statement, error) {
	var missing []string
	seen := map[string]bool{}
	for _, st := range stmts {
		seen[st.QueryID] = true
		st.forecast = fcs[st.QueryID]
	}
	for _, id := range sortedKeys(fcs) {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return stmts, nil
	}
	var from, to time.Time
	for _, id := range missing {
		f := fcs[id]
		if from.IsZero() || f.HistoryStart.Before(from) {
			from = f.HistoryStart
		}
		if f.HistoryEnd.After(to) {
			to = f.HistoryEnd
		}
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select query_id, (array_agg(query order by window_end desc))[1], sum(calls)::bigint, sum(total_exec_time_ms)::float8, sum(rows)::bigint,
       coalesce(jsonb_agg(param_samples order by window_end desc) filter (where param_samples is not null), '[]')
  from indexpilot.workload_stats
 where target = $1 and query_id = any($2) and window_source = '' and window_end >= $3 and window_end < $4
 group by query_id
 order by query_id`, target, missing, from, to)
	if err != nil {
		return nil, fmt.Errorf("read forecast statements of %s: %w", target, err)
	}
	added, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*statement, error) {
		st := &statement{}
		var samples [][][]string
		if err := r.Scan(&st.QueryID, &st.Query, &st.Calls, &st.TotalMs, &st.Rows, &samples); err != nil {
			return nil, err
		}
		for _, w := range samples {
			st.addParamSamples(w)
		}
		return st, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read forecast statements of %s: %w", target, err)
	}
	for _, st := range added {
		f := fcs[st.QueryID]
		st.forecast = f
		if span := f.HistoryEnd.Sub(f.HistoryStart); span > 0 && window < span {
			k := window.Hours() / span.Hours()
			st.Calls = max(1, int64(math.Round(float64(st.Calls)*k)))
			st.TotalMs *= k
			st.Rows = int64(math.Round(float64(st.Rows) * k))
		}
		st.averaged = true
	}
	out := append(stmts, added...)
	sort.Slice(out, func(i, j int) bool { return out[i].QueryID < out[j].QueryID })
	return out, nil
}

// forecastFor is the forecast of a candidate whose every statement has a
// recurring peak (one with a steady statement is wanted now): the peak that
// comes first, with the build's lead time. nil otherwise.
func (sel *selector) forecastFor(sc *scored, fv string) *events.Forecast {
	if len(sc.evidence) == 0 {
		return nil
	}
	var first *peakForecast
	for _, ev := range sc.evidence {
		f := sel.forecasts[ev.QueryID]
		if f == nil {
			return nil
		}
		if first == nil || f.Next.Before(first.Next) {
			first = f
		}
	}
	cfg := sel.s.deps.Config.Scorer.Forecast
	var tableBytes float64
	if ti, err := sel.table(sc.cand.Spec.Schema, sc.cand.Spec.Table); err == nil {
		tableBytes = ti.pages * 8192
	}
	// CREATE INDEX CONCURRENTLY reads the table twice and writes the index.
	secs := math.Ceil((2*tableBytes + float64(sc.sizeBytes)) / (cfg.BuildRateMBPerSec * (1 << 20)))
	by := first.Next.Add(-time.Duration(secs)*time.Second - cfg.BuildMargin).Truncate(time.Minute)
	out := &events.Forecast{
		QueryID: first.QueryID, Period: first.Peak.Name(), Phase: first.Peak.PhaseString(),
		Amplitude: round2(first.Peak.Amplitude), Confidence: round3(first.Peak.Confidence), Periods: first.Peak.Periods,
		PeakAt: first.Next, PeakEnd: first.NextEnd, BuildSeconds: secs, BuildBy: by, BuildFrom: by.Add(-cfg.BuildAhead),
	}
	if cfg.DropAfterPeak && fv != "v1" && sel.window > 0 {
		// Between two peaks the index only costs writes; dropping it after
		// the peak pays when they cost more than building it again.
		share := math.Min(sel.window.Hours()/sel.s.deps.Config.Scorer.BuildAmortization.Hours(), 1)
		between := float64(first.Peak.PeriodHours) - first.NextEnd.Sub(first.Next).Hours()
		writes := sc.write / sel.window.Hours() * between
		if share > 0 && sc.build > 0 && writes > sc.build/share {
			after := first.NextEnd
			out.DropAfter = &after
			out.DropDetail = fmt.Sprintf("writes over the %.0f h between peaks cost %.0f, building it again %.0f: drop after %s, build again before the next",
				between, writes, sc.build/share, after.Format("Mon 15:04 UTC"))
		}
	}
	return out
}
