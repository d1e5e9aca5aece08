# Shared by bench/load.sh and bench/compare.sh: sourced, not run.

# Installs wrk (Debian's package) when it is missing.
need_wrk() {
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
}

# Stops the script when something listens on one of the given ports.
ports_free() {
  local port
  for port in "$@"; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then
      echo "port $port is taken; stop what listens there first"
      exit 1
    fi
  done
}

# Starts `$1 serve` on the database $2 at 127.0.0.1:$3, working in the
# directory $4 (its log goes there), with the rate limit out of the way
# of the load; sets server_pid and returns once /readyz answers.
start_server() {
  local binary=$1 url=$2 port=$3 dir=$4
  mkdir -p "$dir"
  # exec: $! is the server itself, so the caller's kill reaches it.
  (cd "$dir" && exec env CUSTOS_DATABASE_URL="$url" CUSTOS_BIND="127.0.0.1:$port" CUSTOS_LOG_FORMAT=json \
    CUSTOS_RATE_LIMIT_PER_MINUTE=1000000 RUST_LOG=warn "$binary" serve >"$dir/log" 2>&1) &
  server_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "custos did not start on $port"
  cat "$dir/log"
  exit 1
}

# Ends one run of compare.sh or split_cores.sh: stops its server, drops its
# PostgreSQL database and removes its directory (the globals server_pid,
# dbname and work, each empty when there is none; pg_url), then forgets them.
end_run() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$dbname" ]; then psql "$pg_url" -qc "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1 || true; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
  server_pid="" dbname="" work=""
}

# The URL of database $2 on the server of URL $1, keeping $1's settings
# (such as `?sslmode=disable`).
database_url() {
  local base="${1%%\?*}"
  echo "${base%/*}/$2${1#"$base"}"
}

# POSTs the GraphQL request body $2 to the server on port $1.
gql() { curl -sf -X POST -H 'content-type: application/json' --data "$2" "http://127.0.0.1:$1/graphql"; }

# The current policy version of the server on port $1.
policy_version() {
  gql "$1" '{"query":"{ policy { version } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["policy"]["version"])'
}

# Signs up $3 more accounts (load_me_1, load_me_2, ...) on the server on
# port $1 (policy version $2) and prints a session token for each, separated
# by spaces: TOKENS for bench/me.lua.
load_me_tokens() {
  local n tokens=()
  for n in $(seq 1 "$3"); do
    gql "$1" "{\"query\":\"mutation(\$i: SignupInput!) { signup(input: \$i) { accepted } }\",\"variables\":{\"i\":{\"username\":\"load_me_$n\",\"email\":\"load.me.$n@example.org\",\"password\":\"a load test passphrase\",\"acceptPolicyVersion\":\"$2\",\"age\":\"ADULT\"}}}" >/dev/null
    tokens+=("$(gql "$1" "{\"query\":\"mutation { login(input: { login: \\\"load_me_$n\\\", password: \\\"a load test passphrase\\\" }) { token } }\"}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')")
  done
  echo "${tokens[*]}"
}

# Signs up the account bench/me.lua expects on the server on port $1
# (policy version $2) and prints a session token for it.
load_me_token() {
  gql "$1" "{\"query\":\"mutation(\$i: SignupInput!) { signup(input: \$i) { accepted } }\",\"variables\":{\"i\":{\"username\":\"load_me\",\"email\":\"load.me@example.org\",\"password\":\"a load test passphrase\",\"acceptPolicyVersion\":\"$2\",\"age\":\"ADULT\"}}}" >/dev/null
  gql "$1" '{"query":"mutation { login(input: { login: \"load_me\", password: \"a load test passphrase\" }) { token } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])'
}

# Fields of argon2_bound's lines (the bound; two hashes at once) and of the
# RESULT line of a wrk run (requests a second), from the text given.
bound_of() { awk '/bound =/ {print $(NF-2)}' <<<"$1"; }
at_once_of() { awk '/at once/ {print $(NF-2)}' <<<"$1"; }
rps_of() { sed -nE 's/.*rps=([0-9.]+).*/\1/p' <<<"$1"; }
# Requests a second $1 as a percentage of the mean of the bounds $2 and $3
# (measured just before and just after the run).
ratio_to_bound() { python3 -c "print(round(100 * $1 / (($2 + $3) / 2), 1))"; }
