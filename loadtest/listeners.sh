#!/usr/bin/env bash
# Live ranking for many listeners (issue #33), side by side in one run: for each set-up (a
# server binary) and each number of listeners, a fresh database, a server (PostgreSQL + Redis),
# then `loadtest subscribers`: every listener subscribes to rankingChanged(days: 3, limit: 5) and
# holds its snapshot, one order makes a new product #1, and the tool times each listener's
# message from the order's answer. Prints per run: received, first / p50 / p99 / last (ms), the
# server's CPU from the trigger until the last delivery, its RSS per idle subscribed socket.
# The open-file limit is raised to the hard limit (each listener is one file in the server and
# one in the tool); listeners beyond what it leaves the server for WebSockets are not tried.
# Usage: bash loadtest/listeners.sh [rounds] [out-dir]
#   SETUPS="before:/path/to/old/commerce now:" (name:binary; empty: this checkout's release build)
#   LISTENERS="1000 10000"
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
OUT=${2:-bench-results/listeners}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SETUPS=${SETUPS:-"now:"}
LISTENERS=${LISTENERS:-"1000 10000"}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
if [ -z "${BIN_DIR:-}" ]; then cargo build --release -q -p commerce -p loadtest; fi
BIN_DIR=${BIN_DIR:-./target/release}
LT=$BIN_DIR/loadtest
ulimit -n "$(ulimit -Hn)"
LIMIT=$(ulimit -n)
sql() { PGOPTIONS="-c client_min_messages=warning" psql -qAt -h 127.0.0.1 -U postgres -d "$1" -c "$2"; }

run() { # name binary listeners
  local name=$1 bin=${2:-$BIN_DIR/commerce} listeners=$3 db=listeners_bench
  sql postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  sql postgres "CREATE DATABASE $db"
  redis-cli -h 127.0.0.1 --scan --pattern "$db:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
  DATABASE_URL=$PG/$db REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$db: RUST_LOG=warn \
    WS_MAX_CONNECTIONS=$((listeners + 100)) RATE_LIMIT_USER_PER_SEC=0 \
    "$bin" serve --bind 127.0.0.1:8600 > "$OUT/$name-$listeners-server.log" 2>&1 &
  local pid=$!
  until curl -fsS http://127.0.0.1:8600/healthz >/dev/null 2>&1; do sleep 0.2; done
  sql "$db" "ANALYZE"
  "$LT" --url http://127.0.0.1:8600 --database-url "$PG/$db" --out "$OUT/$name-$listeners.json" \
    subscribers --clients "$listeners" --server-pid "$pid" > "$OUT/$name-$listeners.txt" || true
  kill $pid; wait $pid 2>/dev/null || true
  jq -r --arg name "$name" '.results as $r | "\($name) \($r.clients): received \($r.received)/\($r.subscribed), subscribed in \($r.connect_secs | . * 10 | round / 10) s; from the answer: first \($r.first_ms | round) ms, p50 \($r.receive_latency_ms.p50 | round) ms, p99 \($r.receive_latency_ms.p99 | round) ms, last \($r.receive_latency_ms.max | round) ms; server CPU \($r.server_cpu_ms_for_update) ms; RSS \($r.server_rss_kb.subscribed / 1024 | round) MB (\($r.server_rss_kb_per_subscriber | . * 10 | round / 10) kB per listener)"' \
    "$OUT/$name-$listeners.json" | tee -a "$OUT/summary.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  for listeners in $LISTENERS; do
    # the server keeps 1,000 files for everything but WebSockets (src/infra/files.rs)
    if [ $((listeners + 1000)) -gt "$LIMIT" ]; then
      echo "skipping $listeners listeners: the open-file limit is $LIMIT" | tee -a "$OUT/summary.txt"
      continue
    fi
    for setup in $SETUPS; do
      run "${setup%%:*}" "${setup#*:}" "$listeners"
    done
  done
done
