#!/usr/bin/env bash
# Compares custos binaries on a host whose speed drifts: runs them in turn,
# ROUNDS times, so drift hits each alike, with wrk checking every body.
#
#   bench/compare.sh signup-login before=/path/to/custos after=target/release/custos
#   bench/compare.sh mixed        before=/path/to/custos after=target/release/custos
#   bench/compare.sh me           before=/path/to/custos after=target/release/custos
#
# signup-login: signup+login (wrk -t2 -c8) against the argon2 bound measured
#   just before and just after the run, and PostgreSQL's CPU a request (the
#   postgres processes' CPU time from /proc over the run).
#   A label may name target/release/examples/hash_write_floor instead of a
#   Custos binary (bench/hash_write_floor.rs: a hash or verify and one
#   committed row a request, nothing else): the most any server doing that
#   reaches on this host, run in the same rounds.
# mixed: `me` (wrk -t1 -c8) while signup+login (wrk -t1 -c8) runs on the same
#   instance; `me` rps and p99, session-cache hits and misses, signup+login rps.
# me: `me` alone (wrk -t2 -c32, as in load.sh); rps, p50 and p99, and its
#   share of a bare async-graphql + poem `{ hello }` server
#   (bench/bare_server.rs) run in the same round.
#
# Settings: ROUNDS (3), BENCH_SECONDS (15), BENCH_DB (postgres | sqlite),
# BENCH_SESSION_CACHE (unset: the binaries' default; 0 turns the session
# cache off, so every signed-in read goes to the database), BENCH_PEOPLE
# (me: 1 by default, every request the same person's; N signs up N people
# and the requests take their sessions in turn),
# BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1/test; a database is made
# and dropped per run, with the URL's settings such as `?sslmode=disable`).
# Build a "before" binary from another commit with e.g.
#   git worktree add /tmp/before <rev> && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release --bin custos)
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-}"
shift || true
case "$scenario" in signup-login | mixed | me) ;; *)
  echo "usage: $0 signup-login|mixed|me label=binary [label=binary ...]"; exit 2 ;;
esac
[ $# -ge 1 ] || { echo "name at least one label=binary"; exit 2; }
for spec in "$@"; do
  [ -x "${spec#*=}" ] || { echo "${spec#*=}: not an executable"; exit 2; }
done
rounds="${ROUNDS:-3}"
seconds="${BENCH_SECONDS:-15}"
people="${BENCH_PEOPLE:-1}"
database="${BENCH_DB:-postgres}"
pg_url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1/test}"
port=18786
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_wrk
cargo build --release --quiet --example argon2_bound --example bare_server --example hash_write_floor
bound_bin="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/argon2_bound"
bare_bin="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/bare_server"
bare_port=18790
if [ -n "${BENCH_SESSION_CACHE:-}" ]; then
  export CUSTOS_SESSION_CACHE_SECONDS="$BENCH_SESSION_CACHE"
fi
ports_free "$port"

server_pid=""
dbname=""
work=""
trap end_run EXIT
trap 'exit 130' INT TERM

