-- IndexPilot control schema, version 1. Only objects in the indexpilot
-- schema are created here; no user table is read or changed.

create table indexpilot.genome_catalog (
    target             text not null,
    schema_name        text not null,
    table_name         text not null,
    field_name         text not null,
    field_type         text not null,
    is_indexable       boolean not null default true,
    is_required        boolean not null default false,
    feature_group      text,
    default_expression text,
    updated_at         timestamptz not null default now(),
    primary key (target, schema_name, table_name, field_name)
);

create table indexpilot.expression_profile (
    id          bigserial primary key,
    target      text not null,
    tenant_id   text,
    schema_name text not null default 'public',
    table_name  text not null,
    field_name  text not null,
    is_enabled  boolean not null default true,
    updated_at  timestamptz not null default now(),
    unique (target, tenant_id, schema_name, table_name, field_name)
);
-- One row per field for all tenants (tenant_id null) too. Written as a
-- partial index rather than UNIQUE NULLS NOT DISTINCT, which PostgreSQL 14
-- does not have; the two constraints together allow exactly the same rows.
create unique index expression_profile_all_tenants
    on indexpilot.expression_profile (target, schema_name, table_name, field_name)
    where tenant_id is null;

-- Append-only audit of every decision and action.
create table indexpilot.mutation_log (
    id                bigserial primary key,
    occurred_at       timestamptz not null default now(),
    stage             text not null,
    action            text not null,
    outcome           text not null,
    target            text,
    tenant_id         text,
    schema_name       text,
    table_name        text,
    fields            text[],
    index_name        text,
    ddl               text,
    reason            text,
    evidence          jsonb not null default '{}'::jsonb,
    event_id          uuid,
    candidate_id      uuid,
    recommendation_id uuid,
    parent_id         bigint references indexpilot.mutation_log (id)
);
create index mutation_log_recommendation on indexpilot.mutation_log (recommendation_id, id);
create index mutation_log_occurred_at on indexpilot.mutation_log (occurred_at);

-- App-fed per-query statistics (streamed by the collector from targets).
create table indexpilot.query_stats (
    id          bigserial primary key,
    recorded_at timestamptz not null default now(),
    tenant_id   text,
    table_name  text not null,
    field_name  text,
    query_type  text not null,
    duration_ms double precision not null check (duration_ms >= 0)
);

-- One row per (target, index definition), with its state.
create table indexpilot.recommendations (
    id                   uuid primary key,
    target               text not null,
    index_key            text not null,
    schema_name          text not null,
    table_name           text not null,
    index_spec           jsonb not null,
    index_name           text not null,
    state                text not null check (state in
        ('proposed','approved','deferred','building','applied','failed','rejected','reverted','superseded')),
    reason               text not null,
    candidate_id         uuid not null,
    candidate_event_id   uuid not null,
    formula_version      text not null,
    max_improvement_pct  double precision not null,
    estimated_size_bytes bigint not null,
    evidence             jsonb not null,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    unique (target, index_key)
);
create index recommendations_state on indexpilot.recommendations (state);

-- Processed-event inbox: one row per (consumer, event), written in the
-- same transaction as the event's effect.
create table indexpilot.processed_events (
    consumer     text not null,
    event_id     uuid not null,
    processed_at timestamptz not null default now(),
    primary key (consumer, event_id)
);

-- The scorer's workload: pg_stat_statements deltas as the collector saw them.
create table indexpilot.workload_stats (
    target             text not null,
    query_id           text not null,
    window_end         timestamptz not null,
    window_start       timestamptz not null,
    query              text not null,
    calls              bigint not null,
    total_exec_time_ms double precision not null,
    rows               bigint not null,
    primary key (target, query_id, window_end)
);
create index workload_stats_window on indexpilot.workload_stats (target, window_end);

-- Latest table statistics per target table.
create table indexpilot.table_stats (
    target      text not null,
    schema_name text not null,
    table_name  text not null,
    observed_at timestamptz not null,
    stats       jsonb not null,
    primary key (target, schema_name, table_name)
);

-- The executor's work queue: one row per approved recommendation.
create table indexpilot.builds (
    recommendation_id uuid primary key references indexpilot.recommendations (id),
    target            text not null,
    index_spec        jsonb not null,
    index_name        text not null,
    decision_event_id uuid not null,
    candidate_id      uuid not null,
    query_ids         text[] not null default '{}',
    state             text not null default 'pending' check (state in ('pending','running','done','failed')),
    attempts          int not null default 0,
    claimed_by        text,
    lease_until       timestamptz,
    not_before        timestamptz not null default now(),
    last_error        text,
    sqlstate          text,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);
create index builds_pending on indexpilot.builds (not_before) where state in ('pending','running');
