#!/usr/bin/env bash
# Runs schemathesis against the real attestd binary: does the server do what /openapi.json says?
#
#   fuzz/schemathesis.sh                          # 100 examples per operation, a random seed
#   fuzz/schemathesis.sh --max-examples 1000 --seed 7
#   fuzz/schemathesis.sh --max-examples 20 -- --phases coverage,fuzzing   # extra schemathesis args
#
# Starts `attestd serve` in quick-start mode on 127.0.0.1 (a port the kernel picks) with a SQLite
# file in a temporary directory, a random admin token and no rate limits (every case comes from
# one address: limits would answer 429 instead of exercising the routes; rate_limits.rs tests them), runs every schemathesis check but
# `positive_data_acceptance` (a schema-valid request carrying a forged attestation, challenge or
# key id is rightly refused), then stops the server. Exit code: schemathesis's (0 = no failure),
# or 1 if the server died or logged a panic. Reports (JUnit, NDJSON) go to
# target/schemathesis/. Needs schemathesis 4.32 (`pip install schemathesis==4.32.5`).
# ATTESTD_BIN=path uses that binary instead of building target/debug/attestd. One worker by
# default: with more, Python 3.11's ast.parse (used by hypothesis) fails now and then across
# threads ("AST constructor recursion depth mismatch"). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=100
seed=""
workers=1
extra=()
while (($#)); do
  case "$1" in
    --max-examples) max_examples="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "schemathesis.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
seed="${seed:-$((RANDOM * 32768 + RANDOM))}"

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis.sh: schemathesis is not installed: pip install schemathesis==4.32.5" >&2
  exit 2
fi

binary="${ATTESTD_BIN:-}"
if [[ -z "$binary" ]]; then
  cargo build -p attestd --locked --quiet
  binary=target/debug/attestd
fi

work="$(mktemp -d)"
server=""
cleanup() {
  if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

admin_token="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
ATTESTD_ADMIN_TOKEN="$admin_token" "$binary" serve \
  --listen 127.0.0.1:0 \
  --database-url "sqlite://$work/attestd.db" \
  --quickstart-dir "$work/quickstart" \
  --log-format json \
  --rate-limit-address off \
  --rate-limit-key off \
  >"$work/server.log" 2>&1 &
server=$!

# The address the kernel picked, from the "attestd listening" line.
address=""
for _ in $(seq 1 600); do
  address="$(grep -o '"address":"127\.0\.0\.1:[0-9]*"' "$work/server.log" | head -n1 | cut -d'"' -f4 || true)"
  [[ -n "$address" ]] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis.sh: attestd did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$address" ]]; then
  echo "schemathesis.sh: attestd did not say where it listens within 60 s" >&2
  exit 1
fi
base="http://$address"
echo "attestd at $base (pid $server), seed $seed, $max_examples examples per operation"

reports="target/schemathesis"
mkdir -p "$reports"
status=0
schemathesis --config-file fuzz/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --header "Authorization: Bearer $admin_token" \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers "$workers" \
  --generation-database none \
  --request-timeout 30 \
  --no-color \
  --report junit,ndjson \
  --report-dir "$reports" \
  "${extra[@]}" || status=$?

if ! kill -0 "$server" 2>/dev/null; then
  echo "schemathesis.sh: attestd died during the run:" >&2
  tail -n 50 "$work/server.log" >&2
  exit 1
fi
if grep -q 'panicked' "$work/server.log"; then
  echo "schemathesis.sh: attestd logged a panic:" >&2
  grep -m5 'panicked' "$work/server.log" >&2
  exit 1
fi
echo "schemathesis exit code $status (seed $seed); reports in $reports/"
exit "$status"
