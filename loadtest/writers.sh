#!/usr/bin/env bash
# The order writer's sizing, side by side in one run, alternating, ROUNDS rounds: for each set-up
# (a binary and its settings) a fresh database, a server, a warm-up and ANALYZE, then
#   1. orders flat out (CONCURRENCY clients, RUN_SECS s): orders/s, p50/p99, server and PostgreSQL
#      CPU per order, batches (mean size) and their lock waits (mean, from the server's
#      commerce_batch_lock_wait_seconds), pg_stat_activity's lock waits sampled every 0.25 s;
#   2. orders at a fixed RATE/s: the same CPU per order;
#   3. a hot product (one product, HOT_STOCK units, HOT_CLIENTS clients): orders/s, exact.
# Load generator threads and clients follow the machine (nproc) unless set.
# Usage: bash loadtest/writers.sh [rounds] [out-dir]
#   SETUPS="before:/path/to/old/commerce: now: now-2:ORDER_WRITERS=2 ..." (name:binary:settings;
#   an empty binary is this checkout's release build; settings are space-free, comma-separated).
#   BIN_DIR=/dir: take commerce and loadtest from there and build nothing (a machine without
#   cargo, e.g. one started from ../shared/portable: it needs psql, pgrep and awk, no bc).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
OUT=${2:-bench-results/writers}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
CORES=$(nproc)
CONCURRENCY=${CONCURRENCY:-$((CORES * 32))}
RUN_SECS=${RUN_SECS:-20}
RATE=${RATE:-1000}
HOT_STOCK=${HOT_STOCK:-20000}
HOT_CLIENTS=${HOT_CLIENTS:-$((CORES * 32))}
SETUPS=${SETUPS:-"1-lane::ORDER_WRITERS=1 2-lanes::ORDER_WRITERS=2 4-lanes::ORDER_WRITERS=4"}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

if [ -z "${BIN_DIR:-}" ]; then cargo build --release -q -p commerce -p loadtest; fi
BIN_DIR=${BIN_DIR:-./target/release}
LT=$BIN_DIR/loadtest
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

# CPU seconds (user + system) of the processes named $1 (postgres) or of pid $1, summed
cpu_of() {
  local pids
  if [[ $1 =~ ^[0-9]+$ ]]; then pids=$1; else pids=$(pgrep -d ' ' -x "$1" || true); fi
  local ticks=0
  for pid in $pids; do
    [ -r "/proc/$pid/stat" ] || continue
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  calc "$ticks / $(getconf CLK_TCK)"
}
metric() { # name{labels}: the value in the server's /metrics (0 when absent)
  curl -fsS http://127.0.0.1:8400/metrics | awk -v s="$1" '$1 == s {print $2; found=1} END {if (!found) print 0}'
}
count_of() { grep -E "^requests:" "$1" | awk '{print $2}'; }
# measure NAME PID ARGS...: one loadtest run; the CPU of the server and of PostgreSQL, the batches
# and their lock waits are taken over its measured phase only (from its "run:" line, RUN_SECS s;
# the set-up before and the SQL checks after are left out)
measure() {
  local name=$1 pid=$2
  shift 2
  "$LT" --url http://127.0.0.1:8400 --database-url "$PG/$DBNAME" --out "$OUT/$name.json" "$@" > "$OUT/$name.txt" &
  local load=$!
  until grep -q "^run:" "$OUT/$name.txt" 2>/dev/null; do sleep 0.05; done
  local s0 p0 b0 w0 n0 s1 p1 b1 w1 n1
  s0=$(cpu_of "$pid"); p0=$(cpu_of postgres)
  b0=$(metric 'commerce_batch_lock_wait_seconds_count{writer="orders"}')
  w0=$(metric 'commerce_batch_lock_wait_seconds_sum{writer="orders"}')
  n0=$(metric 'commerce_batch_size_sum{writer="orders"}')
  for _ in $(seq 1 $((RUN_SECS * 4))); do
    kill -0 $load 2>/dev/null || break
    psql -At -h 127.0.0.1 -U postgres -d postgres -c "SELECT coalesce(wait_event_type,'cpu')||':'||coalesce(wait_event,'-') FROM pg_stat_activity WHERE datname = '$DBNAME' AND state = 'active' AND pid <> pg_backend_pid()" 2>/dev/null
    sleep 0.25
  done > "$OUT/$name.waits"
  s1=$(cpu_of "$pid"); p1=$(cpu_of postgres)
  b1=$(metric 'commerce_batch_lock_wait_seconds_count{writer="orders"}')
  w1=$(metric 'commerce_batch_lock_wait_seconds_sum{writer="orders"}')
  n1=$(metric 'commerce_batch_size_sum{writer="orders"}')
  wait $load
  local line lat waits orders cpu=""
  line=$(grep -E "^requests:" "$OUT/$name.txt" | sed "s/.*= //")
  lat=$(grep -E "^latency" "$OUT/$name.txt" | sed 's/latency: //')
  waits=$(sort "$OUT/$name.waits" | uniq -c | sort -rn | { grep -i lock || true; } | head -3 | awk '{printf "%s %s; ", $2, $1}')
  orders=$(calc "$n1 - $n0")
  if awk "BEGIN { exit !($orders > 0) }"; then
    cpu="server $(calc "($s1 - $s0) * 1000 / $orders") ms/order, postgres $(calc "($p1 - $p0) * 1000 / $orders") ms/order"
  fi
  echo "$name: $line | $lat | $cpu | batches $(calc "$b1 - $b0"), mean size $(calc "$orders / ($b1 - $b0 + 0.0001)"), lock wait mean $(calc "($w1 - $w0) * 1000 / ($b1 - $b0 + 0.0001)") ms | pg lock samples: ${waits:-none}"
  if grep -E "^\[FAIL" "$OUT/$name.txt"; then exit 1; fi
}

for round in $(seq 1 "$ROUNDS"); do
  for setup in $SETUPS; do
    IFS=: read -r name bin settings <<< "$setup"
    bin=${bin:-$BIN_DIR/commerce}
    DBNAME=writers_${name//-/_}
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" -c "CREATE DATABASE $DBNAME"
    if command -v redis-cli >/dev/null; then
      redis-cli -h 127.0.0.1 --scan --pattern "$DBNAME-*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
    fi
    # the writers are measured, not the rate limits: the hot product's 64 buyers each order
    # ~130/s, past the per-user default (50/s, burst 200)
    env RATE_LIMIT_USER_PER_SEC=0 ${settings//,/ } DATABASE_URL="$PG/$DBNAME" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$DBNAME-$round:" RUST_LOG=warn \
      "$bin" serve --bind 127.0.0.1:8400 > "$OUT/$name-$round-server.log" 2>&1 &
    pid=$!
    until curl -fsS http://127.0.0.1:8400/healthz >/dev/null 2>&1; do sleep 0.2; done
    "$LT" --url http://127.0.0.1:8400 --database-url "$PG/$DBNAME" orders --users 2000 --products 200 --rate 500 --duration 5 > "$OUT/$name-$round-warm-up.txt"
    psql -q -h 127.0.0.1 -U postgres -d "$DBNAME" -c "ANALYZE"
    measure "$name-$round-flat" "$pid" orders --users 10000 --products 1000 --concurrency "$CONCURRENCY" --duration "$RUN_SECS"
    measure "$name-$round-rate" "$pid" orders --users 10000 --products 1000 --rate "$RATE" --duration "$RUN_SECS"
    measure "$name-$round-hot" "$pid" hot-product --stock "$HOT_STOCK" --clients "$HOT_CLIENTS"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
