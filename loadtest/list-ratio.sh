#!/usr/bin/env bash
# The list-throughput ratio alone, side by side in one run: `GET /v1/people?limit=50` of
# one tenant through the API (and, optionally, through a second API binary — the base of a
# change), and through the minimal server (poem + tokio-postgres, the same SQL, no auth,
# no limits), in interleaved rounds so that other load on the machine weighs on all alike.
# It prints each server's median req/s and the median of the per-round ratios to the
# minimal server — the figure `loadtest/REPORT.md` calls "API list throughput".
#
#   cargo build --release -p api -p loadtest
#   TENANTRY_BIN=target/release/tenantry BASE_BIN=/path/to/old/tenantry \
#     bash loadtest/list-ratio.sh
#
# Knobs: ROUNDS (5), RDUR (5s), C (16), PEOPLE (2000), POOL (10), BENCH_DB
# (tenantry_ratio), LOADTEST_BIN (next to TENANTRY_BIN), MIN_PRELOAD (libmimalloc, as in
# bench.sh). Needs PostgreSQL at $PGHOST:$PGPORT as a superuser, psql, curl.
# Loopback only; every run ends by itself (--duration, --max-requests).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
ROUNDS=${ROUNDS:-5}
RDUR=${RDUR:-5s}
C=${C:-16}
PEOPLE=${PEOPLE:-2000}
POOL=${POOL:-10}
BENCH_DB=${BENCH_DB:-tenantry_ratio}
T=${TENANTRY_BIN:?set TENANTRY_BIN to a release tenantry binary}
L=${LOADTEST_BIN:-$(dirname "$T")/loadtest}
BASE=${BASE_BIN:-}
MIN_PRELOAD=${MIN_PRELOAD-$(ls /usr/lib/*/libmimalloc.so.2 2>/dev/null | head -1 || true)}
PG_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$BENCH_DB"
WORK=$(mktemp -d /tmp/tenantry-ratio.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

ENV=(DATABASE_URL="$PG_URL" TENANTRY_DATA_DIR="$WORK" TENANTRY_DEMO=false TENANTRY_LOG=warn
  TENANTRY_DB_MAX_CONNECTIONS="$POOL" TENANTRY_RATE_LIMIT_TENANT_QUOTA=1000000000
  TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA=1000000000)
wait_healthy() {
  for _ in $(seq 1 120); do
    curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "server at $1 did not become healthy" >&2
  return 1
}
start() { # start NAME PORT COMMAND...
  local name=$1 port=$2
  shift 2
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  wait_healthy "http://127.0.0.1:$port"
}

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" -c "CREATE DATABASE $BENCH_DB"
env "${ENV[@]}" "$T" migrate
env "${ENV[@]}" "$T" seed --tenants 1 --people "$PEOPLE" 2>"$WORK/seed.log"
SLUG=$(psql -X -Atc "SELECT slug FROM tenants ORDER BY created_at LIMIT 1" -d "$BENCH_DB")

start api 18180 env "${ENV[@]}" TENANTRY_BIND=127.0.0.1:18180 "$T" serve
[ -n "$BASE" ] && start base 18181 env "${ENV[@]}" TENANTRY_BIND=127.0.0.1:18181 "$BASE" serve
start minimal 18190 env ${MIN_PRELOAD:+LD_PRELOAD=$MIN_PRELOAD} "$L" minimal-server \
  --database-url "$PG_URL" --bind 127.0.0.1:18190 --mode plain --pool "$POOL" --max-seconds 900

rate() { # rate PORT LABEL -> req/s
  env "${ENV[@]}" "$L" run --base-url "http://127.0.0.1:$1" --tenantry-bin "$T" list \
    --tenants "$SLUG" --concurrency "$C" --duration "$RDUR" --max-requests 2000000 \
    --label "$2" --json "$WORK/$2.json" >/dev/null 2>&1
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['throughput_rps'])" "$WORK/$2.json"
}

printf 'round  api_rps  base_rps  minimal_rps  api/minimal  base/minimal\n'
for r in $(seq 1 "$ROUNDS"); do
  a=$(rate 18180 "api-r$r")
  b=$([ -n "$BASE" ] && rate 18181 "base-r$r" || echo 0)
  m=$(rate 18190 "minimal-r$r")
  printf '%s %s %s %s %s %s\n' "$r" "$a" "$b" "$m" \
    "$(python3 -c "print(round($a/$m, 3))")" "$(python3 -c "print(round($b/$m, 3))")"
done | tee "$WORK/rounds.txt"
python3 - "$WORK/rounds.txt" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
col = lambda i: statistics.median(float(r[i]) for r in rows)
print(f"median: api {col(1):.0f} req/s, base {col(2):.0f} req/s, minimal {col(3):.0f} req/s; "
      f"api/minimal {col(4):.3f}, base/minimal {col(5):.3f}")
PY
