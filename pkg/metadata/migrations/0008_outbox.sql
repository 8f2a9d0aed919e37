-- The outbox: an event whose effect a stage commits in the control
-- database is written here in the same transaction, and marked published
-- once the bus has it. A crash between the commit and the publish leaves
-- the row unpublished, and the stage's relay publishes it later (event ids
-- are deterministic, so a consumer that sees it twice drops the copy).
create table indexpilot.outbox (
    id             bigserial primary key,
    stage          text not null,
    event_type     text not null,
    event_id       uuid not null,
    correlation_id text not null default '',
    data           jsonb not null,
    created_at     timestamptz not null default now(),
    published_at   timestamptz
);
create index outbox_pending on indexpilot.outbox (stage, id) where published_at is null;
