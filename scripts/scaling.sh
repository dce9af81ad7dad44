#!/usr/bin/env bash
# scaling.sh: what more workers and receivers buy on this machine.
#
# Runs the same ping flood (rabid-flood ping, closed loop) against a fresh rabid-punch for each
# --workers/--receivers pair given, and prints replies/s, the server's CPU per reply split by
# thread kind (every datagram passes a receiver, so its share caps what workers can add), and
# the rate as a multiple of the first pair's. The generator runs on the cores the server does
# not get when taskset is there and the machine has cores to spare; on a 2-core box generator
# and server share them, so only the per-thread CPU figures mean much there.
#
# Usage: scripts/scaling.sh [--no-build] [--duration S] [--gen-threads N] [PAIR...]
#   PAIR     WORKERSxRECEIVERS, e.g. 1x1 2x1 4x2 (default: 1x1 2x1 4x1 4x2 8x4)
#   --duration S      seconds measured per pair (default 8)
#   --gen-threads N   rabid-flood threads (default: half the cores, at least 1)
# Only 127.0.0.1 is used; every process started is stopped by its pid; bounded by the
# durations. Binaries from ${CARGO_TARGET_DIR:-target}/release.
set -euo pipefail

DURATION=8
BUILD=1
CORES=$(nproc)
GEN_THREADS=$(((CORES + 1) / 2))
PAIRS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --gen-threads) GEN_THREADS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *x*) PAIRS+=("$1"); shift ;;
        *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ ${#PAIRS[@]} -gt 0 ]] || PAIRS=(1x1 2x1 4x1 4x2 8x4)
[[ $DURATION =~ ^[1-9][0-9]*$ && $GEN_THREADS =~ ^[1-9][0-9]*$ ]] || {
    echo "scaling.sh: --duration and --gen-threads take positive integers" >&2; exit 2; }

cd "$(dirname "$0")/.."
[[ $BUILD == 1 ]] && cargo build --release --bins
bin="${CARGO_TARGET_DIR:-target}/release"
tmp=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# The generator on the first GEN_THREADS cores, the server on the rest, when there are cores
# to spare for both.
gen_pin=() srv_pin=()
if command -v taskset >/dev/null && ((CORES > GEN_THREADS)); then
    gen_pin=(taskset -c "0-$((GEN_THREADS - 1))")
    srv_pin=(taskset -c "$GEN_THREADS-$((CORES - 1))")
fi
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

echo "cores: $CORES; generator: $GEN_THREADS thread(s)${gen_pin:+ on ${gen_pin[2]}}, server${srv_pin:+ on ${srv_pin[2]}}"
printf '%-10s %10s %9s %14s %13s %13s\n' workers×rcv 'replies/s' vs_first 'server_us/rep' 'receivers_us' 'workers_us'
first=
for pair in "${PAIRS[@]}"; do
    workers=${pair%x*} receivers=${pair#*x}
    : >"$tmp/server.err"
    "${srv_pin[@]}" "$bin/rabid-punch" --port 0 --bind 127.0.0.1 --workers "$workers" \
        --receivers "$receivers" --relay off --log-file "$tmp/server.log" 2>"$tmp/server.err" &
    server=$!
    port=
    for _ in $(seq 1 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/server.err" | head -n 1)
        [[ -n $port ]] && break
        sleep 0.1
    done
    [[ -n $port ]] || { echo "scaling.sh: the server did not start:" >&2; cat "$tmp/server.err" >&2; exit 1; }
    "${gen_pin[@]}" "$bin/rabid-flood" ping --target "127.0.0.1:$port" --sessions 1000 \
        --players 4 --outstanding $((64 * GEN_THREADS)) --duration "$DURATION" --warmup 1 \
        --threads "$GEN_THREADS" --server-pid "$server" --json >"$tmp/out.json" 2>"$tmp/out.err" || true
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
    server=
    rate=$(field "$tmp/out.json" replies_per_s)
    [[ -n $rate ]] || { echo "scaling.sh: no result for $pair:" >&2; cat "$tmp/out.err" >&2; exit 1; }
    first=${first:-$rate}
    printf '%-10s %10.0f %8.2fx %14s %13s %13s\n' "${workers}x${receivers}" "$rate" \
        "$(awk -v a="$rate" -v b="$first" 'BEGIN { print a / b }')" \
        "$(field "$tmp/out.json" server_cpu_us_per_reply)" \
        "$(field "$tmp/out.json" receiver_cpu_us_per_reply)" \
        "$(field "$tmp/out.json" workers_cpu_us_per_reply)"
done
echo "receivers_us and workers_us: CPU of all receivers, of all workers, per reply"
