#!/usr/bin/env bash
# Times the purge: seeds N due accounts (default 100,000), each with a
# ticket, its message and three consent events, and runs one purge, on
# SQLite and then on PostgreSQL, in a release build, with the process's
# resident memory during the purge (peak counted from the purge's start).
#
#   bench/purge.sh                       # 100,000 accounts, both databases
#   BENCH_ACCOUNTS=10000 bench/purge.sh
#   BENCH_DATABASES=sqlite bench/purge.sh
#   CUSTOS_TEST_DATABASE_URL=$(bench/private_postgres.sh start) \
#     BENCH_ACCOUNTS=1000000 BENCH_DATABASES=postgres bench/purge.sh
#
# The last runs on a PostgreSQL cluster of the bench's own (see
# bench/private_postgres.sh), as the newest million-account rows in
# bench/RESULTS.md were measured. bench/pg_scaling.sh, on the same cluster,
# times PostgreSQL alone doing the same per-row work at both sizes.
#
# The benchmark is the ignored test `erasure::purge_benchmark` in
# tests/api/erasure.rs; the line it prints goes into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_ACCOUNTS="${BENCH_ACCOUNTS:-100000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/bench}"
pg_url="${CUSTOS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1/test}"
for db in ${BENCH_DATABASES:-sqlite postgres}; do
  if [ "$db" = postgres ]; then export CUSTOS_TEST_DATABASE_URL="$pg_url"; else unset CUSTOS_TEST_DATABASE_URL; fi
  cargo test --release --test api -- erasure::purge_benchmark \
      --ignored --nocapture --exact --test-threads=1 2>&1 | grep -E '^BENCH|panicked|error' || true
done
