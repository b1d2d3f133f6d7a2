#!/usr/bin/env bash
# HTTP load benchmark of attestd, loopback only: challenges and assertions from many simulated
# devices, on SQLite and on PostgreSQL.
#
#   bench/load.sh                 both backends
#   bench/load.sh sqlite          one backend (sqlite | postgres)
#
# Per backend it starts `target/release/attestd serve` in quick-start mode (a fresh temporary
# directory, its own simulator CA, listening on 127.0.0.1 on a free port), waits for /readyz and
# runs attest-loadgen: challenge at maximum (closed loop), assertion at maximum, then each in open
# loop at half its target rate, and at half the maximum it just measured, for the latency
# percentiles. Then it stops the server and deletes what it created (temporary directory,
# PostgreSQL database). The runs share one database, which grows from run to run (every
# assertion logs a decision and records its spent challenge).
#
# Environment:
#   DURATION (10s), WARMUP (1s), CONNECTIONS (64), DEVICES (200)
#   CHALLENGE_RATE (15000), ASSERTION_RATE_SQLITE (5000), ASSERTION_RATE_POSTGRES (2500)
#   ASSERTION_PLAN (assertions pre-signed for the closed-loop run; default 15000/s x (warm-up +
#     duration))
#   PG_URL (postgres://postgres@127.0.0.1:5432/postgres): a loopback server and a database to
#     run CREATE DATABASE / DROP DATABASE from; the benchmark database is attestd_load_<pid>.
#   PIN (1): with taskset, the server runs on core SERVER_CPU (1), the load generator on LOADGEN_CPU
#     (0). PostgreSQL itself is not pinned. PIN=0 lets the scheduler place everything.
#   SKIP_BUILD (0): use the existing target/release binaries.
#   ATTESTD: an attestd binary to benchmark instead of target/release/attestd (then only
#     attest-loadgen is built).
#   HALF_MAX (1): also run each scenario in open loop at half the maximum just measured.
#   SERVER_ARGS: extra `attestd serve` flags (e.g. "--database-max-connections 4"). The rate
#     limits are switched off (--rate-limit-address off --rate-limit-key off) when the binary
#     has them: all the load comes from one address.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-64}"
DEVICES="${DEVICES:-200}"
CHALLENGE_RATE="${CHALLENGE_RATE:-15000}"
ASSERTION_RATE_SQLITE="${ASSERTION_RATE_SQLITE:-5000}"
ASSERTION_RATE_POSTGRES="${ASSERTION_RATE_POSTGRES:-2500}"
ASSERTION_PLAN="${ASSERTION_PLAN:-}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PIN="${PIN:-1}"
SERVER_CPU="${SERVER_CPU:-1}"
LOADGEN_CPU="${LOADGEN_CPU:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
ATTESTD="${ATTESTD:-}"
SERVER_ARGS="${SERVER_ARGS:-}"
HALF_MAX="${HALF_MAX:-1}"

