#!/usr/bin/env bash
# Prepares the local PostgreSQL cluster for IndexPilot's tests and demo:
# installs HypoPG and pg_qualstats from Debian's packages, preloads
# pg_stat_statements (and pg_qualstats), and restarts the cluster when a
# preload setting changed. Idempotent: a second run changes nothing.
#
# Needs root. Changes the server configuration, so run it only on a machine
# whose PostgreSQL is yours to configure (CI, a dev box).
set -euo pipefail

PGVER="${PGVER:-$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n1)}"
PGVER="${PGVER:-15}"
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAX)

log() { printf 'setup-postgres: %s\n' "$*" >&2; }

# --packages-only installs the extension packages and leaves the running
# cluster's configuration alone (what `make demo` needs for its own
# throwaway cluster). --check only reports whether the cluster is ready.
# --bench does everything the default does and also raises max_connections
# and pg_stat_statements.max for the collector's 100-target scale benchmark
# (100 databases x 500 statements, one connection per target).
mode=all
bench=0
case "${1:-}" in
  --packages-only) mode=packages ;;
  --check) mode=check ;;
  --bench) bench=1 ;;
  "") ;;
  *) log "unknown flag $1 (use --packages-only, --check or --bench)"; exit 2 ;;
esac

if [ "$mode" = check ]; then
  pre="$("${PSQL[@]}" -c 'show shared_preload_libraries' 2>/dev/null | tr -d ' ')" || { log "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
  case ",$pre," in *,pg_stat_statements,*) ;; *) log "pg_stat_statements is not preloaded; run: sudo make setup"; exit 1 ;; esac
  "${PSQL[@]}" -c "select 1 from pg_available_extensions where name='hypopg'" | grep -q 1 || { log "hypopg is not installed; run: sudo make setup"; exit 1; }
  log "ready"; exit 0
fi

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "must run as root to $1 (try: sudo make setup)"; exit 1
  fi
}

need=()
for p in "postgresql-${PGVER}-hypopg" "postgresql-${PGVER}-pg-qualstats"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  need_root "install ${need[*]}"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "$mode" = packages ]; then
  log "packages installed: postgresql-${PGVER}-hypopg, postgresql-${PGVER}-pg-qualstats"
  exit 0
fi

start_cluster() {
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    "${PSQL[@]}" -c 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "PostgreSQL ${PGVER} did not accept connections on 127.0.0.1:5432"; return 1
}
start_cluster

want_preload="pg_stat_statements,pg_qualstats"
restart=0
cur_preload="$("${PSQL[@]}" -c 'show shared_preload_libraries' | tr -d ' ')"
if [ "$cur_preload" != "$want_preload" ]; then
  "${PSQL[@]}" -c "alter system set shared_preload_libraries = 'pg_stat_statements', 'pg_qualstats'"
  restart=1
fi
# Logical replication for app-fed stats; needs a restart too.
if [ "$("${PSQL[@]}" -c 'show wal_level')" != "logical" ]; then
  "${PSQL[@]}" -c "alter system set wal_level = 'logical'"
  restart=1
fi
restart_cluster() {
  need_root "restart PostgreSQL ${PGVER}"
  log "restarting PostgreSQL ${PGVER} ($1)"
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main restart
  start_cluster
}
if [ "$restart" -eq 1 ]; then
  restart_cluster "to load ${want_preload} with wal_level=logical"
fi

# pg_stat_statements' own settings exist only once it is loaded, hence
# after the restart above.
# Track statements inside functions as well; reload is enough.
"${PSQL[@]}" -c "alter system set pg_stat_statements.track = 'all'"
# Raise (never lower) settings that need a restart: a value already above
# what we need, set by an operator or by --bench, is left as it is.
restart=0
raise_setting() { # name wanted
  local cur
  cur="$("${PSQL[@]}" -c "select setting from pg_settings where name = '$1'")"
  if [ -z "$cur" ] || [ "$cur" -lt "$2" ]; then
    "${PSQL[@]}" -c "alter system set $1 = $2"
    restart=1
  fi
}
# 30000: the whole test suite (scorer what-if pricing, 100-database and
# version tests, chaos) makes thousands of distinct entries on this shared
# server; at 10000 it was full and evicted the least-used ones (750
# deallocations in one session), including the one-call statements a
# test had just run.
raise_setting pg_stat_statements.max 30000
# pg_qualstats keeps 1000 quals by default, across every database of the
# server. One run of the test suite leaves about 980 from 57 databases, so
# the table was full and evicted the least-used entries while tests ran,
# among them the constants a what-if pricing test had just recorded (it
# then priced with pg_stats). 10000 entries cost about 5 MB of shared
# memory.
raise_setting pg_qualstats.max 10000
if [ "$bench" -eq 1 ]; then
  raise_setting max_connections 400
  raise_setting pg_stat_statements.max 60000
fi
if [ "$restart" -eq 1 ]; then
  restart_cluster "for pg_stat_statements.max, pg_qualstats.max$([ "$bench" -eq 1 ] && echo ' and max_connections')"
else
  "${PSQL[@]}" -c 'select pg_reload_conf()' >/dev/null
fi

for db in postgres test; do
  if "${PSQL[@]}" -c "select 1 from pg_database where datname='${db}'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -d "$db" -v ON_ERROR_STOP=1 -qtAX \
      -c 'create extension if not exists pg_stat_statements' \
      -c 'create extension if not exists hypopg' >/dev/null
  fi
done
log "ready: PostgreSQL ${PGVER}, preload=${want_preload}, wal_level=logical, hypopg installed"
