#!/usr/bin/env bash
# Starts a debug server on a fresh SQLite database and sends it hostile
# inputs for every operation of schema.graphql (tests/fuzz/hostile.py):
# deeply nested values, long strings, deep variables. Fails on any 5xx,
# non-JSON answer, dropped connection or silent /healthz, and if the
# server process is gone at the end. About a minute on a debug build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cargo build --quiet --manifest-path "$root/Cargo.toml" --bin custos
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
# The per-client limit would answer most requests before they reach the
# parser; the point here is what the parser and the executor survive.
CUSTOS_BIND=127.0.0.1:0 CUSTOS_LOG_FORMAT=json CUSTOS_RATE_LIMIT_PER_MINUTE=100000 \
  "${CARGO_TARGET_DIR:-$root/target}/debug/custos" serve >"$work/server.log" 2>&1 &
server=$!
port=""
for _ in $(seq 1 100); do
  port=$(grep -o '"addr":"127.0.0.1:[0-9]*"' "$work/server.log" | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "$port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
timeout 110 python3 "$here/hostile.py" "http://127.0.0.1:$port" "$root/schema.graphql"
if ! kill -0 "$server" 2>/dev/null; then
  echo "FAIL: the server process is gone"
  tail -n 20 "$work/server.log"
  exit 1
fi
echo "hostile inputs: no crash, no 5xx"
