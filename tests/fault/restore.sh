#!/usr/bin/env bash
# Fault test: a backup restored after an erasure never brings the person back.
#
# Runs the drill of the restore runbook twice with `custos serve` on SQLite
# (mail written to files, jobs every second, deletion grace 0): once with
# the keys (and the erasure journal) in a separate key store
# (CUSTOS_KEY_STORE_URL), once with the keys in the main database and the
# journal in a file of its own (CUSTOS_ERASURE_JOURNAL_URL). Each time:
# sign up alice and bob, back up the main database (`VACUUM INTO`, the
# database runs in WAL mode), erase alice (request, confirm, purge), stop,
# restore the backup, start. Passes only when, after the restore:
#   - the start re-applied the erasure (its log says so) and alice's rows
#     (account, sessions, consents, tickets, mail) are gone after a tick;
#   - an audit entry says it was re-applied after a restore;
#   - signing in as alice answers INVALID_CREDENTIALS, and bob signs in and
#     reads `me`;
#   - alice got exactly one erasure receipt;
#   - custos logged no ERROR and never panicked.
#
#   tests/fault/restore.sh
#   CUSTOS_BIN=target/release/custos tests/fault/restore.sh
#
# Settings: CUSTOS_BIN (default target/debug/custos under CARGO_TARGET_DIR
# or the repo, built with cargo if absent), FAULT_KEEP=1 keeps the work
# directories for inspection. Needs curl, jq, sqlite3 and python3.
set -euo pipefail
for tool in curl jq sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed"; exit 2; }
done
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
started_at=$(date +%s.%N)

bin="${CUSTOS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/custos}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  if [ -n "${CUSTOS_BIN:-}" ]; then echo "CUSTOS_BIN=$CUSTOS_BIN is not an executable"; exit 2; fi
  echo "building $bin"
  cargo build --quiet --manifest-path "$root/Cargo.toml" --bin custos
fi

work="$(mktemp -d -t custos-restore.XXXXXX)"
server=""

