#!/usr/bin/env bash
# Reads beside orders flat out, side by side: for each value of ORDER_WRITER_NICE in NICES
# (alternated, ROUNDS rounds) a fresh database and server, a warm-up and ANALYZE, then orders
# flat out (CONCURRENCY clients, 45 s) with `product(id)` and `me { balance }` at RATE/s each for
# 25 s inside them; prints each load's throughput, latency and outcomes, and the writers' nice.
# Usage: bash loadtest/reads-beside-orders.sh [rounds] [out-dir]    (NICES="0 10" by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
OUT=${2:-bench-results/reads-beside-orders}
NICES=${NICES:-"0 10"}
RATE=${RATE:-1000}
CONCURRENCY=${CONCURRENCY:-$(($(nproc) * 32))}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=reads_beside_orders
mkdir -p "$OUT"
cargo build --release -q -p commerce -p loadtest
LT=./target/release/loadtest

for round in $(seq 1 "$ROUNDS"); do
  for nice in $NICES; do
    tag=nice$nice-$round
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" 2>/dev/null
    ORDER_WRITER_NICE=$nice DATABASE_URL=$PG/$DB REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$DB$tag: RUST_LOG=warn \
      ./target/release/commerce serve --bind 127.0.0.1:8400 > "$OUT/$tag-server.log" 2>&1 &
    pid=$!
    until curl -fsS http://127.0.0.1:8400/healthz >/dev/null 2>&1; do sleep 0.2; done
    $LT --url http://127.0.0.1:8400 orders --users 2000 --products 200 --rate 500 --duration 5 > /dev/null
    psql -q -h 127.0.0.1 -U postgres -d $DB -c ANALYZE
    for tid in $(ls "/proc/$pid/task"); do
      comm=$(cat "/proc/$pid/task/$tid/comm")
      [[ $comm == *writer* ]] && echo "$tag: $comm runs at nice $(awk '{print $19}' "/proc/$pid/task/$tid/stat")"
    done
    $LT --url http://127.0.0.1:8400 --database-url "$PG/$DB" orders --users 10000 --products 1000 --concurrency "$CONCURRENCY" --duration 45 > "$OUT/$tag-orders.txt" &
    orders=$!
    until grep -q "^run:" "$OUT/$tag-orders.txt" 2>/dev/null; do sleep 0.2; done
    sleep 3
    $LT --url http://127.0.0.1:8400 reads --query product --rate "$RATE" --duration 25 > "$OUT/$tag-product.txt" &
    product=$!
    $LT --url http://127.0.0.1:8400 reads --query balance --rate "$RATE" --duration 25 > "$OUT/$tag-balance.txt"
    wait $product
    wait $orders
    kill $pid; wait $pid 2>/dev/null || true
    for load in orders product balance; do
      f=$OUT/$tag-$load.txt
      echo "$tag $load: $(grep -E '^requests' "$f" | sed 's/requests: //') | $(grep -E '^latency' "$f" | sed 's/latency: //') | $(grep -E '^outcomes' "$f")"
      if grep -E "^\[FAIL" "$f"; then exit 1; fi
    done
  done
done
