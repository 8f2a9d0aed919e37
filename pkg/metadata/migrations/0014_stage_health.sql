-- Each stage's heartbeat per target, which the dashboard's overview and
-- GET /api/v1/targets show next to the collector's own health
-- (collector_targets): when the stage last worked on the target, when that
-- last succeeded, its last error and how many failures in a row. The
-- scorer, gatekeeper and executor write it (metadata.StageHealth); target
-- '' is a stage's loop over every target (the gatekeeper's recheck, the
-- executor's claim loop). position is the newest input the stage has
-- handled where that has a time (the scorer: the end of the workload
-- window it scored).
create table indexpilot.stage_health (
    stage                text not null,
    target               text not null,
    instance             text not null default '',
    last_run_at          timestamptz not null,
    last_success_at      timestamptz,
    last_error           text not null default '',
    last_error_at        timestamptz,
    consecutive_failures integer not null default 0,
    interval_ms          bigint not null default 0,
    position             timestamptz,
    primary key (stage, target)
);
