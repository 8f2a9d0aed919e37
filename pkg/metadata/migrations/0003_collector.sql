-- The collector's per-target health, written after every poll and read by
-- `indexpilot status`: whether the last poll worked and when, and
-- how the app-fed statistics (indexpilot.query_stats) are read and how far they
-- lag behind.
create table indexpilot.collector_targets (
    target               text primary key,
    healthy              boolean not null,
    last_poll_at         timestamptz,
    last_success_at      timestamptz,
    last_error           text not null default '',
    consecutive_failures integer not null default 0,
    interval_ms          bigint not null default 0,
    poll_db_ms           double precision not null default 0,
    app_stats_mode       text not null default '',
    app_stats_detail     text not null default '',
    app_stats_lag_bytes  bigint,
    app_stats_at         timestamptz,
    updated_at           timestamptz not null default now()
);

-- Where polling of the app-fed statistics left off (the fallback when
-- wal_level is not logical), per target and source database: the highest
-- query_stats id published.
create table indexpilot.app_stats_watermarks (
    target     text not null,
    source_db  text not null,
    last_id    bigint not null,
    updated_at timestamptz not null default now(),
    primary key (target, source_db)
);

-- `indexpilot reload` bumps requested_at; every running collector re-reads
-- its configuration when it sees a newer value.
create table indexpilot.collector_reload (
    id           integer primary key default 1 check (id = 1),
    requested_at timestamptz not null
);
