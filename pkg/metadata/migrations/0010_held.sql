-- A candidate that pays for itself but that the scorer's storage budget or
-- caps held back is recorded as a recommendation in state 'held' (reason
-- storage_budget, max_indexes_per_table or max_new_indexes, the numbers in
-- detail), so an operator can see it, raise the budget or approve it.
alter table indexpilot.recommendations drop constraint recommendations_state_check;
alter table indexpilot.recommendations add constraint recommendations_state_check check (state in
    ('proposed','approved','deferred','building','applied','failed','rejected','reverted','superseded','held'));
