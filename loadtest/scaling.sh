#!/usr/bin/env bash
# The figures of README "Scaling", side by side in one run, alternating, ROUNDS rounds:
#  1. nginx (least_conn, as deploy/nginx.conf) in front of one server or of two, all on the shared
#     PostgreSQL + Redis: orders flat out, then `products(first: 20)` flat out;
#  2. one server on one Redis vs on a Redis Cluster of three masters (private, ports 7101-7103):
#     a coupon storm, top-sellers reads (the ranking cache) and orders, flat out;
#  3. one server on a private PostgreSQL primary, without and with a streaming standby of it
#     (`pg_basebackup -R`) in DATABASE_READ_URL: catalog reads flat out, then `product(id)` at a
#     fixed 1,000/s beside orders at 500/s; per run, the CPU time the primary and the standby
#     spent, where the server's reads ran, and the replica lag it saw (sampled every 0.5 s).
# Usage: bash loadtest/scaling.sh [rounds] [out-dir]     (needs nginx; run as root or as postgres)
#   PARTS="instances cluster replica" (the default) picks the parts; RUN_SECS=30 is a run's length.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
OUT=${2:-bench-results/scaling}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${REDIS:-redis://127.0.0.1:6379}
PRIMARY_PORT=5460 REPLICA_PORT=5461
PARTS=${PARTS:-instances cluster replica}
RUN_SECS=${RUN_SECS:-30}
PG_BIN=$(pg_config --bindir)
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
PG_DIR=$OUT/pg

cargo build --release -q -p commerce -p loadtest
LT=./target/release/loadtest
BIN=./target/release/commerce

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
SERVERS=()
cluster_stop() { for port in 7101 7102 7103; do redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; done; }
cleanup() {
  cluster_stop
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$OUT/nginx.pid" ] && nginx -p "$OUT" -c "$OUT/nginx.conf" -s stop 2>/dev/null || true
  for node in primary replica; do
    [ -d "$PG_DIR/$node" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/$node" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

# serve PORT DATABASE_URL [DATABASE_READ_URL]: a release server in the background
serve() {
  local settings=(DATABASE_URL="$2" REDIS_URL="$REDIS" REDIS_KEY_PREFIX=scale: RUST_LOG=warn)
  [ -n "${3:-}" ] && settings+=(DATABASE_READ_URL="$3")
  env "${settings[@]}" "$BIN" serve --bind "127.0.0.1:$1" >> "$OUT/server-$1.log" 2>&1 &
  SERVERS+=($!)
  until curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; do sleep 0.2; done
}
stop_servers() {
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  SERVERS=()
}
fresh_database() { # name
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
  redis-cli -h 127.0.0.1 --scan --pattern 'scale:*' | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
}
# load NAME URL ARGS...: one loadtest run, its summary printed; fails the script on a failed check
load() {
  local name=$1 url=$2
  shift 2
  "$LT" --url "$url" --out "$OUT/$name.json" "$@" > "$OUT/$name.txt"
  grep -E "req/s|^latency" "$OUT/$name.txt" | sed "s/^/$name: /"
  if grep -E "^\[FAIL" "$OUT/$name.txt"; then exit 1; fi
}

# ---- 1. one server vs two behind nginx -----------------------------------------------------
if [[ " $PARTS " == *" instances "* ]]; then
fresh_database scale
DB=$PG/scale
cat > "$OUT/nginx.conf" <<EOF
worker_processes 2;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream one { least_conn; server 127.0.0.1:8401; keepalive 64; }
  upstream two { least_conn; server 127.0.0.1:8401; server 127.0.0.1:8402; keepalive 64; }
  server { listen 127.0.0.1:8410;
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:8411;
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
nginx -p "$OUT" -c "$OUT/nginx.conf"
serve 8401 "$DB"
serve 8402 "$DB"
ONE=http://127.0.0.1:8410 TWO=http://127.0.0.1:8411
# warm-up through both, then planner statistics
load warm-up "$TWO" --database-url "$DB" orders --users 2000 --products 200 --rate 500 --duration 10
psql -q -h 127.0.0.1 -U postgres -d scale -c "ANALYZE"
for round in $(seq "$ROUNDS"); do
  for setup in one two; do
    url=$([ $setup = one ] && echo "$ONE" || echo "$TWO")
    load "$setup-orders-$round" "$url" --database-url "$DB" \
      orders --users 10000 --products 1000 --concurrency 64 --duration $RUN_SECS
    load "$setup-products-$round" "$url" --database-url "$DB" \
      reads --query products --concurrency 64 --duration $RUN_SECS
  done
done
for port in 8401 8402; do
  echo "server :$port batches: $(curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^commerce_batch_size_(sum|count)' | tr '\n' ' ')"
done
stop_servers
fi

# ---- 2. one Redis vs a Redis Cluster of three masters ----------------------------------------
if [[ " $PARTS " == *" cluster "* ]]; then
CLUSTER_DIR=$OUT/cluster
rm -rf "$CLUSTER_DIR"; mkdir -p "$CLUSTER_DIR"
for port in 7101 7102 7103; do
  redis-server --port $port --cluster-enabled yes --cluster-config-file "$CLUSTER_DIR/$port.conf" \
    --save "" --appendonly no --daemonize yes --logfile "$CLUSTER_DIR/$port.log" --dir "$CLUSTER_DIR"
done
sleep 0.5
redis-cli --cluster create 127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103 --cluster-replicas 0 --cluster-yes >/dev/null
until redis-cli -p 7101 cluster info | grep -q cluster_state:ok; do sleep 0.2; done
for round in $(seq "$ROUNDS"); do
  for setup in one-redis cluster; do
    fresh_database scale
    DB=$PG/scale
    if [ $setup = cluster ]; then
      REDIS=redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 serve 8430 "$DB"
    else
      serve 8430 "$DB"
    fi
    load "$setup-coupons-$round" http://127.0.0.1:8430 --database-url "$DB" \
      coupon-storm --users 2000 --coupons 100
    load "$setup-top-sellers-$round" http://127.0.0.1:8430 reads --query top-sellers --concurrency 64 --duration $RUN_SECS
    load "$setup-orders-$round" http://127.0.0.1:8430 --database-url "$DB" \
      orders --users 10000 --products 1000 --concurrency 64 --duration $RUN_SECS
    stop_servers
  done
done
cluster_stop
fi

# ---- 3. reads without and with a streaming replica ------------------------------------------
[[ " $PARTS " == *" replica "* ]] || exit 0
rm -rf "$PG_DIR"
mkdir -p "$PG_DIR"
chown postgres "$PG_DIR" 2>/dev/null || true
pg_start() { # node port
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/$1" -l "$PG_DIR/$1.log" -w \
    -o "-p $2 -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null
}
as_postgres "$PG_BIN/initdb" -D "$PG_DIR/primary" -A trust -U postgres >/dev/null
pg_start primary $PRIMARY_PORT
as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -D "$PG_DIR/replica" \
  -R -X stream --checkpoint=fast
pg_start replica $REPLICA_PORT
psql -q -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -c "CREATE DATABASE scale"
PRIMARY=postgres://postgres@127.0.0.1:$PRIMARY_PORT/scale
REPLICA=postgres://postgres@127.0.0.1:$REPLICA_PORT/scale

# CPU seconds a cluster has used so far: its postmaster, its live processes and the reaped ones
cpu_seconds() { # node
  local pid ticks=0
  pid=$(head -1 "$PG_DIR/$1/postmaster.pid")
  ticks=$(awk '{print $14+$15+$16+$17}' "/proc/$pid/stat")
  for child in $(pgrep -P "$pid"); do
    ticks=$((ticks + $(awk '{print $14+$15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "scale=1; $ticks / $(getconf CLK_TCK)" | bc
}
reads_on() { # target
  curl -fsS http://127.0.0.1:8420/metrics | awk -v t="target=\"$1\"" 'index($0, t) && /^commerce_db_reads_total/ {print $2}'
}
# measure NAME ARGS...: a load run with the CPU both clusters spent and where the reads ran
measure() {
  local name=$1 primary_cpu replica_cpu on_primary on_replica sampler
  shift
  primary_cpu=$(cpu_seconds primary) replica_cpu=$(cpu_seconds replica)
  on_primary=$(reads_on primary) on_replica=$(reads_on replica)
  (while sleep 0.5; do
     curl -fsS http://127.0.0.1:8420/metrics | awk '/^commerce_replica_lag_seconds/ {print $2}'
   done) > "$OUT/$name-lag.txt" &
  sampler=$!
  "$@"
  kill $sampler; wait $sampler 2>/dev/null || true
  echo "$name: primary CPU $(echo "$(cpu_seconds primary) - $primary_cpu" | bc) s," \
    "replica CPU $(echo "$(cpu_seconds replica) - $replica_cpu" | bc) s," \
    "reads on primary $(($(reads_on primary) - on_primary)), on replica $(($(reads_on replica) - on_replica))," \
    "lag $(sort -g "$OUT/$name-lag.txt" | awk '{v[NR]=$1} END {if (NR) printf "p50 %.3f s, max %.3f s", v[int((NR+1)/2)], v[NR]; else print "not sampled"}')"
}
mixed() { # name: product(id) at 1,000/s while orders run at 500/s
  "$LT" --url http://127.0.0.1:8420 --database-url "$PRIMARY" --out "$OUT/$1-orders.json" \
    orders --users 10000 --products 1000 --rate 500 --duration $((RUN_SECS + 20)) > "$OUT/$1-orders.txt" &
  local orders=$!
  until grep -q "^run:" "$OUT/$1-orders.txt" 2>/dev/null; do sleep 0.5; done
  sleep 5
  load "$1" http://127.0.0.1:8420 reads --query product --rate 1000 --duration $RUN_SECS
  wait $orders
  grep -E "req/s|^latency" "$OUT/$1-orders.txt" | sed "s/^/$1 (its orders): /"
  if grep -E "^\[FAIL" "$OUT/$1-orders.txt"; then exit 1; fi
}

for round in $(seq "$ROUNDS"); do
  for setup in primary replica; do
    serve 8420 "$PRIMARY" "$([ $setup = replica ] && echo "$REPLICA" || true)"
    if [ "$round" = 1 ] && [ $setup = primary ]; then
      load replica-warm-up http://127.0.0.1:8420 --database-url "$PRIMARY" \
        orders --users 2000 --products 200 --rate 500 --duration 10
      psql -q -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -d scale -c "ANALYZE"
    fi
    measure "$setup-products-$round" load "$setup-products-$round" http://127.0.0.1:8420 --database-url "$PRIMARY" \
      reads --query products --concurrency 64 --duration $RUN_SECS
    measure "$setup-product-$round" load "$setup-product-$round" http://127.0.0.1:8420 --database-url "$PRIMARY" \
      reads --query product --concurrency 64 --duration $RUN_SECS
    measure "$setup-mixed-$round" mixed "$setup-mixed-$round"
    stop_servers
  done
done