stop_server() {
  [ -n "$server" ] || return 0
  kill "$server" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

cleanup() {
  local rc=$?
  set +e
  stop_server
  if [ "$rc" != 0 ]; then
    for log in "$work"/*/custos*.log; do
      [ -f "$log" ] || continue
      echo "--- warnings and errors of $log"
      grep -E '"level":"(WARN|ERROR)"' "$log" | tail -n 10 | cut -c1-400
    done
  fi
  if [ "${FAULT_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  awk -v a="$(date +%s.%N)" -v b="$started_at" 'BEGIN { printf "total time %.1f s\n", a - b }'
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "FAIL ($scenario): $*"; exit 1; }

# One GraphQL call; prints the JSON answer.
gql() {
  local query="$1" variables="${2:-{\}}" token="${3:-}"
  jq -cn --arg q "$query" --argjson v "$variables" '{query: $q, variables: $v}' \
    | curl -s -H 'content-type: application/json' ${token:+-H "authorization: Bearer $token"} \
        --data-binary @- "$url/graphql"
}
# A value out of a JSON answer, by a jq filter (empty for null).
pick() { jq -r "($2) // empty" <<<"$1"; }
# The token of the newest mailed link to `path` addressed to `to`.
link_token() {
  python3 - "$dir/mail" "$1" "$2" <<'EOF'
import email, pathlib, re, sys
mail_dir, to, path = sys.argv[1:]
found = ""
for file in sorted(pathlib.Path(mail_dir).glob("*.eml"), key=lambda p: p.stat().st_mtime):
    msg = email.message_from_bytes(file.read_bytes())
    if to not in (msg.get("To") or ""):
        continue
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode("utf-8", "replace")
            m = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_-]+)", text)
            if m:
                found = m.group(1)
print(found)
EOF
}
mails_to() { grep -l "^To: .*$1" "$dir"/mail/*.eml 2>/dev/null | wc -l; }
# Rows still held for an account id, over every table keyed by it (SQLite
# holds the uuids as 16-byte blobs).
rows_of() {
  local blob="X'${1//-/}'" total=0 n table column
  for pair in accounts:id sessions:account_id consent_events:account_id \
    tickets:account_id outbox:account_id account_keys:id; do
    table="${pair%%:*}" column="${pair#*:}"
    n=$(sqlite3 "$dir/main.db" "SELECT count(*) FROM $table WHERE $column IN ($blob, '$1')")
    total=$((total + n))
  done
  echo "$total"
}
audit_reapplied() {
  sqlite3 "$dir/main.db" "SELECT count(*) FROM audit_log WHERE action = 'account.purge.reapplied' AND detail LIKE '%re-applied after a restore%'"
}

start_server() {
  local log="$1"
  (
    cd "$dir"
    for var in $(compgen -e); do case "$var" in CUSTOS_*) unset "$var" ;; esac; done
    export CUSTOS_DATABASE_URL="sqlite://$dir/main.db?mode=rwc"
    export CUSTOS_BIND=127.0.0.1:0 CUSTOS_LOG_FORMAT=json RUST_LOG=info
    export CUSTOS_MAIL_DIR="$dir/mail" CUSTOS_DEV_KEYS_FILE="$dir/custos.dev-keys"
    export CUSTOS_SCHEDULER_INTERVAL_SECS=1 CUSTOS_DELETION_GRACE_WORKING_DAYS=0
    case "$scenario" in
      key-store) export CUSTOS_KEY_STORE_URL="sqlite://$dir/keys.db?mode=rwc" ;;
      journal) export CUSTOS_ERASURE_JOURNAL_URL="sqlite://$dir/journal.db?mode=rwc" ;;
    esac
    exec "$bin" serve
  ) >"$log" 2>&1 &
  server=$!
  local port=""
  for _ in $(seq 1 150); do
    port=$(grep -o '"addr":"127.0.0.1:[0-9]*"' "$log" | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log"; fail "custos did not start"; }
  url="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
}

SIGNUP='mutation($i: SignupInput!) { signup(input: $i) { accepted } }'
LOGIN='mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token } }'
PASSWORD="a fine long passphrase"

sign_up() {
  local version answer
  version=$(pick "$(gql '{ policy { version } }')" '.data.policy.version')
  answer=$(gql "$SIGNUP" "{\"i\": {\"username\": \"$1\", \"email\": \"$1@restore.example\", \"password\": \"$PASSWORD\", \"acceptPolicyVersion\": \"$version\", \"age\": \"ADULT\"}}")
  [ "$(pick "$answer" '.data.signup.accepted')" = true ] || fail "signup of $1: $answer"
}
sign_in() { gql "$LOGIN" "{\"l\": \"$1\", \"p\": \"$PASSWORD\"}"; }
token_of() { pick "$(sign_in "$1")" '.data.login.token'; }
code_of() { pick "$1" '.errors[0].extensions.code'; }

drill() {
  scenario="$1"
  dir="$work/$scenario"
  mkdir -p "$dir/mail"
  echo "=== $scenario"
  start_server "$dir/custos-before.log"

  sign_up alice; sign_up bob
  local alice_token bob_token alice_id answer
  alice_token=$(token_of alice)
  bob_token=$(token_of bob)
  [ -n "$alice_token" ] && [ -n "$bob_token" ] || fail "sign-in before the backup"
  alice_id=$(pick "$(gql '{ me { id } }' '{}' "$alice_token")" '.data.me.id')
  gql 'mutation { recordConsent(purpose: "support", granted: true) { granted } }' '{}' "$alice_token" >/dev/null
  answer=$(gql 'mutation { createTicket(input: { category: COMPLAINT, subject: "Before the backup", body: "Restore drill" }) { id } }' '{}' "$alice_token")
  [ -n "$(pick "$answer" '.data.createTicket.id')" ] || fail "ticket: $answer"

  sqlite3 "$dir/main.db" "VACUUM INTO '$dir/backup.db'"
  echo "backed up with alice ($alice_id) and bob"

  gql 'mutation($u: String!, $e: String!) { requestAccountDeletion(input: { username: $u, email: $e }) }' \
    '{"u": "alice", "e": "alice@restore.example"}' >/dev/null
  local confirm=""
  for _ in $(seq 1 50); do
    confirm=$(link_token alice@restore.example /confirm-deletion)
    [ -n "$confirm" ] && break
    sleep 0.2
  done
  [ -n "$confirm" ] || fail "no deletion confirmation mail"
  answer=$(gql 'mutation($t: String!) { confirmAccountDeletion(token: $t) { status } }' "{\"t\": \"$confirm\"}")
  [ "$(pick "$answer" '.data.confirmAccountDeletion.status')" = SCHEDULED ] || fail "confirm: $answer"
  for _ in $(seq 1 100); do
    [ "$(rows_of "$alice_id")" = 0 ] && break
    sleep 0.2
  done
  [ "$(rows_of "$alice_id")" = 0 ] || fail "the purge did not erase alice"
  for _ in $(seq 1 50); do
    [ "$(mails_to alice@restore.example)" -ge 2 ] && break
    sleep 0.2
  done
  local mails_before
  mails_before=$(mails_to alice@restore.example)
  echo "alice erased; $mails_before mails to her (verification, confirmation, notice, receipt)"
  stop_server

  rm -f "$dir/main.db" "$dir/main.db-wal" "$dir/main.db-shm"
  cp "$dir/backup.db" "$dir/main.db"
  [ "$(rows_of "$alice_id")" -gt 0 ] || fail "the backup does not hold alice"
  echo "restored the backup (alice's rows are back in it); starting"
  start_server "$dir/custos-after.log"

  grep -q 'erasures re-applied' "$dir/custos-after.log" || fail "the start did not re-apply the erasure"
  answer=$(sign_in alice)
  [ "$(code_of "$answer")" = INVALID_CREDENTIALS ] || fail "alice signs in after the restore: $answer"
  answer=$(gql '{ me { id } }' '{}' "$alice_token")
  [ -z "$(pick "$answer" '.data.me')" ] || fail "alice's old session works: $answer"
  [ "$(code_of "$answer")" != INTERNAL ] || fail "alice's old session: $answer"
  sleep 2 # a tick or two
  [ "$(rows_of "$alice_id")" = 0 ] || fail "alice's rows are still there after a tick"
  [ "$(audit_reapplied)" = 1 ] || fail "no audit entry for the re-applied erasure"
  bob_token=$(token_of bob)
  [ -n "$bob_token" ] || fail "bob cannot sign in"
  answer=$(gql '{ me { username } }' '{}' "$bob_token")
  [ "$(pick "$answer" '.data.me.username')" = bob ] || fail "bob's me: $answer"
  [ "$(mails_to alice@restore.example)" = "$mails_before" ] || fail "alice was mailed again"
  answer=$(curl -s "$url/metrics")
  grep -q '^custos_erasures_reapplied_total 1$' <<<"$answer" || fail "metrics do not count the re-applied erasure"
  stop_server

  if grep -h 'panicked' "$dir"/custos-*.log; then fail "custos panicked"; fi
  if grep -h '"level":"ERROR"' "$dir"/custos-*.log | cut -c1-400; then fail "custos logged errors"; fi
  echo "ok: alice stays erased, bob works, no ERROR logged"
}

drill key-store
drill journal
echo "PASS"
