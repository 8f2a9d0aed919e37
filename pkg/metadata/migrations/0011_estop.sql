-- The emergency stop and stale removals.
--
-- A build cancelled by the emergency stop says so: state 'stopped' (its
-- last_error holds the stop's reason). The executor claims a stopped build
-- again once the stop is over, like a pending one.
alter table indexpilot.builds drop constraint builds_state_check;
alter table indexpilot.builds add constraint builds_state_check
    check (state in ('pending','running','done','failed','stopped'));
drop index indexpilot.builds_pending;
create index builds_pending on indexpilot.builds (not_before) where state in ('pending','running','stopped');

-- A removal whose reason no longer holds when it is re-checked against the
-- catalog (the INVALID index became valid, the unused index was scanned,
-- the duplicate's twin is gone) is superseded: the proposal before it is
-- approved, the queued removal right before its DROP.
alter table indexpilot.removal_proposals drop constraint removal_proposals_state_check;
alter table indexpilot.removal_proposals add constraint removal_proposals_state_check
    check (state in ('proposed','deferred','approved','rejected','superseded'));
alter table indexpilot.removals drop constraint removals_state_check;
alter table indexpilot.removals add constraint removals_state_check
    check (state in ('pending','running','done','failed','restored','superseded'));
