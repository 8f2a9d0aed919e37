-- What each stored workload window is (issues 23 and 11): a delta between
-- two polls (''), the history pg_stat_statements held at the collector's
-- first poll of the target ('history:stats_since', 'history:stats_reset',
-- 'history:unknown'), or a statement sampled running in pg_stat_activity
-- ('activity', unfinished: its time is a lower bound). param_samples holds
-- representative parameter values of the statement, a JSON array of
-- arrays of text in $1..$n order; they are bound, never spliced.
alter table indexpilot.workload_stats
    add column window_source text not null default '',
    add column unfinished    boolean not null default false,
    add column param_samples jsonb;

