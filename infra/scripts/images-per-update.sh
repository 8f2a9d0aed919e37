#!/usr/bin/env bash
# Counts the full-page images 400 single-row updates log right after a
# checkpoint, on a 100,000-row table with an index on the updated column:
# once while the column is constant (as pgbench's abalance when
# initialised) and once after its values have spread. The check behind
# the scorer's image model (docs/scorer.md, "Full-page images";
# docs/benchmarks.md). It creates and drops its own database, issues
# CHECKPOINT (superuser), and never resets pg_stat_statements (it reads the
# counters' increase). Run it on a quiet server: another session's
# checkpoint during a run adds images.
#
#   infra/scripts/images-per-update.sh         # PGHOST/PGPORT/PGUSER as for psql
set -euo pipefail
DB="ipimages_$$"
P=(psql -X -q -v ON_ERROR_STOP=1)
"${P[@]}" -d postgres -c "create database $DB"
trap '"${P[@]}" -d postgres -c "drop database if exists $DB with (force)"' EXIT
run() { # $1: label (the rows and amounts come from random() with a fixed seed)
  "${P[@]}" -d "$DB" -At -F ' | ' <<SQL
set pg_stat_statements.track = 'all';
select setseed(0.5);
create temp table before as
  select coalesce(sum(wal_fpi), 0) as fpi, coalesce(sum(wal_bytes), 0) as bytes from pg_stat_statements
   where dbid = (select oid from pg_database where datname = current_database()) and query like 'update a set bal%';
checkpoint;
do \$\$ begin for i in 1..400 loop
  update a set bal = bal + (random() * 10000 - 5000)::int where id = 1 + (random() * 99999)::int;
end loop; end \$\$;
select '$1', (select string_agg(relname || ' ' || relpages || ' pages', ', ' order by relname) from pg_class where relname in ('a', 'a_pkey', 'a_bal')),
       s.fpi - b.fpi as images, s.bytes - b.bytes as wal_bytes
  from (select coalesce(sum(wal_fpi), 0) as fpi, coalesce(sum(wal_bytes), 0) as bytes from pg_stat_statements
         where dbid = (select oid from pg_database where datname = current_database()) and query like 'update a set bal%') s, before b;
SQL
}
"${P[@]}" -d "$DB" <<'SQL'
create extension if not exists pg_stat_statements;
create table a (id int primary key, bal int not null, filler char(84) not null default '') with (fillfactor = 100);
insert into a (id, bal) select g, 0 from generate_series(1, 100000) g;
create index a_bal on a (bal);
vacuum analyze a;
SQL
echo "case | relation pages before the run | images | WAL bytes"
run "constant column"
"${P[@]}" -d "$DB" -c "update a set bal = hashint4(id) % 100000" -c "vacuum analyze a"
run "spread values"
echo "model: pages dirtied by n random changes over L pages = L * (1 - exp(-n / L)), per relation"
