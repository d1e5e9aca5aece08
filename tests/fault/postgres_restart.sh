#!/usr/bin/env bash
# Fault test: PostgreSQL restarted under load.
#
# Starts a private PostgreSQL cluster (never the machine's), a `custos serve`
# on it with mail written to files, and load (tests/fault/load.py: signups,
# logins, `me`, /readyz polling). Mid-load PostgreSQL gets a fast shutdown
# (by default the moment the outbox writes a mail file, so the stop lands
# inside an outbox tick), stays down FAULT_OUTAGE_SECS and is started again;
# custos is never restarted. Passes only when:
#   - every /graphql answer overlapping the outage is either a success or
#     HTTP 200 with an INTERNAL error carrying a request id and no internals
#     (no 5xx, reset, hang past the server's 30 s, SQL, paths or traces);
#     before and after it every answer succeeds;
#   - /readyz answers 503 while the database is down and 200 again within
#     FAULT_READY_WITHIN_SECS of it being back, without flapping;
#   - custos recovers by itself (same process): every signup answered
#     `accepted` signs in and reads `me` afterwards, and a fresh one works;
#   - once the outbox drains, each accepted signup has exactly one
#     verification mail and no address has two.
#
#   tests/fault/postgres_restart.sh
#   CUSTOS_BIN=target/release/custos FAULT_OUTAGE_SECS=5 tests/fault/postgres_restart.sh
#
# Settings: CUSTOS_BIN (default target/debug/custos under CARGO_TARGET_DIR
# or the repo, built with cargo if absent),
# PG_BIN (default /usr/lib/postgresql/15/bin), FAULT_BEFORE_SECS (4),
# FAULT_OUTAGE_SECS (12), FAULT_AFTER_SECS (4), FAULT_READY_WITHIN_SECS (5),
# FAULT_STOP_MID_OUTBOX (1: stop the moment a mail file appears, inside an
# outbox tick; 0: stop at once with pg_ctl),
# FAULT_KEEP=1 keeps the work directories for inspection.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
started_at=$(date +%s.%N)
before_secs="${FAULT_BEFORE_SECS:-4}"
# Longer than the pool's 10 s acquire timeout (src/db.rs): a shorter outage
# is waited out by every request and by the outbox, and the failure paths
# (INTERNAL answers, an outbox tick that fails half-way) never run.
outage_secs="${FAULT_OUTAGE_SECS:-12}"
after_secs="${FAULT_AFTER_SECS:-4}"
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
stop_mid_outbox="${FAULT_STOP_MID_OUTBOX:-1}"

bin="${CUSTOS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/custos}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  if [ -n "${CUSTOS_BIN:-}" ]; then echo "CUSTOS_BIN=$CUSTOS_BIN is not an executable"; exit 2; fi
  echo "building $bin"
  cargo build --quiet --manifest-path "$root/Cargo.toml" --bin custos
fi
[ -x "$pg_bin/initdb" ] || { echo "no PostgreSQL binaries in $pg_bin (set PG_BIN)"; exit 2; }

work="$(mktemp -d -t custos-fault.XXXXXX)"
# PostgreSQL refuses to run as root: as root the cluster belongs to the
# postgres user, in a directory of its own (the work dir is root's, 0700).
pg_dir="$(mktemp -d -t custos-fault-pg.XXXXXX)"
pg_data="$pg_dir/data"
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$pg_dir"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
server=""
loader=""

