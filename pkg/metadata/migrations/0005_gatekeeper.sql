-- The gatekeeper's state: recommendation lineage and approval, the
-- run-time bypass, token buckets and per-target throttle marks. Only
-- objects in the indexpilot schema; no user table is read or changed.

-- Lineage: the last mutation_log row of a recommendation (the parent of its
-- next transition), the window of the candidate it holds (an older
-- candidate never overwrites a newer one) and the operator's approval.
alter table indexpilot.recommendations add column last_log_id bigint references indexpilot.mutation_log (id);
alter table indexpilot.recommendations add column candidate_window_end timestamptz;
alter table indexpilot.recommendations add column approved_by text;
alter table indexpilot.recommendations add column approved_at timestamptz;
alter table indexpilot.recommendations add column detail text;
create index recommendations_open on indexpilot.recommendations (target, table_name) where state in ('proposed','deferred');

-- The run-time bypass: one row per switch, the latest change wins.
-- level: feature | stage | system | startup | emergency; name: the feature
-- or stage, '' for the others.
create sequence indexpilot.bypass_change_seq;
create table indexpilot.bypass_state (
    level      text not null check (level in ('feature','stage','system','startup','emergency')),
    name       text not null default '',
    disabled   boolean not null,
    reason     text not null,
    actor      text not null,
    change_id  bigint not null,
    changed_at timestamptz not null,
    expires_at timestamptz,
    primary key (level, name)
);

-- Token buckets, shared by every gatekeeper instance: 'target:<t>' and
-- 'table:<t>:<schema>.<table>'.
create table indexpilot.rate_buckets (
    bucket     text primary key,
    tokens     double precision not null,
    updated_at timestamptz not null
);

-- Per-target throttle marks: the last CPU overload seen and the last
-- approval, for the cooldown and the minimum delay between builds.
create table indexpilot.gate_state (
    target           text primary key,
    last_overload_at timestamptz,
    last_approved_at timestamptz,
    last_cpu_pct     double precision,
    updated_at       timestamptz not null default now()
);

-- The gatekeeper's verdict on each removal proposal (one row per
-- removal_id): advisory and deferred proposals wait here, approved ones
-- are queued in indexpilot.removals for the executor.
create table indexpilot.removal_proposals (
    id             uuid primary key,
    target         text not null,
    schema_name    text not null,
    table_name     text not null,
    index_name     text not null,
    state          text not null check (state in ('proposed','deferred','approved','rejected')),
    reason         text not null,
    detail         text,
    proposal       jsonb not null,
    last_log_id    bigint references indexpilot.mutation_log (id),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
create index removal_proposals_open on indexpilot.removal_proposals (state) where state in ('proposed','deferred');
