#!/usr/bin/env bash
# Coupon storms on one or more server binaries, side by side: for each binary a fresh database,
# three 1,000 -> 1 storms, then one 10,000 -> 1,000; one summary line per storm.
# Usage: bash loadtest/storms.sh BINARY [BINARY ...]   (e.g. an old build, then the new one, twice)
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
OUT=bench-results/storms
mkdir -p "$OUT"
cargo build --release -q -p loadtest
LT=./target/release/loadtest
n=0
for bin in "$@"; do
  n=$((n + 1))
  db=storms_$n
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  redis-cli -h 127.0.0.1 --scan --pattern "$db:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
  DATABASE_URL=$PG/$db REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=$db: RUST_LOG=warn \
    "$bin" serve --bind 127.0.0.1:8500 > "$OUT/$n-server.log" 2>&1 &
  pid=$!
  until curl -fsS http://127.0.0.1:8500/healthz >/dev/null 2>&1; do sleep 0.2; done
  for storm in 1000:1 1000:1 1000:1 10000:1000; do
    users=${storm%:*} coupons=${storm#*:}
    out="$OUT/$n-$users-$coupons-$RANDOM.json"
    $LT --url http://127.0.0.1:8500 --database-url "$PG/$db" --out "$out" \
      coupon-storm --users "$users" --coupons "$coupons" > "$out.txt" || { cat "$out.txt"; exit 1; }
    python3 - "$out" "$bin" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["load"]["latency_ms"]; s = r["settings"]
print(f"{sys.argv[2]}: {s['users']} -> {s['coupons']}: mean {m['mean']:.0f} ms, p99 {m['p99']:.0f} ms, "
      f"all answered in {r['results']['last_answer_after_ms']:.0f} ms, checks "
      f"{'ok' if all(c['passed'] for c in r['checks']) else 'FAILED'}")
PY
  done
  kill $pid; wait $pid 2>/dev/null || true
done
