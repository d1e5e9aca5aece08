#!/usr/bin/env bash
# Builds the debug server and runs the browser tests: the playground on a
# server started here, and the account console walk, which starts its own
# server with an SMTP sink. Needs Debian's chromium and Node.js; the CJK
# fonts make the Chinese screenshots readable.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list 2>/dev/null | grep -q 'Noto Sans CJK' || missing+=(fonts-noto-cjk)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
(cd "$here" && npm ci --no-audit --no-fund --silent)
cargo build --quiet --manifest-path "$root/Cargo.toml" --bin custos
bin="${CARGO_TARGET_DIR:-$root/target}/debug/custos"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
CUSTOS_BIND=127.0.0.1:0 CUSTOS_LOG_FORMAT=json "$bin" serve >"$work/server.log" 2>&1 &
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
kill "$server" 2>/dev/null || true
CUSTOS_BIN="$bin" node "$here/console.test.mjs"
