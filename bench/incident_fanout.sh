#!/usr/bin/env bash
# Times the security-incident fan-out: seeds N accounts (default 100,000)
# into a fresh PostgreSQL database, runs `reportSecurityIncident` for all
# of them through HTTP and follows `incidentReport` until the fan-out is
# complete, in a release build. The run fails above 30 seconds per 100,000
# accounts or above 256 MiB resident. It prints the process's resident
# memory during the fan-out (the server runs in the test process).
#
#   bench/incident_fanout.sh                     # 100,000 accounts
#   BENCH_ACCOUNTS=20000 bench/incident_fanout.sh
#   CUSTOS_TEST_DATABASE_URL=postgres://user@host/db bench/incident_fanout.sh
#
# The benchmark is the ignored test `notices::incident_fanout_benchmark` in
# tests/api/notices.rs; the figure it prints goes into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUSTOS_TEST_DATABASE_URL="${CUSTOS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1/test}"
export BENCH_ACCOUNTS="${BENCH_ACCOUNTS:-100000}"
# A target directory of its own, so a release build never disturbs the
# debug builds of people working in the tree.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/bench}"
exec cargo test --release --test api -- notices::incident_fanout_benchmark \
    --ignored --nocapture --exact --test-threads=1
