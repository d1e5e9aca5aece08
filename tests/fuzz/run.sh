#!/usr/bin/env bash
# Fuzzes the running API with schemathesis (from PyPI, in a virtual
# environment of its own), from the checked-in schema.graphql: first as an
# anonymous caller, then signed in. Any 5xx answer, non-JSON answer, error
# without a contract code or INTERNAL error fails the run (see hooks.py).
#
#   tests/fuzz/run.sh                 # FUZZ_EXAMPLES=25 per operation and caller
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${FUZZ_VENV:-$root/target/fuzz-venv}"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi
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
[ -n "$port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
url="http://127.0.0.1:$port/graphql"

gql() {
  curl -sf -X POST -H 'content-type: application/json' --data "$1" "$url"
}
version=$(gql '{"query":"{ policy { version } }"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["policy"]["version"])')
gql "{\"query\":\"mutation(\$i: SignupInput!) { signup(input: \$i) { accepted } }\",\"variables\":{\"i\":{\"username\":\"fuzz_person\",\"email\":\"fuzz@example.org\",\"password\":\"a fuzzing passphrase\",\"acceptPolicyVersion\":\"$version\",\"age\":\"ADULT\"}}}" >/dev/null
token=$(gql '{"query":"mutation { login(input: { login: \"fuzz_person\", password: \"a fuzzing passphrase\" }) { token } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')

run() {
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here" "$venv/bin/st" run "$root/schema.graphql" \
    --url "$url" --max-examples "${FUZZ_EXAMPLES:-25}" --seed 20261129 \
    --checks no_crash_or_internal_error --no-color "$@"
}
echo "--- anonymous"
run
echo "--- signed in"
run -H "Authorization: Bearer $token"
if grep -q '"level":"ERROR"' "$work/server.log"; then
  echo "the server logged errors during the fuzz run:"
  grep '"level":"ERROR"' "$work/server.log" | head -20
  exit 1
fi
echo "fuzzing found no crash and no internal error"
