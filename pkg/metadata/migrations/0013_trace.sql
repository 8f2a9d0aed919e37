-- One trace from statement to index (docs/monitoring.md, Traces).
--
-- The stages that work from these rows rather than from a message keep the
-- span that came before them, as a W3C traceparent value, so that their
-- own span continues it even after a restart: the recommendation keeps
-- the gatekeeper's span of the candidate it was last decided on (the
-- re-evaluation loop's decisions continue it), the build the executor's
-- span of the decision (the build span continues it) and the validation
-- the build's span (the validation span continues it). Null for rows
-- written before this migration: those spans join the statement's trace.
alter table indexpilot.recommendations add column trace_parent text;
alter table indexpilot.builds add column trace_parent text;
alter table indexpilot.validations add column trace_parent text;
