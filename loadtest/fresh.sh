#!/usr/bin/env bash
# Orders flat out from the first order on a freshly migrated database (BENCHMARKS.md, issue #12):
# for each server binary, once on a database as `migrate` leaves it and once with its empty tables
# analyzed (as autovacuum, `vacuumdb --analyze` or a restore leave them); each run on a new
# database, never warmed. Prints the orders per 5 s and what PostgreSQL read of `orders`.
# Usage: bash loadtest/fresh.sh OLD_BINARY NEW_BINARY [seconds per run] [rounds] [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; SECONDS_PER_RUN=${3:-60}; ROUNDS=${4:-2}; OUT=${5:-bench-results/fresh}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
mkdir -p "$OUT"
# LT: a load tool already built (default: build it)
if [ -z "${LT:-}" ]; then cargo build --release -q -p loadtest; LT=./target/release/loadtest; fi
sql() { PGOPTIONS="-c client_min_messages=warning" psql -qAt -h 127.0.0.1 -U postgres -d "$1" -c "$2"; }

run() { # name binary analyze(yes|no) [seconds]
  local name=$1 bin=$2 analyze=$3 seconds=${4:-$SECONDS_PER_RUN} db=fresh_${1//-/_}
  sql postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  sql postgres "CREATE DATABASE $db"
  redis-cli -h 127.0.0.1 --scan --pattern "$db:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
  DATABASE_URL=$PG/$db REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$db: RUST_LOG=warn \
    "$bin" serve --bind 127.0.0.1:8500 > "$OUT/$name-server.log" 2>&1 &
  local pid=$!
  until curl -fsS http://127.0.0.1:8500/healthz >/dev/null 2>&1; do sleep 0.2; done
  [ "$analyze" = yes ] && sql "$db" "ANALYZE"
  $LT --url http://127.0.0.1:8500 --database-url "$PG/$db" --out "$OUT/$name.json" \
    orders --users 10000 --products 1000 --concurrency 64 --duration "$seconds" > "$OUT/$name.txt"
  # backends flush their statistics about once a second, idle ones within ~10 s
  until [ "$(sql "$db" "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'payments'")" \
          -ge "$(sql "$db" "SELECT count(*) FROM payments")" ]; do sleep 0.5; done
  kill $pid; wait $pid 2>/dev/null || true
  grep -E "^\[FAIL" "$OUT/$name.txt" && exit 1
  local per5 scans
  per5=$(jq -r '[.results.per_second[] | {w: (.second / 5 | floor), n: .requests}]
    | group_by(.w) | map((map(.n) | add) / 5 | round) | map(tostring) | join(" ")' "$OUT/$name.json")
  scans=$(sql "$db" "SELECT round(seq_scan::numeric / n_tup_ins, 3) || ' seq scans, '
    || round(seq_tup_read::numeric / n_tup_ins) || ' rows read seq., '
    || round(idx_scan::numeric / n_tup_ins, 2) || ' index scans per order'
    FROM pg_stat_user_tables WHERE relname = 'orders'")
  echo "$name: $(grep -E 'req/s' "$OUT/$name.txt")"
  echo "$name: orders/s per 5 s: $per5"
  echo "$name: orders table: $scans"
  sql postgres "DROP DATABASE $db WITH (FORCE)"
}

# load the binaries and the tool once (page cache), on a database thrown away
run warm-old "$OLD" no 5 >/dev/null; run warm-new "$NEW" no 5 >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  run "old-analyzed-$round" "$OLD" yes
  run "new-analyzed-$round" "$NEW" yes
  run "old-as-migrated-$round" "$OLD" no
  run "new-as-migrated-$round" "$NEW" no
done
