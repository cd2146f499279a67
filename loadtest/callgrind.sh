#!/usr/bin/env bash
# Instructions per request of one endpoint, counted by callgrind: repeatable on a busy
# machine, where wall-clock numbers are not. Used for the list-throughput work in
# REPORT.md (GET /v1/people?limit=50: 2.40M -> 1.35M instructions per request).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/tenantry_bench TOKEN=$(tenantry token --tenant SLUG) \
#     bash loadtest/callgrind.sh                       # default: /v1/people?limit=50, 300 requests
#   URL='/v1/people/<id>' N=500 bash loadtest/callgrind.sh
#
# Needs valgrind (callgrind_control, callgrind_annotate) and curl; the server runs with the
# caller's environment (DATABASE_URL, TENANTRY_DATA_DIR, …), logs at warn, and quotas too
# large to throttle.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tenantry}
URL=${URL:-/v1/people?limit=50}
N=${N:-300}
PORT=${PORT:-18480}
: "${TOKEN:?set TOKEN to a bearer token of the tenant to read}"
OUT=$(mktemp -d /tmp/tenantry-callgrind.XXXXXX)

TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_LOG=warn TENANTRY_DEMO=false \
  TENANTRY_RATE_LIMIT_TENANT_QUOTA=1000000000 TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA=1000000000 \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$BIN" serve >"$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 1; done
get() { curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$URL"; }
for _ in $(seq 20); do get; done # warm-up: connections, caches, lazy statics
callgrind_control -z "$PID" >/dev/null
for _ in $(seq "$N"); do get; done
callgrind_control -d "$PID" >/dev/null
DUMP=$(ls -t "$OUT"/cg.out.* | head -1)
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$URL: $((TOTAL / N)) instructions per request ($N requests; profile: $DUMP)"
