#!/usr/bin/env bash
# Measures the WAL one UPDATE and one INSERT write on PostgreSQL, with and
# without secondary indexes, HOT and non-HOT: the calibration behind the
# scorer's write model (docs/scorer.md, "Write model"). It creates and
# drops its own database; it never resets pg_stat_statements (it reads the
# counters' increase over each run).
#
#   infra/scripts/wal-per-record.sh            # PGHOST/PGPORT/PGUSER as for psql
set -euo pipefail
DB="ipwalcal_$$"
P=(psql -X -q -v ON_ERROR_STOP=1)
"${P[@]}" -d postgres -c "create database $DB"
trap '"${P[@]}" -d postgres -c "drop database if exists $DB with (force)"' EXIT
"${P[@]}" -d "$DB" <<'SQL'
create extension if not exists pg_stat_statements;
create table t (id bigint primary key, a int not null, b int not null, c int not null, pad text) with (fillfactor = 90);
insert into t select g, g % 1000, g, g % 7, repeat('x', 60) from generate_series(1, 200000) g;
vacuum analyze t;
create sequence s start 1000000;
create view w as
  select case when query like 'update%' then 'update' else 'insert' end as kind, calls, wal_bytes, wal_fpi
    from pg_stat_statements
   where dbid = (select oid from pg_database where datname = current_database())
     and (query like 'update t set %' or query like 'insert into t values%');
SQL
run() {
  "${P[@]}" -d "$DB" -At -F ' | ' <<SQL
create temp table before as select * from w;
do \$\$ begin for i in 1..20000 loop update t set b = b + 1 where id = 1 + (i * 7919) % 200000; end loop; end \$\$;
do \$\$ begin for i in 1..5000 loop insert into t values (nextval('s'), i % 1000, i, i % 7, repeat('x', 60)); end loop; end \$\$;
select '$1', a.kind, a.calls - coalesce(b.calls, 0) as calls,
       round((a.wal_bytes - coalesce(b.wal_bytes, 0)) / (a.calls - coalesce(b.calls, 0)), 1) as wal_bytes_per_call,
       round((a.wal_fpi - coalesce(b.wal_fpi, 0))::numeric / (a.calls - coalesce(b.calls, 0)), 3) as fpi_per_call
  from w a left join before b using (kind) order by a.kind;
SQL
}
echo "set | statement | calls | WAL bytes per call | full-page images per call"
run "primary key only (updates HOT)"
"${P[@]}" -d "$DB" -c "create index t_a on t (a)"
run "+ index on a (not updated)"
"${P[@]}" -d "$DB" -c "create index t_b on t (b)"
run "+ index on b (updated: non-HOT)"
"${P[@]}" -d "$DB" -c "create index t_c on t (c)"
run "+ index on c (7 distinct values)"
