-- The write model gives WAL per write transaction: each table statistics
-- sample also keeps the server's next transaction id read with the
-- counters (server-wide, the same at every table of one poll). Null in
-- samples from collectors before the field and in samples taken before
-- this migration (unknown).
alter table indexpilot.table_stat_samples add column server_xact_next bigint;
