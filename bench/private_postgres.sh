#!/usr/bin/env bash
# Starts (or stops) a PostgreSQL cluster of the bench's own, so that the
# large-scale runs do not depend on how the host's server is configured
# (its buffers, its WAL limits, TLS on loopback, autovacuum).
#
#   bench/private_postgres.sh start     # prints the URL to export
#   CUSTOS_TEST_DATABASE_URL=$(bench/private_postgres.sh start) \
#     BENCH_ACCOUNTS=1000000 BENCH_DATABASES=postgres bench/purge.sh
#   bench/private_postgres.sh stop      # stops it and deletes its files
#
# Settings: BENCH_PG_DIR (/tmp/custos-bench-pg), BENCH_PG_PORT (5433),
# BENCH_PG_SHARED_BUFFERS (2GB), BENCH_PG_MAX_WAL (8GB). The cluster has
# pg_stat_statements loaded, so a run can be read statement by statement:
#   psql "$url" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
# It runs as the `postgres` user (initdb refuses root) and listens on
# 127.0.0.1 only, without TLS, with trust authentication: for a bench host.
set -euo pipefail
dir="${BENCH_PG_DIR:-/tmp/custos-bench-pg}"
port="${BENCH_PG_PORT:-5433}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else "$@"; fi; }

case "${1:-}" in
  start)
    if [ ! -d "$dir/data" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      as_postgres "$bin/initdb -D $dir/data -A trust -U postgres" >"$dir/initdb.log"
      cat >>"$dir/data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
ssl = off
shared_buffers = ${BENCH_PG_SHARED_BUFFERS:-2GB}
max_wal_size = ${BENCH_PG_MAX_WAL:-8GB}
checkpoint_timeout = 30min
shared_preload_libraries = 'pg_stat_statements'
EOF
    fi
    as_postgres "$bin/pg_ctl -D $dir/data -l $dir/log -w start" >/dev/null
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = 'test'" |
      grep -q 1 || psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE test"
    echo "postgres://postgres@127.0.0.1:$port/test"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_postgres "$bin/pg_ctl -D $dir/data -m fast -w stop" >/dev/null || true
      rm -rf "$dir"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
