#!/usr/bin/env bash
# Signup+login against the argon2 bound with the server on cores of its
# own: custos (and the bound's measurement) on the first half of the
# cores, PostgreSQL and wrk on the rest, as when the database runs on
# another machine. load.sh runs everything on every core, where
# PostgreSQL's work for each request is charged to the cores the bound
# counts; this measures the server alone.
#
#   bench/split_cores.sh              # PostgreSQL and SQLite, 3 rounds, 20 s a run
#   ROUNDS=5 BENCH_SECONDS=15 bench/split_cores.sh
#
# Needs at least 2 cores, and the right to change the affinity of the
# local PostgreSQL server's processes (root, or the postgres user); they
# get their own affinity back at the end, whatever happens. SQLite runs
# inside the server, so it stays on the server's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
seconds="${BENCH_SECONDS:-20}"
pg_url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1/test}"
port=18791
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_wrk
cores=$(nproc)
[ "$cores" -ge 2 ] || { echo "needs at least 2 cores"; exit 2; }
half=$((cores / 2))
server_cpus="0-$((half - 1))"
other_cpus="$half-$((cores - 1))"
cargo build --release --quiet --bin custos --example argon2_bound
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
ports_free "$port"

postmaster=$(pgrep -o -x postgres || true)
[ -n "$postmaster" ] || { echo "no local PostgreSQL server (process 'postgres') to move"; exit 2; }
pg_mask=$(taskset -p "$postmaster" | awk '{print $NF}')
# Sets the affinity of every PostgreSQL process; the arguments are what
# `taskset -a -p` takes before the pid (a mask, or -c and a CPU list).
move_postgres() {
  local pid
  for pid in $(pgrep -x postgres); do taskset -a -p "$@" "$pid" >/dev/null 2>&1 || true; done
}

work=""
server_pid=""
dbname=""
trap 'end_run; move_postgres "$pg_mask"' EXIT
trap 'exit 130' INT TERM

# The server must start on its cores: it sizes its hashing threads and
# tokio workers from the cores it may use.
wrapper() {
  printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$server_cpus" "$target/custos" >"$work/custos"
  chmod +x "$work/custos"
}
bound() { bound_of "$(taskset -c "$server_cpus" "$target/examples/argon2_bound")"; }

run() { # $1 = postgres | sqlite
  work="$(mktemp -d)"
  wrapper
  local url
  if [ "$1" = postgres ]; then
    dbname="custos_split_$$_$RANDOM"
    psql "$pg_url" -qc "CREATE DATABASE $dbname"
    url=$(database_url "$pg_url" "$dbname")
  else
    url="sqlite://$work/custos.db?mode=rwc"
  fi
  start_server "$work/custos" "$url" "$port" "$work/run"
  local threads version before after out rps
  threads=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^custos_password_hash_threads/ {print $2}')
  version=$(policy_version "$port")
  before=$(bound)
  out=$(POLICY_VERSION="$version" taskset -c "$other_cpus" wrk -t1 -c$((4 * half)) -d"${seconds}s" --latency \
    -s bench/signup_login.lua "http://127.0.0.1:$port/graphql" | grep -E 'CHECK|RESULT' | tr '\n' ' ')
  after=$(bound)
  rps=$(rps_of "$out")
  printf '%s: %s| %s hashing threads | bound (%s cores) %s / %s | ratio %s %%\n' "$1" "$out" "$threads" "$half" \
    "$before" "$after" "$(ratio_to_bound "$rps" "$before" "$after")"
  end_run
}

echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); custos on $server_cpus, PostgreSQL and wrk on $other_cpus; ${seconds}s a run, $rounds rounds"
move_postgres -c "$other_cpus"
for _ in $(seq 1 "$rounds"); do
  run postgres
  run sqlite
done
