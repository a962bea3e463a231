#!/usr/bin/env bash
# Orders flat out on two server binaries and the one-order transaction in plain SQL (pgbench), in
# one run, alternating, three rounds: the ratios that BENCHMARKS.md reports. Each server gets a
# fresh database; pgbench runs on the database the second server just used.
# Usage: bash loadtest/compare.sh OLD_BINARY NEW_BINARY [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; OUT=${3:-bench-results/compare}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
mkdir -p "$OUT"
cargo build --release -q -p loadtest
LT=./target/release/loadtest
$LT pgbench-script --first-user-id 1 --users 10000 --first-product-id 1 --products 1000 > "$OUT/orders.sql"

orders() { # name binary
  local name=$1 bin=$2 db=cmp_${1/-/_}
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  redis-cli -h 127.0.0.1 --scan --pattern "$db:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
  DATABASE_URL=$PG/$db REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$db: RUST_LOG=warn \
    "$bin" serve --bind 127.0.0.1:8400 > "$OUT/$name-server.log" 2>&1 &
  local pid=$!
  until curl -fsS http://127.0.0.1:8400/healthz >/dev/null 2>&1; do sleep 0.2; done
  $LT --url http://127.0.0.1:8400 --database-url "$PG/$db" --out "$OUT/$name.json" \
    orders --users 10000 --products 1000 --concurrency 64 --duration 30 > "$OUT/$name.txt"
  kill $pid; wait $pid 2>/dev/null || true
  grep -E "req/s" "$OUT/$name.txt" | sed "s/^/$name: /"
  grep -E "^\[FAIL" "$OUT/$name.txt" && exit 1 || true
}

for round in 1 2 3; do
  orders "old-$round" "$OLD"
  orders "new-$round" "$NEW"
  psql -q -h 127.0.0.1 -U postgres -d "cmp_new_$round" -c "ANALYZE"
  pgbench -n -M prepared -c 64 -j 2 -T 30 -f "$OUT/orders.sql" -h 127.0.0.1 -U postgres "cmp_new_$round" > "$OUT/pgbench-$round.txt" 2>&1
  grep -E "^tps" "$OUT/pgbench-$round.txt" | sed "s/^/pgbench-$round: /"
done
