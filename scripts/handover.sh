#!/usr/bin/env bash
# handover.sh: what a hand-over costs under load: pings lost (the goal is 0) and the longest
# wait for a reply while a successor (--takeover) replaces the running server mid-flood.
#
# Each run starts rabid-punch, floods it with pings in an open loop (rabid-flood ping --rate,
# 1000 sessions x 4 players, every reply checked to be the exact i: list), starts a successor
# with --takeover halfway through the measured window, and prints: pings sent and answered,
# lost (no reply within 5 s) and wrong, the latency p50/p99/max (max: the longest a ping
# waited, the gap the hand-over made; a ping's latency counts from when it was due, so a
# paused server cannot hide), how long the hand-over took by the successor's log, and the old
# process's exit status; each beside the same flood without a hand-over. The medians follow.
#
# Usage: scripts/handover.sh [--no-build] [--rate N] [--duration S] [--runs N] [--workers N]
#   --rate N       pings per second (default 20000)
#   --duration S   seconds measured per run (default 10)
#   --runs N       runs (default 3)
#   --workers N    the server's workers (default 2)
# Only 127.0.0.1 is used; every process started is stopped by its pid; bounded by the
# durations. Binaries from ${CARGO_TARGET_DIR:-target}/release.
set -euo pipefail

RATE=20000
DURATION=10
RUNS=3
WORKERS=2
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rate) RATE=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "handover.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for value in "$RATE" "$DURATION" "$RUNS" "$WORKERS"; do
    [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "handover.sh: options take positive integers" >&2; exit 2; }
done
((DURATION >= 4)) || { echo "handover.sh: --duration must be at least 4" >&2; exit 2; }

cd "$(dirname "$0")/.."
[[ $BUILD == 1 ]] && cargo build --release --bins
bin="${CARGO_TARGET_DIR:-target}/release"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }
# Waits (at most 10 s) for a line matching $2 in file $1; prints the first match.
wait_line() {
    for _ in $(seq 1 100); do
        if grep -q "$2" "$1" 2>/dev/null; then grep -m 1 "$2" "$1"; return 0; fi
        sleep 0.1
    done
    return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "rate: $RATE pings/s, $DURATION s measured per run, $WORKERS workers, $(nproc) cores"
echo "each run: the same flood without a hand-over (plain), then with one (handover)"
printf '%4s %-9s %9s %9s %5s %6s %8s %8s %9s %12s %9s\n' run flood sent replies lost wrong \
    p50_us p99_us max_us handover_ms old_exit
# One flood of run $1, with a hand-over halfway when $2 is "handover".
flood() {
    local run=$1 kind=$2 tag="$1-$2"
    local control="$tmp/control-$tag.sock"
    local flags=(--bind 127.0.0.1 --workers "$WORKERS" --relay off --player-timeout 60s
        --control-socket "$control")
    "$bin/rabid-punch" --port 0 "${flags[@]}" --log-file "$tmp/old-$tag.log" 2>"$tmp/old-$tag.err" &
    local old=$!
    pids+=("$old")
    local line
    line=$(wait_line "$tmp/old-$tag.err" 'listening on') || {
        echo "handover.sh: the server did not start:" >&2; cat "$tmp/old-$tag.err" >&2; exit 1; }
    local port
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' <<<"$line")
    "$bin/rabid-flood" ping --target "127.0.0.1:$port" --sessions 1000 --players 4 \
        --rate "$RATE" --duration "$DURATION" --warmup 1 --timeout-ms 5000 --json \
        >"$tmp/flood-$tag.json" 2>"$tmp/flood-$tag.err" &
    local flood=$!
    pids+=("$flood")
    local old_exit=- took=-
    if [[ $kind == handover ]]; then
        # Halfway through the window: the flood joins its players first (about a second),
        # then warms up for one.
        sleep $((2 + DURATION / 2))
        "$bin/rabid-punch" --port "$port" "${flags[@]}" --takeover \
            --log-file "$tmp/new-$tag.log" 2>"$tmp/new-$tag.err" &
        local new=$!
        pids+=("$new")
        old_exit=0
        wait "$old" || old_exit=$?
        wait "$flood" || true
        took=$(sed -n 's/.*took over from pid [0-9]* in \([0-9]*\) ms.*/\1/p' "$tmp/new-$tag.err" | head -n 1)
        kill "$new" 2>/dev/null; wait "$new" 2>/dev/null || true
    else
        wait "$flood" || true
        kill "$old" 2>/dev/null; wait "$old" 2>/dev/null || true
    fi
    local out="$tmp/flood-$tag.json"
    local sent
    sent=$(field "$out" sent)
    [[ -n $sent ]] || { echo "handover.sh: no result in run $tag:" >&2; cat "$tmp/flood-$tag.err" >&2; exit 1; }
    printf '%4s %-9s %9s %9s %5s %6s %8s %8s %9s %12s %9s\n' "$run" "$kind" "$sent" \
        "$(field "$out" replies)" "$(field "$out" lost)" "$(field "$out" wrong)" \
        "$(field "$out" p50_us)" "$(field "$out" p99_us)" "$(field "$out" max_us)" \
        "${took:-?}" "$old_exit"
    echo "$(field "$out" lost) $(field "$out" p99_us) $(field "$out" max_us) ${took/-/0}" >>"$tmp/$kind"
}
for run in $(seq 1 "$RUNS"); do
    flood "$run" plain
    flood "$run" handover
done
for kind in plain handover; do
    printf 'median %-9s lost %s, p99 %s us, longest wait %s us, hand-over %s ms\n' "$kind" \
        "$(cut -d' ' -f1 "$tmp/$kind" | median)" "$(cut -d' ' -f2 "$tmp/$kind" | median)" \
        "$(cut -d' ' -f3 "$tmp/$kind" | median)" "$(cut -d' ' -f4 "$tmp/$kind" | median)"
done
