#!/usr/bin/env bash
# Reproduces loadtest/REPORT.md: builds, seeds a dedicated PostgreSQL database, runs the
# API, the minimal baseline server, pgbench and the SQLite embedded mode side by side,
# then the saturation sweep against an API with an admission limit (load shedding) and
# the rate-limit scenario against an API with small quotas, and composes the report.
#
#   bash loadtest/bench.sh            # ~15 minutes on 2 cores
#
# Needs: PostgreSQL reachable at $PGHOST:$PGPORT as $PGUSER (superuser: it creates the
# database $BENCH_DB and the role tenantry_rls), psql, pgbench, curl, jq, cargo; optional:
# libmimalloc2.0 (preloaded into the minimal server, see MIN_PRELOAD).
# Traffic goes to 127.0.0.1 only. Every run is capped in time and requests.
#
# Knobs (environment): DUR (per measured run, default 15s), C (concurrency of the
# comparisons, 16), BIG (people in the depth tenant, 1000000), SMALL_PEOPLE (2000),
# RESULTS (where raw results go, default loadtest/results), BENCH_DB (tenantry_bench),
# SKIP_BUILD=1 (use the release binaries already built; they are taken from
# $CARGO_TARGET_DIR/release, default target/release), DEPTH_PAGES (1,100,1000,10000: the
# deepest needs BIG >= 500000), SWEEP ("1 2 4 8 16 32 64 256") and SWEEP_DUR (4s),
# REPORT_OUT (loadtest/REPORT.md).
# Saturation server: MAX_IN_FLIGHT (32), MAX_QUEUED (64), QUEUE_TIMEOUT_MS (1000) — sized so
# that the sweep's concurrency 256 exceeds in-flight + queued and is shed, while 2x
# saturation is not. Rate-limit server: LIMIT_TENANT_QUOTA (600), LIMIT_CREDENTIAL_QUOTA
# (200), LIMIT_WINDOW_SECS (10), run for LIMIT_DUR (20s: two phases of 10 s) at LIMIT_C (8).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
BENCH_DB=${BENCH_DB:-tenantry_bench}
DUR=${DUR:-15s}
C=${C:-16}
BIG=${BIG:-1000000}
SMALL_TENANTS=${SMALL_TENANTS:-3}
SMALL_PEOPLE=${SMALL_PEOPLE:-2000}
RESULTS=${RESULTS:-$ROOT/loadtest/results}
API_PORT=${API_PORT:-18080}
LITE_PORT=${LITE_PORT:-18081}
MIN_PORT=${MIN_PORT:-18090}
POOL=${POOL:-10}
DEPTH_PAGES=${DEPTH_PAGES:-1,100,1000,10000}
SWEEP=${SWEEP:-1 2 4 8 16 32 64 256}
SWEEP_DUR=${SWEEP_DUR:-4s}
REPORT_OUT=${REPORT_OUT:-$ROOT/loadtest/REPORT.md}

WORK=$(mktemp -d /tmp/tenantry-bench.XXXXXX)
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
CMDS="$RESULTS/commands.txt"
: >"$CMDS"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '\n== %s\n' "$*" >&2; }
# Runs a command and records it (as typed, variables expanded) for the report.
run() {
  printf '%s\n' "$*" >>"$CMDS"
  "$@"
}
# Other work on the machine (builds, other benchmarks) skews every number here: note the
# load at the start of each measured run, and how many rustc processes were running.
LOADS="$RESULTS/load.md"
note_load() {
  printf '| %s | %s | %s |\n' "$1" "$(cut -d' ' -f1 /proc/loadavg)" "$(pgrep -c -x rustc || true)" >>"$LOADS"
}
label_of() {
  local prev=""
  for a in "$@"; do
    [ "$prev" = "--label" ] && { echo "$a"; return; }
    prev=$a
  done
  echo "?"
}
psql_bench() { psql -X -v ON_ERROR_STOP=1 -q -d "$BENCH_DB" "$@"; }
# Waits (bounded: 60 s) until $1/healthz answers.
wait_healthy() {
  for _ in $(seq 1 120); do
    curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "server at $1 did not become healthy" >&2
  return 1
}

