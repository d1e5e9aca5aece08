#!/usr/bin/env bash
# How PostgreSQL itself scales on this host for the purge's access pattern,
# with no Custos code: the floor against which bench/purge.sh's ratio of
# 1,000,000 to 100,000 accounts is read.
#
#   CUSTOS_TEST_DATABASE_URL=$(bench/private_postgres.sh start) bench/pg_scaling.sh
#   BENCH_SIZES="100000 1000000 100000" bench/pg_scaling.sh
#
# For each size N it builds, in a scratch schema of the given database:
#   parents   N rows: a random uuid key, two keyed-hash-like unique indexes
#             (as accounts' username and email indexes) and 300 bytes;
#   children  3 rows a parent, `ON DELETE CASCADE`, indexed by parent (as
#             consent events);
#   receipts  empty: a random uuid key and an indexed address (as the
#             outbox's erasure receipts);
# vacuums and analyses them, then times one PL/pgSQL loop that, for every
# 5,000 parents in an order unrelated to their keys (as due requests name
# accounts), deletes their children, deletes them (the cascade probes its
# child index again), and inserts one receipt each: the purge's per-row
# work on random keys, in its batch size, inside the server (no round
# trips, no Custos). It prints, per size, the tables' size with their
# indexes, the time, and the ratio to the first size. The schema is
# dropped at the end.
set -euo pipefail
url="${CUSTOS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5433/test}"
sizes="${BENCH_SIZES:-100000 1000000 100000}"
schema=bench_pg_scaling
export PGOPTIONS="-c client_min_messages=warning"
psql_q() { psql "$url" -X -q -v ON_ERROR_STOP=1 "$@"; }
trap 'psql_q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true' EXIT

first=""
for n in $sizes; do
  psql_q -v n="$n" >/dev/null <<SQL
DROP SCHEMA IF EXISTS $schema CASCADE;
CREATE SCHEMA $schema;
SET search_path = $schema;
CREATE TABLE parents (id uuid PRIMARY KEY, name_idx bytea UNIQUE, email_idx bytea UNIQUE, sealed text);
CREATE TABLE children (id uuid PRIMARY KEY,
  parent_id uuid NOT NULL REFERENCES parents (id) ON DELETE CASCADE, sealed text);
CREATE INDEX ON children (parent_id);
CREATE TABLE receipts (id uuid PRIMARY KEY, address_idx bytea, sealed text);
CREATE INDEX ON receipts (address_idx);
INSERT INTO parents
  SELECT gen_random_uuid(), sha256(('n' || i)::bytea), sha256(('e' || i)::bytea), repeat('x', 300)
  FROM generate_series(1, :n) i;
INSERT INTO children SELECT gen_random_uuid(), id, repeat('c', 120) FROM parents, generate_series(1, 3);
-- The order the loop takes parents in: unrelated to their keys.
CREATE TABLE due AS SELECT row_number() OVER (ORDER BY md5(id::text)) AS seq, id, email_idx FROM parents;
CREATE INDEX ON due (seq);
VACUUM ANALYZE;
SQL
  mib=$(psql_q -At -c "SELECT sum(pg_total_relation_size(c.oid)) / 1048576 FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$schema' AND c.relkind = 'r'")
  ms=$(psql_q -At <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
SET search_path = $schema;
\timing on
DO \$\$
DECLARE batch int := 0; ids uuid[]; addresses bytea[];
BEGIN
  LOOP
    SELECT array_agg(id), array_agg(email_idx) INTO ids, addresses
      FROM due WHERE seq > batch * 5000 AND seq <= (batch + 1) * 5000;
    EXIT WHEN ids IS NULL;
    DELETE FROM children WHERE parent_id = ANY (ids);
    DELETE FROM parents WHERE id = ANY (ids);
    INSERT INTO receipts SELECT gen_random_uuid(), a, repeat('r', 300) FROM unnest(addresses) a;
    batch := batch + 1;
  END LOOP;
END
\$\$;
SQL
)
  first="${first:-$ms}"
  awk -v n="$n" -v ms="$ms" -v first="$first" -v mib="$mib" \
    'BEGIN { printf "BENCH pg_scaling: %d parents (%d MiB of tables and indexes) in %.2f s = %.0f/s; %.1f x the first size\n", n, mib, ms / 1000, n / (ms / 1000), ms / first }'
done