BACKENDS=("$@")
(( ${#BACKENDS[@]} )) || BACKENDS=(sqlite postgres)

die() { echo "load.sh: $*" >&2; exit 1; }
for backend in "${BACKENDS[@]}"; do
  [[ "$backend" == sqlite || "$backend" == postgres ]] || die "unknown backend $backend (sqlite | postgres)"
done

# --- build ------------------------------------------------------------------------------------
PACKAGES=(-p attest-loadgen)
[[ -n "$ATTESTD" ]] || PACKAGES=(-p attestd -p attest-loadgen)
if [[ "$SKIP_BUILD" != 1 ]]; then
  echo "building (cargo build --release ${PACKAGES[*]}) ..." >&2
  timeout 3600 cargo build --release "${PACKAGES[@]}" >&2 || die "build failed"
fi
ATTESTD="${ATTESTD:-$ROOT/target/release/attestd}"
LOADGEN="$ROOT/target/release/attest-loadgen"
[[ -x "$ATTESTD" && -x "$LOADGEN" ]] || die "missing binaries in target/release"

# --- pinning --------------------------------------------------------------------------------------
SERVER_PIN=()
LOADGEN_PIN=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null \
  && taskset -c "$SERVER_CPU" true 2>/dev/null && taskset -c "$LOADGEN_CPU" true 2>/dev/null; then
  SERVER_PIN=(taskset -c "$SERVER_CPU")
  LOADGEN_PIN=(taskset -c "$LOADGEN_CPU")
  PINNING="server on core $SERVER_CPU, load generator on core $LOADGEN_CPU (taskset); PostgreSQL unpinned"
else
  PINNING="not pinned: server, load generator (and PostgreSQL) share all $(nproc) cores"
fi
echo "pinning: $PINNING" >&2

# --- cleanup: only what this script started or created ------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/attestd-load.XXXXXX")"
SERVER_PID=""
PG_DB=""
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
drop_pg_db() {
  if [[ -n "$PG_DB" ]]; then
    timeout 60 psql "$PG_URL" -q -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 \
      || echo "load.sh: could not drop database $PG_DB" >&2
    PG_DB=""
  fi
}
cleanup() {
  stop_server
  drop_pg_db
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- one server -------------------------------------------------------------------------------------
# Every request of the load generator comes from 127.0.0.1: the rate limits (on by default) are
# switched off, when the binary has them (older builds measured with ATTESTD= have none).
LIMIT_ARGS=()
if "$ATTESTD" serve --help 2>/dev/null | grep -q -- '--rate-limit-address'; then
  LIMIT_ARGS=(--rate-limit-address off --rate-limit-key off)
fi
PORT=""
start_server() { # database URL, directory
  local url="$1" dir="$2"
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
  (cd "$dir" && exec "${SERVER_PIN[@]}" "$ATTESTD" serve --listen 127.0.0.1:0 --database-url "$url" \
    --quickstart-dir "$dir/attestd-dev" --challenge-ttl 3600 --log-format json \
    "${LIMIT_ARGS[@]}" $SERVER_ARGS \
    >"$dir/server.log" 2>&1) &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 300); do # 30 s
    PORT="$(grep -o '"address":"127\.0\.0\.1:[0-9]*"' "$dir/server.log" 2>/dev/null | head -1 \
      | grep -o '[0-9]*"$' | tr -d '"' || true)"
    [[ -n "$PORT" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "the server exited"; }
    sleep 0.1
  done
  [[ -n "$PORT" ]] || die "the server did not report its address within 30 s"
  for _ in $(seq 1 100); do # 10 s
    if readyz "$PORT"; then return 0; fi
    sleep 0.1
  done
  die "/readyz did not answer 200 within 10 s"
}
readyz() { # port -> success if GET /readyz is 200
  local status
  status="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && \
    printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && \
    head -1 <&3" 2>/dev/null || true)"
  [[ "$status" == *" 200 "* ]]
}

RESULTS=()
LAST_RATE=0
loadgen() { # backend label, loadgen flags... ; appends "backend label <result line>"
  local backend="$1" label="$2"
  shift 2
  local out
  echo "== $backend: $label" >&2
  out="$(timeout 900 "${LOADGEN_PIN[@]}" "$LOADGEN" --server "http://127.0.0.1:$PORT" \
    --ca-dir "$DIR/attestd-dev" --devices "$DEVICES" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" "$@")" || true
  [[ -n "$out" ]] || { tail -5 "$DIR/server.log" >&2; die "$backend $label: no result"; }
  echo "$out" >&2
  RESULTS+=("$backend $label $out")
  LAST_RATE="$(awk 'NR == 1 { print int($2) }' <<<"$out")"
}

seconds_of() { # 10s | 500ms | 1m -> seconds (integer, rounded up)
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
PLAN="${ASSERTION_PLAN:-$(( 15000 * ($(seconds_of "$WARMUP") + $(seconds_of "$DURATION")) ))}"

run_backend() { # backend
  local backend="$1" url assertion_rate
  DIR="$WORK/$backend"
  case "$backend" in
    sqlite)
      url="sqlite://$DIR/attestd.db?mode=rwc"
      assertion_rate="$ASSERTION_RATE_SQLITE"
      ;;
    postgres)
      command -v psql >/dev/null || die "psql is required for the PostgreSQL run"
      [[ "$PG_URL" =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?/[A-Za-z0-9_]+$ ]] \
        || die "PG_URL must be a loopback postgres://[user@]127.0.0.1[:port]/db URL"
      PG_DB="attestd_load_$$"
      timeout 60 psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null \
        || { PG_DB=""; die "cannot create database with $PG_URL"; }
      url="${PG_URL%/*}/$PG_DB"
      assertion_rate="$ASSERTION_RATE_POSTGRES"
      ;;
  esac
  start_server "$url" "$DIR"
  echo "== $backend: attestd on 127.0.0.1:$PORT (pid $SERVER_PID)" >&2
  loadgen "$backend" "max" challenge
  local challenge_max="$LAST_RATE"
  loadgen "$backend" "max" --plan "$PLAN" assertion
  local assertion_max="$LAST_RATE"
  loadgen "$backend" "@$CHALLENGE_RATE/s" --rate "$CHALLENGE_RATE" challenge
  loadgen "$backend" "@$assertion_rate/s" --rate "$assertion_rate" assertion
  if [[ "$HALF_MAX" == 1 ]]; then
    # Latency at half of what this server actually sustained (meaningful even when the targets
    # above are beyond its capacity and their latencies are queueing delay).
    local half
    half=$(( challenge_max / 2 )); (( half > 0 )) || half=1
    loadgen "$backend" "@$half/s" --rate "$half" challenge
    half=$(( assertion_max / 2 )); (( half > 0 )) || half=1
    loadgen "$backend" "@$half/s" --rate "$half" assertion
  fi
  stop_server
  drop_pg_db
}

for backend in "${BACKENDS[@]}"; do
  run_backend "$backend"
done

# --- table ------------------------------------------------------------------------------------------
echo
echo "attestd HTTP load, $(nproc) cores, $CONNECTIONS connections, $DEVICES devices, $WARMUP warm-up + $DURATION"
echo "pinning: $PINNING"
echo
printf '| %-8s | %-9s | %-10s | %9s | %8s | %8s | %8s | %8s | %6s | %s |\n' \
  backend scenario load "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" errors notes
echo "|----------|-----------|------------|----------:|---------:|---------:|---------:|---------:|-------:|-------|"
for row in "${RESULTS[@]}"; do
  # "<backend> <label> <scenario> <req/s> req/s p50=.. p99=.. errors=.. p90=.. p999=.. max=.. ..."
  read -r backend label scenario rate _ rest <<<"$row"
  field() { grep -o "\b$1=[^ ]*" <<<"$rest" | head -1 | cut -d= -f2; }
  notes="$(grep -o '\b\(missed\|late\|plan_exhausted\|failed\|warmup_failures\)=[^ ]*' <<<"$rest" | paste -sd' ' || true)"
  printf '| %-8s | %-9s | %-10s | %9s | %8s | %8s | %8s | %8s | %6s | %s |\n' \
    "$backend" "$scenario" "$label" "$rate" "$(field p50)" "$(field p90)" "$(field p99)" \
    "$(field max)" "$(field errors)" "$notes"
done