if [ -z "${SKIP_BUILD:-}" ]; then
  log "build (release)"
  run cargo build --release -p api -p loadtest
fi
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
T="$BIN_DIR/tenantry"
L="$BIN_DIR/loadtest"
# The minimal server gets the allocator tenantry is built with (mimalloc), preloaded,
# when the library is installed; MIN_PRELOAD= (empty) runs it on the system allocator.
MIN_PRELOAD=${MIN_PRELOAD-$(ls /usr/lib/*/libmimalloc.so.2 2>/dev/null | head -1)}

PG_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$BENCH_DB"
# The API's environment (PostgreSQL, then SQLite).
# Rate limits stay on (the in-process limiter's cost is part of every request measured) with
# quotas far above what these runs send, so the runs measure the service, not the quota.
QUOTA=${QUOTA:-1000000000}
LIMITS=(TENANTRY_RATE_LIMIT_TENANT_QUOTA="$QUOTA" TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA="$QUOTA")
API_ENV=(DATABASE_URL="$PG_URL" TENANTRY_DATA_DIR="$WORK/pg" TENANTRY_DEMO=false
  TENANTRY_LOG=warn TENANTRY_BIND="127.0.0.1:$API_PORT" TENANTRY_DB_MAX_CONNECTIONS="$POOL"
  "${LIMITS[@]}")
LITE_ENV=(DATABASE_URL="sqlite://$WORK/lite/tenantry.db?mode=rwc" TENANTRY_DATA_DIR="$WORK/lite"
  TENANTRY_DEMO=false TENANTRY_LOG=warn TENANTRY_BIND="127.0.0.1:$LITE_PORT" "${LIMITS[@]}")
api_env() { env "${API_ENV[@]}" "$@"; }
# The saturation section's server sheds load past an admission limit (503 + Retry-After).
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-32}
MAX_QUEUED=${MAX_QUEUED:-64}
QUEUE_TIMEOUT_MS=${QUEUE_TIMEOUT_MS:-1000}
SHED_ENV=(TENANTRY_MAX_IN_FLIGHT="$MAX_IN_FLIGHT" TENANTRY_MAX_QUEUED="$MAX_QUEUED"
  TENANTRY_QUEUE_TIMEOUT_MS="$QUEUE_TIMEOUT_MS")
# The rate-limit section's server has small quotas (later assignments override API_ENV's).
LIMIT_ENV=(TENANTRY_RATE_LIMIT_TENANT_QUOTA="${LIMIT_TENANT_QUOTA:-600}"
  TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA="${LIMIT_CREDENTIAL_QUOTA:-200}"
  TENANTRY_RATE_LIMIT_WINDOW_SECS="${LIMIT_WINDOW_SECS:-10}")
echo "${SHED_ENV[*]}" >"$RESULTS/saturation_server.txt"
echo "${LIMIT_ENV[*]}" >"$RESULTS/limits_server.txt"
printf '# api_env = env %s\n# lite_env = env %s\n' "${API_ENV[*]}" "${LITE_ENV[*]}" >>"$CMDS"
lite_env() { env "${LITE_ENV[@]}" "$@"; }
# Starts a server in the background (its own pid in $!, no wrapper process) after checking
# that nothing already answers on its port.
start_server() {
  local url=$1 out=$2
  shift 2
  if curl -fsS "$url/healthz" >/dev/null 2>&1; then
    echo "something already answers at $url: stop it first" >&2
    exit 1
  fi
  printf '%s &\n' "$*" >>"$CMDS"
  "$@" >"$out" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_healthy "$url"
}
stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

log "machine"
{
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u +%Y-%m-%dT%H:%MZ) |"
  echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)'); binaries built $(date -u -r "$T" +%Y-%m-%dT%H:%MZ) |"
  echo "| cores | $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')) |"
  echo "| memory | $(free -g | awk '/Mem:/{print $2}') GiB |"
  echo "| PostgreSQL | $(psql -X -Atc 'show server_version' -d postgres) at $PGHOST:$PGPORT, shared_buffers $(psql -X -Atc 'show shared_buffers' -d postgres), database \`$BENCH_DB\` |"
  echo "| load generator | \`loadtest\` (this crate), same machine: server, database and load share the cores |"
  echo "| API | \`tenantry serve\`, release build, pool $POOL connections, JSON logs at warn, rate limiter on (in-process) with quotas of $QUOTA units/min so no run is throttled |"
  if [ -n "$MIN_PRELOAD" ]; then
    echo "| allocators | \`tenantry\` is built with mimalloc as its global allocator; the minimal server runs with the same allocator, preloaded (\`LD_PRELOAD=$MIN_PRELOAD\`), so the ratio compares the code, not the allocators |"
  else
    echo "| allocators | \`tenantry\` is built with mimalloc; the minimal server uses the system allocator (no libmimalloc found to preload: \`apt-get install libmimalloc2.0\`) |"
  fi
  echo "| comparison concurrency | $C; scenario runs $DUR each; ceilings/isolation in ${ROUNDS:-3} interleaved rounds of ${RDUR:-5s} |"
  echo "| saturation server | the same API restarted for the sweep and the overload run with \`${SHED_ENV[*]}\` |"
  echo "| rate-limit server | the same API restarted for \`limits\` with \`${LIMIT_ENV[*]}\` |"
} >"$RESULTS/env.md"

log "database $BENCH_DB"
run psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" -c "CREATE DATABASE $BENCH_DB"
mkdir -p "$WORK/pg" "$WORK/lite"
run api_env "$T" migrate

log "seed: the depth tenant ($BIG people)"
SEED_START=$(date +%s.%N)
run api_env "$T" seed --tenants 1 --people 1000 2>"$RESULTS/seed_big.log"
BIG_SLUG=$(psql_bench -Atc "SELECT slug FROM tenants WHERE slug LIKE 'seed-%' ORDER BY created_at LIMIT 1")
BIG_ID=$(psql_bench -Atc "SELECT id FROM tenants WHERE slug = '$BIG_SLUG'")
# `tenantry seed` writes row by row through the domain (see the rate below); a million
# rows that way takes minutes, so the rest are bulk-inserted with one INSERT … SELECT
# over generate_series: the same columns, emails marked with the slug, and UUIDv7-shaped
# ids whose timestamp grows 1 ms per row, so id order is insertion (heap) order as it is
# for ids the API generates over time.
run psql_bench -c "
INSERT INTO people (tenant_id, id, account_id, first_name, last_name, email, title, phone,
                    stage, created_at, updated_at, version, deleted_at)
SELECT '$BIG_ID'::uuid,
       (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint + g), 12, '0') || '7000'
         || '8' || lpad(to_hex(g), 15, '0'))::uuid,
       NULL, 'Bulk' || g, 'Seed', 'bulk' || g || '@$BIG_SLUG.test', NULL, NULL,
       'lead', now(), now(), 1, NULL
FROM generate_series(1, $BIG - 1000) AS g;"
run psql_bench -c "VACUUM ANALYZE"
SEED_END=$(date +%s.%N)

log "seed: $SMALL_TENANTS tenants x $SMALL_PEOPLE people (tenantry seed)"
run api_env "$T" seed --tenants "$SMALL_TENANTS" --people "$SMALL_PEOPLE" 2>"$RESULTS/seed_small.log"
mapfile -t SMALL < <(psql_bench -Atc "SELECT slug FROM tenants WHERE slug LIKE 'seed-%' AND slug <> '$BIG_SLUG' ORDER BY slug")
S1=${SMALL[0]}
S1_ID=$(psql_bench -Atc "SELECT id FROM tenants WHERE slug = '$S1'")
SMALL_CSV=$(IFS=,; echo "${SMALL[*]}")
run psql_bench -c "VACUUM ANALYZE"
{
  echo "| data | $(psql_bench -Atc 'SELECT count(*) FROM people') people in $(psql_bench -Atc 'SELECT count(*) FROM tenants') tenants: depth tenant \`$BIG_SLUG\` ($(psql_bench -Atc "SELECT count(*) FROM people WHERE tenant_id = '$BIG_ID'") people: 1 000 via \`tenantry seed\`, the rest by SQL INSERT … SELECT generate_series; $(awk "BEGIN{printf \"%.0f\", $SEED_END - $SEED_START}") s); $SMALL_TENANTS tenants × $SMALL_PEOPLE people via \`tenantry seed\` ($(grep -o 'seeded.*' "$RESULTS/seed_small.log" | tail -1)) |"
} >>"$RESULTS/env.md"

log "row-level security: role tenantry_rls and a policy on people"
run psql_bench -c "
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenantry_rls') THEN
    CREATE ROLE tenantry_rls NOLOGIN;
  END IF;
END \$\$;
GRANT USAGE ON SCHEMA public TO tenantry_rls;
GRANT SELECT ON people TO tenantry_rls;
ALTER TABLE people ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON people TO tenantry_rls
  USING (tenant_id = current_setting('app.tenant_id', true)::uuid);"
# The policy must isolate: as tenantry_rls, with the setting, only S1's rows are visible.
RLS_COUNT=$(psql_bench -Atc "SET ROLE tenantry_rls; BEGIN; SET LOCAL app.tenant_id = '$S1_ID'; SELECT count(*) FROM people; COMMIT;" | grep -E '^[0-9]+$' | tail -1)
S1_COUNT=$(psql_bench -Atc "SELECT count(*) FROM people WHERE tenant_id = '$S1_ID'")
[ "$RLS_COUNT" = "$S1_COUNT" ] || { echo "RLS check failed: $RLS_COUNT vs $S1_COUNT" >&2; exit 1; }

log "start the API (PostgreSQL)"
API="http://127.0.0.1:$API_PORT"
start_server "$API" "$RESULTS/api.log" env "${API_ENV[@]}" "$T" serve
API_PID=$SERVER_PID

# Every run mints its tokens with `tenantry token` under the API's environment. A run
# that fails its checks (exit 2) is recorded and the script goes on: the report shows it.
lt_at() {
  local url=$1
  shift
  note_load "$(label_of "$@")"
  run api_env "$L" run --base-url "$url" --tenantry-bin "$T" "$@" ||
    echo "failed ($?): loadtest run $*" >>"$RESULTS/failed.txt"
}
lt() { lt_at "$API" "$@"; }

log "leak-check canary: tenant ${SMALL[1]}'s token labelled as $S1 must fail the run"
CANARY_TOKEN=$(api_env "$T" token --tenant "${SMALL[1]}")
set +e
"$L" run list --base-url "$API" --token "$S1=$CANARY_TOKEN" --concurrency 1 --duration 2s \
  --max-requests 3 --label canary --json "$RESULTS/canary.json" --md "$RESULTS/canary.md" 2>/dev/null
CANARY_EXIT=$?
set -e
printf '%s\n' "loadtest run list --token \"$S1=<token of ${SMALL[1]}>\" --max-requests 3 ...  # canary, must exit 2" >>"$CMDS"
echo "| leak-check canary | a token of \`${SMALL[1]}\` presented as \`$S1\`: exit $CANARY_EXIT (2 = run failed on foreign rows: $(jq -r '.leaks.foreign_rows' "$RESULTS/canary.json" 2>/dev/null) detected) |" >>"$RESULTS/env.md"
[ "$CANARY_EXIT" = 2 ] || { echo "the leak-check canary did not fail the run" >&2; exit 1; }

COLS='"people"."tenant_id", "people"."id", "people"."account_id", "people"."first_name", "people"."last_name", "people"."email", "people"."title", "people"."phone", "people"."stage", "people"."created_at", "people"."updated_at", "people"."version", "people"."deleted_at"'
cat >"$WORK/list_plain.sql" <<SQL
SELECT $COLS FROM "people" WHERE "people"."tenant_id" = :tid AND "people"."deleted_at" IS NULL ORDER BY "people"."id" ASC LIMIT :lim;
SQL
cat >"$WORK/list_rls.sql" <<SQL
BEGIN;
SELECT set_config('app.tenant_id', :tid, true);
SELECT $COLS FROM "people" WHERE "people"."deleted_at" IS NULL ORDER BY "people"."id" ASC LIMIT :lim;
END;
SQL
cp "$WORK/list_plain.sql" "$WORK/list_rls.sql" "$RESULTS/"

# The five ways of serving the same page run interleaved, in $ROUNDS short rounds, so that
# other work on the machine (which comes and goes) weighs on all of them alike; the report
# takes each one's median round and the median of the per-round ratios.
ROUNDS=${ROUNDS:-3}
RDUR=${RDUR:-5s}
RSECS=${RDUR%s}
log "ceilings: the first page of one tenant, concurrency $C, $ROUNDS interleaved rounds of $RDUR"
for r in $(seq 1 "$ROUNDS"); do
  lt list --tenants "$S1" --concurrency "$C" --duration "$RDUR" --label "api-list-r$r" \
    --json "$RESULTS/api_list_r$r.json" --md "$RESULTS/api_list_r$r.md"
  for mode in plain rls; do
    start_server "http://127.0.0.1:$MIN_PORT" "$RESULTS/minimal_${mode}_r$r.log" \
      env ${MIN_PRELOAD:+LD_PRELOAD=$MIN_PRELOAD} "$L" minimal-server --database-url "$PG_URL" --bind "127.0.0.1:$MIN_PORT" --mode "$mode" \
      --pool "$POOL" --max-seconds 300
    MIN_PID=$SERVER_PID
    lt_at "http://127.0.0.1:$MIN_PORT" list --tenants "$S1" --concurrency "$C" --duration "$RDUR" \
      --label "minimal-$mode-r$r" --json "$RESULTS/minimal_${mode}_r$r.json" \
      --md "$RESULTS/minimal_${mode}_r$r.md"
    stop_server "$MIN_PID"
  done
  note_load "pgbench-plain-r$r"
  run pgbench -n -M prepared -c "$C" -j 2 -T "$RSECS" -D tid="$S1_ID" -D lim=51 \
    -f "$WORK/list_plain.sql" -l --log-prefix="$RESULTS/pgbench_plain_r$r.log" "$BENCH_DB" \
    >"$RESULTS/pgbench_plain_r$r.out" 2>&1
  note_load "pgbench-rls-r$r"
  run env PGOPTIONS="-c role=tenantry_rls" pgbench -n -M prepared -c "$C" -j 2 -T "$RSECS" \
    -D tid="$S1_ID" -D lim=51 -f "$WORK/list_rls.sql" \
    -l --log-prefix="$RESULTS/pgbench_rls_r$r.log" "$BENCH_DB" >"$RESULTS/pgbench_rls_r$r.out" 2>&1
done

log "depth: keyset vs offset (SQL, then through the API)"
note_load sql-depth
run "$L" sql-depth --database-url "$PG_URL" --tenant-id "$BIG_ID" --pages "$DEPTH_PAGES" \
  --page-size 50 --samples 30 --json "$RESULTS/sql_depth.json"
lt depth --tenants "$BIG_SLUG" --depth-pages "$DEPTH_PAGES" --page-size 50 --samples 20 --prefetch 0 --concurrency 1 \
  --duration 240s --max-requests 20000 --label api-depth \
  --json "$RESULTS/api_depth.json" --md "$RESULTS/api_depth.md"

log "scenarios over $SMALL_TENANTS tenants"
lt get --tenants "$SMALL_CSV" --concurrency "$C" --duration "$DUR" --label get \
  --json "$RESULTS/get.json" --md "$RESULTS/get.md"
lt walk --tenants "$SMALL_CSV" --concurrency "$C" --duration "$DUR" --page-size 200 --label walk \
  --json "$RESULTS/walk.json" --md "$RESULTS/walk.md"
lt sync --tenants "$SMALL_CSV" --concurrency "$C" --duration "$DUR" --label sync \
  --json "$RESULTS/sync.json" --md "$RESULTS/sync.md"
lt write --tenants "$SMALL_CSV" --concurrency "$C" --duration "$DUR" --label write \
  --json "$RESULTS/write.json" --md "$RESULTS/write.md"
lt mixed --tenants "$SMALL_CSV" --concurrency "$C" --duration "$DUR" --label mixed \
  --json "$RESULTS/mixed.json" --md "$RESULTS/mixed.md"

stop_server "$API_PID"

log "saturation sweep and 2x overload (API with ${SHED_ENV[*]})"
start_server "$API" "$RESULTS/api_shed.log" env "${API_ENV[@]}" "${SHED_ENV[@]}" "$T" serve
API_PID=$SERVER_PID
for c in $SWEEP; do
  lt list --tenants "$SMALL_CSV" --concurrency "$c" --duration "$SWEEP_DUR" --label "sweep-c$c" \
    --json "$RESULTS/sweep_c$c.json" --md "$RESULTS/sweep_c$c.md" >/dev/null
done
SAT=$("$L" compose --results "$RESULTS" --print-saturation)
lt mixed --tenants "$SMALL_CSV" --concurrency $((2 * SAT)) --duration "$DUR" \
  --label "overload-c$((2 * SAT))" --json "$RESULTS/overload.json" --md "$RESULTS/overload.md"
stop_server "$API_PID"

log "rate limits under load (API with ${LIMIT_ENV[*]})"
start_server "$API" "$RESULTS/api_limits.log" env "${API_ENV[@]}" "${LIMIT_ENV[@]}" "$T" serve
API_PID=$SERVER_PID
lt limits --tenants "$S1" --concurrency "${LIMIT_C:-8}" --duration "${LIMIT_DUR:-20s}" \
  --prefetch 200 --label limits --json "$RESULTS/limits.json" --md "$RESULTS/limits.md"
stop_server "$API_PID"

log "SQLite embedded: the same binary, same tenant sizes"
run lite_env "$T" migrate
run lite_env "$T" seed --tenants "$SMALL_TENANTS" --people "$SMALL_PEOPLE" 2>"$RESULTS/seed_lite.log"
LITE="http://127.0.0.1:$LITE_PORT"
start_server "$LITE" "$RESULTS/api_sqlite.log" env "${LITE_ENV[@]}" "$T" serve
LITE_PID=$SERVER_PID
lite_lt() {
  note_load "$(label_of "$@")"
  run lite_env "$L" run --base-url "$LITE" --tenantry-bin "$T" --data-dir "$WORK/lite" "$@" ||
    echo "failed ($?): loadtest run $*" >>"$RESULTS/failed.txt"
}
lite_lt list --tenants 1 --concurrency "$C" --duration "$DUR" --label sqlite-list \
  --json "$RESULTS/sqlite_list.json" --md "$RESULTS/sqlite_list.md"
lite_lt get --tenants "$SMALL_TENANTS" --concurrency "$C" --duration "$DUR" --label sqlite-get \
  --json "$RESULTS/sqlite_get.json" --md "$RESULTS/sqlite_get.md"
stop_server "$LITE_PID"

log "compose $REPORT_OUT"
"$L" compose --results "$RESULTS" --out "$REPORT_OUT"
rm -rf "$WORK"
echo "wrote $REPORT_OUT (raw results in $RESULTS)" >&2
