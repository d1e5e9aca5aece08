#!/usr/bin/env bash
# Load benchmarks with wrk (Debian's package), checking every answer's body:
#   1. argon2id bound: cores / one hash (bench/argon2_bound.rs), measured
#      just before and just after each signup+login run;
#   2. signup + login throughput and p50/p99 against that bound;
#   3. authenticated `me` on SQLite and PostgreSQL, beside a bare
#      async-graphql + poem `{ hello }` server (bench/bare_server.rs);
#   4. the server's RSS idle and at saturation.
#
#   bench/load.sh                      # 20 s a scenario
#   BENCH_SECONDS=10 bench/load.sh
# Results go to standard output, ending with the ratios the targets are
# stated in; copy them into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
seconds="${BENCH_SECONDS:-20}"
pg_url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1/test}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_wrk
cargo build --release --quiet --bin custos --example bare_server --example argon2_bound
target="${CARGO_TARGET_DIR:-$root/target}/release"
work="$(mktemp -d)"
pids=()
dbname="custos_bench_$$"
# Every server this script starts is stopped on every way out (error, ^C,
# normal end), so a rerun never finds its ports taken.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql "$pg_url" -qc "DROP DATABASE IF EXISTS $dbname" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ports_free 18781 18782 18790

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
rss() { echo "$(rss_mib "$1") MiB"; }
# One line a database for the summary: label bound_before bound_after
# at_once_before at_once_after signup_login_rps me_rps rss_idle rss_saturated
summary=()

start_custos() { # $1 = database URL, $2 = port
  start_server "$target/custos" "$1" "$2" "$work/$2"
  pids+=("$server_pid")
}

run_custos() { # $1 = label, $2 = database URL, $3 = port
  start_custos "$2" "$3"
  local pid=$server_pid
  sleep 1
  local idle; idle=$(rss_mib "$pid")
  echo "== $1: RSS idle $idle MiB"
  local version token before after passwords me
  version=$(policy_version "$3")
  token=$(load_me_token "$3" "$version")
  # The host's speed drifts from minute to minute (shared machine): the
  # bound is measured just before and just after the scenario it judges.
  echo "-- $1 argon2 bound, just before"
  before=$("$target/examples/argon2_bound")
  echo "$before"
  echo "-- $1 signup+login (wrk -t2 -c8, ${seconds}s)"
  passwords=$(POLICY_VERSION="$version" wrk -t2 -c8 -d"${seconds}s" --latency -s bench/signup_login.lua "http://127.0.0.1:$3/graphql" | grep -E 'CHECK|RESULT')
  echo "$passwords"
  echo "-- $1 argon2 bound, just after"
  after=$("$target/examples/argon2_bound")
  echo "$after"
  echo "   RSS after password load $(rss "$pid")"
  echo "-- $1 me (wrk -t2 -c32, ${seconds}s)"
  me=$(TOKEN="$token" wrk -t2 -c32 -d"${seconds}s" --latency -s bench/me.lua "http://127.0.0.1:$3/graphql" | grep -E 'CHECK|RESULT')
  echo "$me"
  local saturated; saturated=$(rss_mib "$pid")
  echo "   RSS at saturation $saturated MiB"
  summary+=("$1 $(bound_of "$before") $(bound_of "$after") $(at_once_of "$before") $(at_once_of "$after") $(rps_of "$passwords") $(rps_of "$me") $idle $saturated")
}

run_custos "SQLite" "sqlite://$work/custos.db?mode=rwc" 18781
psql "$pg_url" -qc "DROP DATABASE IF EXISTS $dbname" && psql "$pg_url" -qc "CREATE DATABASE $dbname"
run_custos "PostgreSQL" "$(database_url "$pg_url" "$dbname")" 18782

"$target/examples/bare_server" 127.0.0.1:18790 & pids+=($!)
bare_pid=$!
sleep 0.5
echo "-- bare async-graphql + poem { hello } (wrk -t2 -c32, ${seconds}s)"
bare=$(wrk -t2 -c32 -d"${seconds}s" --latency -s bench/hello.lua http://127.0.0.1:18790/graphql | grep -E 'CHECK|RESULT')
echo "$bare"
echo "   bare server RSS at saturation $(rss "$bare_pid")"

# The ratios the targets are stated in (bound = mean of just before and
# just after; targets from the issue that asked for these benchmarks).
echo "== summary"
for line in "${summary[@]}"; do
  python3 - "$(rps_of "$bare")" $line <<'PY'
import sys
bare, label, b0, b1, a0, a1, passwords, me, idle, saturated = sys.argv[1:]
bound = (float(b0) + float(b1)) / 2
at_once = (float(a0) + float(a1)) / 2
print(f"{label}: signup+login {100 * float(passwords) / bound:.1f} % of the bound "
      f"(target 85 %), {100 * float(passwords) / at_once:.1f} % of two hashes at once; "
      f"me {100 * float(me) / float(bare):.1f} % of the bare server (target 40 %); "
      f"RSS {idle} MiB idle (target 64), {saturated} MiB saturated (target 256)")
PY
done
