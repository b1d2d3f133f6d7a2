#!/usr/bin/env bash
# Cross-implementation benchmark: attestd against the npm App Attest verifiers
# node-app-attest and appattest-checker-node, on the same real records, in one run, on one core.
#
#   bench/peers.sh            install the peers if needed, build attestd, time everything
#   bench/peers.sh --probe    list which records of tests/data/apple each peer accepts
#
# Environment: SECONDS_PER_OP (default 3), WARMUP (Node warm-up seconds, default 1),
# ATTESTATION_RECORD / ASSERTION_RECORD (record JSON paths, defaults below), CPU (core to pin, 0),
# ATTESTD (an attestd binary to time instead of building target/release/attestd).
# Network: only `npm install` into bench/ (when the peers are missing). See bench/README.md.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
cd "$ROOT"

SECONDS_PER_OP="${SECONDS_PER_OP:-3}"
WARMUP="${WARMUP:-1}"
CPU="${CPU:-0}"
ATTESTATION_RECORD="${ATTESTATION_RECORD:-tests/data/apple/attestations/uebelack-prod-2024.json}"
ASSERTION_RECORD="${ASSERTION_RECORD:-tests/data/apple/assertions/srinivas-dev-2024-assertion.json}"

die() { echo "peers.sh: $*" >&2; exit 1; }
command -v node >/dev/null || die "node is required (v20+)"
command -v npm >/dev/null || die "npm is required"

# --- peers (exact versions pinned in bench/package.json) ----------------------------------------
installed_version() { # package -> version in bench/node_modules, or nothing
  node -e 'try { console.log(require(process.argv[1] + "/package.json").version) } catch {}' \
    "$BENCH/node_modules/$1" 2>/dev/null
}
wanted_version() {
  node -e 'console.log(require(process.argv[1]).dependencies[process.argv[2]])' "$BENCH/package.json" "$1"
}
need_install=0
for pkg in node-app-attest appattest-checker-node; do
  [[ "$(installed_version "$pkg")" == "$(wanted_version "$pkg")" ]] || need_install=1
done
if (( need_install )); then
  echo "installing the peers into bench/node_modules ..." >&2
  timeout 600 npm install --prefix "$BENCH" --no-audit --no-fund --loglevel=error >&2
fi

if [[ "${1:-}" == "--probe" ]]; then
  exec node "$BENCH/run.mjs" probe
fi

# --- attestd --------------------------------------------------------------------------------------
if [[ -z "${ATTESTD:-}" ]]; then
  echo "building attestd (cargo build --release -p attestd) ..." >&2
  timeout 3600 cargo build --release -p attestd >&2 || die "cargo build --release -p attestd failed"
  ATTESTD="$ROOT/target/release/attestd"
fi
[[ -x "$ATTESTD" ]] || die "no attestd binary at $ATTESTD"

# --- one core ---------------------------------------------------------------------------------------
PIN=()
if command -v taskset >/dev/null && taskset -c "$CPU" true 2>/dev/null; then
  PIN=(taskset -c "$CPU")
  PINNED="core $CPU (taskset -c $CPU; every thread of each process, Node's helper threads included)"
else
  PINNED="NOT pinned (taskset unavailable); results are not one-core numbers"
fi

# --- machine and versions -----------------------------------------------------------------------------
cpu_model="$( (lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1) || true)"
[[ -n "$cpu_model" ]] || cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit+uncommitted changes"
echo "machine:   $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr), load average $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null)"
echo "pinned:    $PINNED"
echo "attestd:   $("$ATTESTD" --version 2>/dev/null || echo attestd) @ $commit, $(rustc --version 2>/dev/null || echo rustc ?)"
echo "node:      $(node --version); node-app-attest $(installed_version node-app-attest); appattest-checker-node $(installed_version appattest-checker-node)"
echo "records:   attestation $(basename "$ATTESTATION_RECORD" .json), assertion $(basename "$ASSERTION_RECORD" .json)"
echo "timing:    ${SECONDS_PER_OP} s per operation and implementation (Node: after ${WARMUP} s warm-up)"
echo

# --- measure --------------------------------------------------------------------------------------------
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

limit=$(( ${SECONDS_PER_OP%.*} * 2 + ${WARMUP%.*} + 60 ))
attestd_out="$(timeout "$limit" "${PIN[@]}" "$ATTESTD" bench --seconds "$SECONDS_PER_OP" \
  --attestation-record "$ATTESTATION_RECORD" --assertion-record "$ASSERTION_RECORD" \
  attestation assertion)" || die "attestd bench failed: $attestd_out"
while read -r op n unit; do
  [[ "$unit" == "ops/s" ]] && echo "$op attestd $n" >>"$results"
done <<<"$attestd_out"

for op in attestation assertion; do
  record="$ATTESTATION_RECORD"; [[ "$op" == assertion ]] && record="$ASSERTION_RECORD"
  for impl in node-app-attest appattest-checker-node; do
    out="$(timeout "$limit" "${PIN[@]}" node "$BENCH/run.mjs" time "$impl" "$op" "$record" \
      --seconds "$SECONDS_PER_OP" --warmup "$WARMUP")" || die "$impl $op failed: $out"
    awk '$1 == "RESULT" { print $2, $3, $4 }' <<<"$out" >>"$results"
  done
done

# --- table ----------------------------------------------------------------------------------------------
awk '
  { ops[$1 " " $2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END {
    printf "| %-11s | %-22s | %10s | %13s |\n", "operation", "implementation", "ops/s", "attestd/peer"
    printf "|-------------|------------------------|-----------:|--------------:|\n"
    for (i = 1; i <= n; i++) {
      op = order[i]; a = ops[op " attestd"]
      if (a == "") { print "missing attestd result for " op > "/dev/stderr"; bad = 1; continue }
      printf "| %-11s | %-22s | %10d | %13s |\n", op, "attestd", a, "-"
      split("node-app-attest appattest-checker-node", peers, " ")
      for (j = 1; j <= 2; j++) {
        p = ops[op " " peers[j]]
        if (p == "") { print "missing " peers[j] " result for " op > "/dev/stderr"; bad = 1; continue }
        printf "| %-11s | %-22s | %10d | %12.1fx |\n", op, peers[j], p, a / p
      }
    }
    exit bad
  }' "$results"
