-- Scorer state derived from the collector's table statistics events, so
-- that rates and "unused for N days" are computed from the events alone
-- (deterministic on replay).

-- One row per table statistics observation: the cumulative write counters,
-- from which the scorer derives the write rate over its window.
create table indexpilot.table_stat_samples (
    target       text not null,
    schema_name  text not null,
    table_name   text not null,
    observed_at  timestamptz not null,
    inserts      bigint not null,
    updates      bigint not null,
    hot_updates  bigint not null,
    deletes      bigint not null,
    primary key (target, schema_name, table_name, observed_at)
);

-- Per index: when it was first seen and when its scan counter last
-- changed (a statistics reset moves the counter back, which counts as a
-- change, so an "unused" period never spans a reset).
create table indexpilot.index_usage (
    target           text not null,
    schema_name      text not null,
    table_name       text not null,
    index_name       text not null,
    first_seen_at    timestamptz not null,
    observed_at      timestamptz not null,
    scans            bigint not null,
    scans_changed_at timestamptz not null,
    primary key (target, schema_name, index_name)
);
