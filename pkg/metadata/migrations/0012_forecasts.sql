-- Predictive indexing (issue 14): the statements whose load recurs at the
-- same hour of the day or of the week, as the scorer last detected them
-- from workload_stats (docs/scorer.md, "Predictive indexing").
--
-- period_hours is 24 (daily) or 168 (weekly); phase_hour is the hour of
-- the period the main peak starts in, counted from midnight UTC (daily) or
-- Monday 00:00 UTC (weekly), and peak_hours its length; hot_hours are all
-- the hour buckets of the period at least half as busy as the busiest one.
-- amplitude is the busiest bucket's mean load over the mean hour;
-- confidence is hits / periods (observed periods whose busiest hour fell
-- on a hot bucket). next_peak_at is the next peak after history_end.
create table indexpilot.workload_forecasts (
    target        text not null,
    query_id      text not null,
    period_hours  integer not null check (period_hours in (24, 168)),
    phase_hour    integer not null check (phase_hour >= 0 and phase_hour < period_hours),
    peak_hours    integer not null check (peak_hours > 0),
    hot_hours     integer[] not null,
    amplitude     double precision not null,
    confidence    double precision not null check (confidence >= 0 and confidence <= 1),
    periods       integer not null,
    hits          integer not null,
    peak_ms       double precision not null,
    mean_ms       double precision not null,
    next_peak_at  timestamptz not null,
    history_start timestamptz not null,
    history_end   timestamptz not null,
    detected_at   timestamptz not null default now(),
    primary key (target, query_id)
);

-- One row per target: the history end of the last detection, so that a
-- target with no recurring statement is not read again on every run.
create table indexpilot.forecast_runs (
    target      text primary key,
    history_end timestamptz not null,
    statements  integer not null,
    forecasts   integer not null,
    detected_at timestamptz not null default now()
);