cleanup() {
  local rc=$?
  set +e
  [ -n "$loader" ] && kill "$loader" 2>/dev/null
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  if [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" stop -m immediate -w -t 10 >/dev/null 2>&1
  fi
  if [ "$rc" != 0 ] && [ -f "$work/custos.log" ]; then
    echo "--- last warnings and errors of the custos log ($work/custos.log)"
    grep -E '"level":"(WARN|ERROR)"' "$work/custos.log" | tail -n 10 | cut -c1-400
  fi
  if [ "${FAULT_KEEP:-0}" = 1 ]; then
    echo "kept $work and $pg_dir"
  else
    rm -rf "$work" "$pg_dir"
  fi
  awk -v a="$(date +%s.%N)" -v b="$started_at" 'BEGIN { printf "total time %.1f s\n", a - b }'
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
# A sleep the INT/TERM traps can cut short (bash runs a trap only once the
# foreground command ends; `wait` returns at once).
pause() { sleep "$1" & wait $!; }
event() { echo "$1 $(now)" >>"$work/events"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_ctl() { as_pg "$pg_bin/pg_ctl" -D "$pg_data" "$@"; }
psql_q() { as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d custos_fault -XAtqc "$1"; }

# ---- private PostgreSQL: trust on loopback, socket in its own directory
as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --no-sync >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log"; exit 1; }
pg_port=""
for _ in 1 2 3; do # a port found free can be taken before PostgreSQL binds it
  pg_port=$(free_port)
  if pg_ctl -l "$pg_dir/postgres.log" -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" -w -t 20 start >/dev/null; then
    break
  fi
  pg_port=""
done
[ -n "$pg_port" ] || { echo "private PostgreSQL did not start"; cat "$pg_dir/postgres.log"; exit 1; }
as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres custos_fault
echo "private PostgreSQL 127.0.0.1:$pg_port ($pg_data)"

# ---- custos, with nothing from the caller's CUSTOS_* environment
mkdir -p "$work/mail"
(
  cd "$work"
  for var in $(compgen -e); do case "$var" in CUSTOS_*) unset "$var" ;; esac; done
  export CUSTOS_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/custos_fault"
  export CUSTOS_BIND=127.0.0.1:0 CUSTOS_LOG_FORMAT=json RUST_LOG=info
  export CUSTOS_MAIL_DIR="$work/mail" CUSTOS_DEV_KEYS_FILE="$work/custos.dev-keys"
  export CUSTOS_RATE_LIMIT_PER_MINUTE=1000000 CUSTOS_SCHEDULER_INTERVAL_SECS=1
  exec "$bin" serve
) >"$work/custos.log" 2>&1 &
server=$!
port=""
for _ in $(seq 1 150); do
  port=$(grep -o '"addr":"127.0.0.1:[0-9]*"' "$work/custos.log" | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { echo "custos did not start"; cat "$work/custos.log"; exit 1; }
url="http://127.0.0.1:$port"
for _ in $(seq 1 50); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
echo "custos $bin (pid $server) at $url"

# ---- load, outage, recovery
run_id="ft$(date +%s | tail -c 6)"
event load_start
python3 "$here/load.py" run --url "$url" --work "$work" --run-id "$run_id" &
loader=$!
for _ in $(seq 1 100); do [ -f "$work/load.started" ] && break; sleep 0.1; done
[ -f "$work/load.started" ] || { echo "the load client did not start"; exit 1; }
pause "$before_secs"

if [ "$stop_mid_outbox" = 1 ]; then
  # The stop lands inside an outbox tick, between a mail handed to the
  # transport and its row marked SENT; pg_ctl then waits for the shutdown.
  python3 "$here/load.py" trigger --mail-dir "$work/mail" --pid-file "$pg_data/postmaster.pid" --events "$work/events"
else
  echo "stopping PostgreSQL (fast) under load"
  event down_begin
fi
pg_ctl stop -m fast -w -t 30 >/dev/null
event down
pause "$outage_secs"
echo "starting PostgreSQL again"
event up_begin
pg_ctl -l "$pg_dir/postgres.log" -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" -w -t 30 start >/dev/null
event up
pause "$after_secs"
touch "$work/stop"
wait "$loader" || { loader=""; echo "the load client failed"; exit 1; }
loader=""
kill -0 "$server" 2>/dev/null || { echo "FAIL: custos exited during the test"; exit 1; }

# ---- the outbox: a tick cut by the outage keeps retrying the write that
# records a sent mail and then goes on with the rest of its batch, so the
# outbox must drain soon after PostgreSQL is back (not when a five-minute
# claim runs out).
if ! python3 "$here/load.py" drain --url "$url" --timeout 15; then
  stuck=$(psql_q "SELECT count(*) FROM outbox WHERE status = 'PENDING'")
  echo "FAIL: $stuck mails still queued 15 s after recovery"
  exit 1
fi

status=0
python3 "$here/load.py" verify --url "$url" --work "$work" --mail-dir "$work/mail" --run-id "$run_id" || status=$?
kill -0 "$server" 2>/dev/null || { echo "FAIL: custos exited during the test"; status=1; }
if grep -q 'panicked' "$work/custos.log"; then
  echo "FAIL: custos panicked:"; grep 'panicked' "$work/custos.log" | head -5
  status=1
fi
errors=$(grep -c '"level":"ERROR"' "$work/custos.log" || true)
echo "custos logged $errors ERROR lines (expected while the database is down); same process throughout (pid $server)"
exit "$status"
