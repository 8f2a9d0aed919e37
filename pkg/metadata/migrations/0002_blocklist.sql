-- Pairs of (statement, index definition) that were built and reverted
-- because the index did not help: the scorer and gatekeeper never propose
-- them again for that target. Shared by the gatekeeper (reads) and the
-- executor (writes on revert).
create table indexpilot.blocklist (
    target            text not null,
    query_fingerprint text not null,
    index_key         text not null,
    reason            text not null,
    recommendation_id uuid,
    evidence          jsonb not null default '{}'::jsonb,
    created_at        timestamptz not null default now(),
    primary key (target, query_fingerprint, index_key)
);