# CPU time (1/100 s) of every process whose command line matches $1.
cpu_ticks() {
  local total=0 pid
  for pid in $(pgrep -f "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
bound() { bound_of "$("$bound_bin")"; }
requests_of() { sed -E 's/.*of ([0-9]+).*/\1/' <<<"$1"; }

start() { # $1 = binary
  work="$(mktemp -d)"
  local url
  if [ "$database" = postgres ]; then
    dbname="custos_compare_$$_$RANDOM"
    psql "$pg_url" -qc "CREATE DATABASE $dbname"
    url=$(database_url "$pg_url" "$dbname")
  else
    url="sqlite://$work/custos.db?mode=rwc"
  fi
  start_server "$1" "$url" "$port" "$work"
  version=$(policy_version "$port")
}

signup_login() { # $1 = label
  local before after pg0 pg1 out rps
  before=$(bound)
  pg0=$(cpu_ticks 'postgres:')
  out=$(POLICY_VERSION="$version" wrk -t2 -c8 -d"${seconds}s" --latency -s bench/signup_login.lua \
    "http://127.0.0.1:$port/graphql" | grep -E 'CHECK|RESULT' | tr '\n' ' ')
  pg1=$(cpu_ticks 'postgres:')
  after=$(bound)
  rps=$(rps_of "$out")
  printf '%s: %s| bound %s / %s | ratio %s %%' "$1" "$out" "$before" "$after" \
    "$(ratio_to_bound "$rps" "$before" "$after")"
  if [ "$database" = postgres ]; then
    printf ' | PostgreSQL CPU %s ms a request' "$(python3 -c "print(round(($pg1 - $pg0) * 10 / $(requests_of "$out"), 2))")"
  fi
  echo
}

mixed() { # $1 = label
  local token; token=$(load_me_token "$port" "$version")
  POLICY_VERSION="$version" wrk -t1 -c8 -d"${seconds}s" -s bench/signup_login.lua \
    "http://127.0.0.1:$port/graphql" | grep -E 'CHECK|RESULT' | tr '\n' ' ' >"$work/signup_login" &
  local other=$!
  local me; me=$(TOKEN="$token" wrk -t1 -c8 -d"${seconds}s" --latency -s bench/me.lua \
    "http://127.0.0.1:$port/graphql" | grep -E 'CHECK|RESULT' | tr '\n' ' ')
  wait "$other"
  local cache; cache=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^custos_session_cache_lookups_total/ {print $1 "=" $2}' \
    | sed -E 's/custos_session_cache_lookups_total\{result="([a-z]+)"\}/\1/' | tr '\n' ' ')
  echo "$1: me ${me}| cache ${cache}| signup+login $(cat "$work/signup_login")"
}

bare_rps=""
bare_round() { # the same load on a bare `{ hello }` server: the ceiling of `me`
  ports_free "$bare_port"
  "$bare_bin" "127.0.0.1:$bare_port" &
  local pid=$!
  for _ in $(seq 1 50); do curl -sf -o /dev/null -X POST -H 'content-type: application/json' \
    --data '{"query":"{ hello }"}' "http://127.0.0.1:$bare_port/graphql" && break; sleep 0.1; done
  local out; out=$(wrk -t2 -c32 -d"${seconds}s" --latency -s bench/hello.lua \
    "http://127.0.0.1:$bare_port/graphql" | grep -E 'CHECK|RESULT' | tr '\n' ' ')
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  bare_rps=$(rps_of "$out")
  echo "bare: $out"
}

me_alone() { # $1 = label
  local token; token=$(load_me_token "$port" "$version")
  local tokens=""
  if [ "$people" -gt 1 ]; then tokens=$(load_me_tokens "$port" "$version" "$people"); fi
  local out; out=$(TOKEN="$token" TOKENS="$tokens" wrk -t2 -c32 -d"${seconds}s" --latency -s bench/me.lua \
    "http://127.0.0.1:$port/graphql" | grep -E 'CHECK|RESULT' | tr '\n' ' ')
  echo "$1: $out| $(python3 -c "print(round(100 * $(rps_of "$out") / $bare_rps, 1))") % of bare"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $scenario on $database, ${seconds}s a run, $rounds rounds, session cache ${CUSTOS_SESSION_CACHE_SECONDS:-default}, $people people"
for _ in $(seq 1 "$rounds"); do
  if [ "$scenario" = me ]; then bare_round; fi
  for spec in "$@"; do
    start "$(realpath "${spec#*=}")"
    case "$scenario" in
      signup-login) signup_login "${spec%%=*}" ;;
      mixed) mixed "${spec%%=*}" ;;
      me) me_alone "${spec%%=*}" ;;
    esac
    end_run
  done
done
