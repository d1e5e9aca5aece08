#!/usr/bin/env bash
# Starts the debug server on a free port with a throwaway database and runs
# the browser test against it. Needs Debian's chromium and Node.js.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
(cd "$here" && npm ci --no-audit --no-fund --silent)
cargo build --quiet --manifest-path "$root/Cargo.toml" --bin custos
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
CUSTOS_BIND=127.0.0.1:0 CUSTOS_LOG_FORMAT=json "${CARGO_TARGET_DIR:-$root/target}/debug/custos" serve >"$work/server.log" 2>&1 &
server=$!
port=""
for _ in $(seq 1 100); do
  port=$(grep -o '"addr":"127.0.0.1:[0-9]*"' "$work/server.log" | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)
  [ -n "$port" ] && break
  sleep 0.2
done
if [ -z "$port" ]; then
  echo "server did not start:"; cat "$work/server.log"; exit 1
fi
CUSTOS_URL="http://127.0.0.1:$port" node "$here/playground.test.mjs"
