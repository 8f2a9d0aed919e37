-- A recommendation whose index IndexPilot built and later removed (an
-- approved removal: unused, a duplicate, or a left prefix of a newer index)
-- is 'removed', with the removal's reason, instead of staying 'applied' for
-- an index that no longer exists. indexpilot restore puts it back to
-- 'applied'. A newer candidate for the same definition reopens it.
alter table indexpilot.recommendations drop constraint recommendations_state_check;
alter table indexpilot.recommendations add constraint recommendations_state_check check (state in
    ('proposed','approved','deferred','building','applied','failed','rejected','reverted','superseded','held','removed'));
