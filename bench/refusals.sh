#!/usr/bin/env bash
# The cost of a refusal, fresh and after ~30,000 accumulated failures, and the bytes each one
# stores: SQLite and PostgreSQL, loopback only (issue 9, item 7).
#
#   bench/refusals.sh                       both backends, target/release/attestd
#   bench/refusals.sh sqlite                one backend (sqlite | postgres)
#   ATTESTD=/path/to/old/attestd bench/refusals.sh    another build (e.g. before the change)
#
# Per backend: starts `attestd serve` in quick-start mode on a fresh database (rate limits off
# when the binary has them: every request comes from 127.0.0.1), attests one device, then sends
# assertions naming its key with a corrupted signature, as the stranger of item 6 does:
#   fresh  MEASURE refusals on one connection (each one's latency: its cost, one at a time);
#   fill   FILL refusals on FILL_CONNECTIONS connections (closed loop, as fast as it goes);
#   after  MEASURE refusals on one connection again.
# and reads the database size before and after the fill (SQLite: page_count x page_size, with
# --sqlite-locking shared so sqlite3 may read it; PostgreSQL: pg_database_size). Bytes per
# refusal = growth / FILL. Then it stops the server and deletes what it created.
#
# Environment: MEASURE (2000), FILL (30000), FILL_CONNECTIONS (4), PG_URL
#   (postgres://postgres@127.0.0.1:5432/postgres: a database to CREATE/DROP DATABASE from),
#   PIN (1: server on core SERVER_CPU=1, loadgen on LOADGEN_CPU=0), SKIP_BUILD (0), ATTESTD.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
cd "$ROOT"

MEASURE="${MEASURE:-2000}"
FILL="${FILL:-30000}"
FILL_CONNECTIONS="${FILL_CONNECTIONS:-4}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PIN="${PIN:-1}"
SERVER_CPU="${SERVER_CPU:-1}"
LOADGEN_CPU="${LOADGEN_CPU:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
ATTESTD="${ATTESTD:-}"

BACKENDS=("$@")
(( ${#BACKENDS[@]} )) || BACKENDS=(sqlite postgres)
die() { echo "refusals.sh: $*" >&2; exit 1; }

PACKAGES=(-p attest-loadgen)
[[ -n "$ATTESTD" ]] || PACKAGES=(-p attestd -p attest-loadgen)
if [[ "$SKIP_BUILD" != 1 ]]; then
  timeout 3600 cargo build --release "${PACKAGES[@]}" >&2 || die "build failed"
fi
ATTESTD="${ATTESTD:-$ROOT/target/release/attestd}"
LOADGEN="$ROOT/target/release/attest-loadgen"
[[ -x "$ATTESTD" && -x "$LOADGEN" ]] || die "missing binaries"
command -v sqlite3 >/dev/null || die "sqlite3 is required"

SERVER_PIN=()
LOADGEN_PIN=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null \
  && taskset -c "$SERVER_CPU" true 2>/dev/null && taskset -c "$LOADGEN_CPU" true 2>/dev/null; then
  SERVER_PIN=(taskset -c "$SERVER_CPU")
  LOADGEN_PIN=(taskset -c "$LOADGEN_CPU")
fi
LIMIT_ARGS=()
if "$ATTESTD" serve --help 2>/dev/null | grep -q -- '--rate-limit-address'; then
  LIMIT_ARGS=(--rate-limit-address off --rate-limit-key off)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/attestd-refusals.XXXXXX")"
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
    timeout 60 psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    PG_DB=""
  fi
}
trap 'stop_server; drop_pg_db; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

start_server() { # url, dir, extra flags...
  local url="$1" dir="$2"
  shift 2
  mkdir -p "$dir"
  (cd "$dir" && exec "${SERVER_PIN[@]}" "$ATTESTD" serve --listen 127.0.0.1:0 --database-url "$url" \
    --quickstart-dir "$dir/attestd-dev" --log-format json "${LIMIT_ARGS[@]}" "$@" \
    >"$dir/server.log" 2>&1) &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 300); do
    PORT="$(grep -o '"address":"127\.0\.0\.1:[0-9]*"' "$dir/server.log" 2>/dev/null | head -1 \
      | grep -o '[0-9]*"$' | tr -d '"' || true)"
    [[ -n "$PORT" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "the server exited"; }
    sleep 0.1
  done
  [[ -n "$PORT" ]] || die "the server did not report its address"
  sleep 0.5
}

refusals() { # connections, count -> the loadgen result line
  timeout 900 "${LOADGEN_PIN[@]}" "$LOADGEN" --server "http://127.0.0.1:$PORT" \
    --ca-dir "$DIR/attestd-dev" --devices 1 --connections "$1" --warmup 0s --duration 600s \
    --plan "$2" refusal | head -1
}

ROWS=()
for backend in "${BACKENDS[@]}"; do
  DIR="$WORK/$backend"
  case "$backend" in
    sqlite)
      url="sqlite://$DIR/attestd.db?mode=rwc"
      start_server "$url" "$DIR" --sqlite-locking shared
      size() { sqlite3 "$DIR/attestd.db" "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"; }
      rows() { sqlite3 "$DIR/attestd.db" "SELECT COUNT(*) FROM decisions"; }
      ;;
    postgres)
      PG_DB="attestd_refusals_$$"
      timeout 60 psql "$PG_URL" -q -c "CREATE DATABASE $PG_DB" >/dev/null || die "cannot create a database"
      url="${PG_URL%/*}/$PG_DB"
      start_server "$url" "$DIR"
      size() { psql "$url" -tAq -c "SELECT pg_database_size(current_database())"; }
      rows() { psql "$url" -tAq -c "SELECT COUNT(*) FROM decisions"; }
      ;;
    *) die "unknown backend $backend" ;;
  esac
  fresh="$(refusals 1 "$MEASURE")"
  echo "$backend fresh: $fresh" >&2
  before="$(size)"
  fill="$(refusals "$FILL_CONNECTIONS" "$FILL")"
  echo "$backend fill: $fill" >&2
  after_size="$(size)"
  logged="$(rows)"
  after="$(refusals 1 "$MEASURE")"
  echo "$backend after: $after" >&2
  p50() { grep -o '\bp50=[^ ]*' <<<"$1" | cut -d= -f2; }
  rate() { awk '{ print int($2) }' <<<"$1"; }
  bytes=$(( (after_size - before) / FILL ))
  ROWS+=("| $backend | $(p50 "$fresh") | $(rate "$fresh") | $(p50 "$after") | $(rate "$after") | $(rate "$fill") | $bytes | $logged |")
  stop_server
  drop_pg_db
done

echo
echo "refusals: $ATTESTD, $MEASURE measured one at a time, fresh and after $FILL more ($FILL_CONNECTIONS connections)"
echo "| backend | fresh p50 ms | fresh /s | after p50 ms | after /s | fill /s | bytes per refusal | decisions logged |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
