-- Extensions IndexPilot uses in the watched database.
create extension if not exists pg_stat_statements;
create extension if not exists hypopg;
