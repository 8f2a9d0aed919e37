-- The write model tells updates that are non-HOT for lack of room on
-- their page from those an index makes non-HOT: each table statistics
-- sample also keeps pg_stat_user_tables.n_tup_newpage_upd. PostgreSQL 16+
-- only; null on older servers and in samples taken before this migration
-- (unknown, not 0).
alter table indexpilot.table_stat_samples add column newpage_updates bigint;
