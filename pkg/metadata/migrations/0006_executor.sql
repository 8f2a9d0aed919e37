-- The executor's progress, validation and removal records. Only objects in
-- the indexpilot schema; no user table is read or changed.

-- Live progress of a running build (pg_stat_progress_create_index as the
-- executor last saw it), for `indexpilot status` and the metrics.
alter table indexpilot.builds add column progress jsonb;
alter table indexpilot.builds add column built_at timestamptz;

-- One row per index the executor built: its before/after comparison.
create table indexpilot.validations (
    recommendation_id uuid primary key references indexpilot.recommendations (id),
    target            text not null,
    schema_name       text not null,
    table_name        text not null,
    index_name        text not null,
    index_key         text not null,
    query_ids         text[] not null,
    build_started_at  timestamptz not null,
    built_at          timestamptz not null,
    state             text not null default 'pending' check (state in ('pending','running','done')),
    verdict           text check (verdict in ('improved','no_change','regressed')),
    reverted          boolean not null default false,
    claimed_by        text,
    lease_until       timestamptz,
    not_before        timestamptz not null default now(),
    evidence          jsonb not null default '{}'::jsonb,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);
create index validations_due on indexpilot.validations (not_before) where state <> 'done';

-- Approved removals: the executor drops the index concurrently and keeps
-- its full definition so that `indexpilot restore <id>` can recreate it.
create table indexpilot.removals (
    id                uuid primary key,
    target            text not null,
    schema_name       text not null,
    index_name        text not null,
    table_name        text,
    definition        text,
    reason            text not null,
    recommendation_id uuid,
    state             text not null default 'pending' check (state in ('pending','running','done','failed','restored')),
    attempts          int not null default 0,
    claimed_by        text,
    lease_until       timestamptz,
    not_before        timestamptz not null default now(),
    last_error        text,
    sqlstate          text,
    dropped_at        timestamptz,
    restored_at       timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);
create index removals_due on indexpilot.removals (not_before) where state in ('pending','running');
