-- Tenant-attributed benefit (issue 14): the app-fed statistics
-- (appstat.observed.v1, one row an application wrote to a target's
-- indexpilot.query_stats) as the scorer stores them, to split each
-- statement's calls by tenant (docs/scorer.md, "Tenant-attributed
-- benefit"). The natural key is the event's: a redelivered or replayed
-- row is stored once. The scorer deletes rows older than its window (or
-- the forecast history, when longer) before the target's latest
-- observation.
create table indexpilot.app_stats (
    target      text not null,
    row_id      text not null,
    recorded_at timestamptz not null,
    tenant_id   text,
    table_name  text not null,
    field_name  text,
    query_type  text not null,
    duration_ms double precision not null,
    primary key (target, row_id, recorded_at)
);
create index app_stats_window on indexpilot.app_stats (target, recorded_at);
