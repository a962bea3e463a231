#!/usr/bin/env bash
# Runs every benchmark scenario of BENCHMARKS.md against a release server on PostgreSQL + Redis on
# this machine, into bench-results/ (JSON, SVG charts, server log), then the pgbench comparison.
# Usage: bash loadtest/bench.sh [scenario ...]   (default: all)
# Scenarios: orders hot-product coupon-storm reads mixed subscribers pgbench
# The load follows the machine (nproc): CONCURRENCY clients flat out (32 per core), HOT_CLIENTS
# on the hot product (100 per core), pgbench with one thread per core; set them to pin.
# The server runs with its defaults (sized by the machine too); SERVER_SETTINGS="A=1 B=2" adds some.
set -euo pipefail
cd "$(dirname "$0")/.."
CORES=$(nproc)
CONCURRENCY=${CONCURRENCY:-$((CORES * 32))}
HOT_CLIENTS=${HOT_CLIENTS:-$((CORES * 100))}
SERVER_SETTINGS=${SERVER_SETTINGS:-}

PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB_NAME=${DB_NAME:-bench}
DB=$PG/$DB_NAME
OUT=bench-results
mkdir -p "$OUT"

cargo build --release -q -p commerce -p loadtest
LT=./target/release/loadtest

psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
redis-cli -h 127.0.0.1 --scan --pattern 'bench:*' | xargs -r redis-cli -h 127.0.0.1 del >/dev/null

env $SERVER_SETTINGS DATABASE_URL=$DB REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=bench: RUST_LOG=warn \
  ./target/release/commerce serve --bind 127.0.0.1:8000 > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
until curl -fsS http://127.0.0.1:8000/healthz >/dev/null 2>&1; do sleep 0.2; done

run() { echo "== $1"; shift; "$@"; }

# warm-up: fill the tables and the server's caches, then give the planner statistics
$LT --database-url "$DB" --out "$OUT/warm-up.json" orders --users 2000 --products 200 --rate 500 --duration 10 > "$OUT/warm-up.txt"
psql -q -h 127.0.0.1 -U postgres -d "$DB_NAME" -c "ANALYZE"
SCENARIOS=("$@")
want_all=$([ ${#SCENARIOS[@]} -eq 0 ] && echo 1 || echo 0)
pick() { [ "$want_all" = 1 ] || [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }

if pick orders; then
  run "orders flat out" $LT --database-url "$DB" --out "$OUT/orders-closed.json" orders --users 10000 --products 1000 --concurrency $CONCURRENCY --duration 30 --chart "$OUT/orders-closed.svg"
  run "orders at 1000/s" $LT --database-url "$DB" --out "$OUT/orders-open.json" orders --users 10000 --products 1000 --rate 1000 --duration 60 --chart "$OUT/orders-open.svg"
  run "orders at 2000/s" $LT --database-url "$DB" --out "$OUT/orders-open-2000.json" orders --users 10000 --products 1000 --rate 2000 --duration 60 --chart "$OUT/orders-open-2000.svg"
fi
if pick hot-product; then
  run "hot product" $LT --database-url "$DB" --out "$OUT/hot-product.json" hot-product --stock 5000 --clients $HOT_CLIENTS
fi
if pick coupon-storm; then
  run "coupon storm 1000 -> 1" $LT --database-url "$DB" --out "$OUT/storm-1000-1.json" coupon-storm --users 1000 --coupons 1 --chart "$OUT/storm-1000-1.svg"
  run "coupon storm 10000 -> 1000" $LT --database-url "$DB" --out "$OUT/storm-10000-1000.json" coupon-storm --users 10000 --coupons 1000 --chart "$OUT/storm-10000-1000.svg"
fi
if pick reads; then
  for q in product products balance top-sellers; do
    run "reads $q" $LT --database-url "$DB" --out "$OUT/reads-$q.json" reads --query "$q" --concurrency $CONCURRENCY --duration 30
  done
  run "top sellers at 10000/s" $LT --database-url "$DB" --out "$OUT/reads-top-sellers-10k.json" reads --query top-sellers --rate 10000 --duration 30
fi
if pick mixed; then
  # product and balance reads, 1,000/s each, while orders run at MIXED_ORDER_RATE/s (500; three
  # load processes; the reads start once the orders' set-up is done and run inside their 70 s)
  $LT --database-url "$DB" --out "$OUT/mixed-orders.json" orders --users 10000 --products 1000 --rate "${MIXED_ORDER_RATE:-500}" --duration 70 > "$OUT/mixed-orders.txt" &
  ORDERS_PID=$!
  until grep -q "^run:" "$OUT/mixed-orders.txt" 2>/dev/null; do sleep 0.5; done
  sleep 5
  $LT --out "$OUT/mixed-product.json" reads --query product --rate 1000 --duration 30 > "$OUT/mixed-product.txt" &
  PRODUCT_PID=$!
  run "balance while ordering" $LT --out "$OUT/mixed-balance.json" reads --query balance --rate 1000 --duration 30
  wait $PRODUCT_PID
  run "product while ordering" cat "$OUT/mixed-product.txt"
  wait $ORDERS_PID
  run "the orders meanwhile" cat "$OUT/mixed-orders.txt"
fi
if pick subscribers; then
  run "10000 subscribers" $LT --database-url "$DB" --out "$OUT/subscribers.json" subscribers --clients 10000 --server-pid "$SERVER_PID"
fi
if pick pgbench; then
  # three back-to-back pairs: the server flat out, then the same transaction in plain SQL
  $LT pgbench-script --first-user-id 1 --users 10000 --first-product-id 1 --products 1000 > "$OUT/orders.sql"
  for i in 1 2 3; do
    run "pair $i: orders" $LT --database-url "$DB" --out "$OUT/pair-$i-orders.json" orders --users 10000 --products 1000 --concurrency $CONCURRENCY --duration 30
    run "pair $i: pgbench" pgbench -n -M prepared -c $CONCURRENCY -j $CORES -T 30 -f "$OUT/orders.sql" -h 127.0.0.1 -U postgres "$DB_NAME" | tee "$OUT/pair-$i-pgbench.txt"
  done
  psql -q -h 127.0.0.1 -U postgres -d "$DB_NAME" -c "ANALYZE"
  run "pgbench at the server's pool size" pgbench -n -M prepared -c 10 -j $CORES -T 30 -f "$OUT/orders.sql" -h 127.0.0.1 -U postgres "$DB_NAME" | tee "$OUT/pgbench-c10.txt"
fi

# what the batch writers saw over the whole run
curl -fsS http://127.0.0.1:8000/metrics | grep -E '^commerce_batch_size' | tee "$OUT/batch-sizes.txt"
