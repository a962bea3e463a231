#!/usr/bin/env bash
# The fixed-rate tail (BENCHMARKS.md): one writer, two writers, and synchronous_commit off as a
# diagnostic, twice, on a fresh database. Usage: bash loadtest/tail.sh
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
cargo build --release -q -p commerce -p loadtest
DBN=bench_tail; DB=postgres://postgres@127.0.0.1:5432/$DBN; LT=./target/release/loadtest
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DBN WITH (FORCE)" -c "CREATE DATABASE $DBN"
redis-cli -h 127.0.0.1 --scan --pattern 'tail:*' | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
start() { DATABASE_URL=$DB REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=tail: RUST_LOG=warn "$@" ./target/release/commerce serve --bind 127.0.0.1:8100 > bench-results/tail-server.log 2>&1 & PID=$!; until curl -fsS http://127.0.0.1:8100/healthz >/dev/null 2>&1; do sleep 0.2; done; }
stop() { kill $PID; wait $PID 2>/dev/null; }
start env
$LT --url http://127.0.0.1:8100 --database-url "$DB" orders --users 2000 --products 200 --rate 500 --duration 10 > bench-results/tail-warm.txt
psql -q -h 127.0.0.1 -U postgres -d $DBN -c "ANALYZE"
for round in 1 2; do
  echo "== round $round: one writer"; $LT --url http://127.0.0.1:8100 --database-url "$DB" --out bench-results/tail-one-$round.json orders --users 10000 --products 1000 --rate 1000 --duration 30 | grep -E "^(run|latency|orders|errors|p)" ; stop
  echo "== round $round: two writers"; start env ORDER_WRITERS=2; $LT --url http://127.0.0.1:8100 --database-url "$DB" --out bench-results/tail-two-$round.json orders --users 10000 --products 1000 --rate 1000 --duration 30 | grep -E "^(run|latency|orders|errors|p)"; stop
  psql -q -h 127.0.0.1 -U postgres -c "ALTER DATABASE $DBN SET synchronous_commit = off"
  echo "== round $round: one writer, synchronous_commit off (diagnostic only)"; start env; $LT --url http://127.0.0.1:8100 --database-url "$DB" --out bench-results/tail-async-$round.json orders --users 10000 --products 1000 --rate 1000 --duration 30 | grep -E "^(run|latency|orders|errors|p)"; stop
  psql -q -h 127.0.0.1 -U postgres -c "ALTER DATABASE $DBN RESET synchronous_commit"
  start env
done
stop
