#!/usr/bin/env bash
# flood.sh: rabid-punch's speed on this machine, as a ratio of this machine's ceiling.
#
# Builds the release binaries, starts rabid-punch on 127.0.0.1 (ephemeral port), runs a
# lifecycle run and a ping flood against it with rabid-flood, then the same ping flood against
# rabid-echo (the yardstick: a batched echo responder, the most any UDP server can answer here),
# and prints a table. The generator is pinned to core 0 and the server (or echo) to core 1 when
# taskset is available and there are two cores or more. Everything it starts is stopped by PID
# on exit. Bounded: about a minute with the defaults (plus the build).
#
# Server CPU is read from /proc/<pid>/stat (utime+stime, all threads) by rabid-flood itself at
# the edges of its measured window (--server-pid), so set-up and warm-up are not counted; the
# script also prints the server's CPU over its whole life as a cross-check.
#
# Only loopback addresses are used. On a bigger box, use --workers = number of cores given to
# the server; for figures beyond one generator core run rabid-flood with --threads, or on
# another machine with --allow-remote (see rabid-flood ping --help).
set -euo pipefail

WORKERS=${WORKERS:-1}
SESSIONS=${SESSIONS:-1000}
PLAYERS=${PLAYERS:-4}
OUTSTANDING=${OUTSTANDING:-64}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-1}
LIFECYCLE_DURATION=${LIFECYCLE_DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
ECHO_THREADS=${ECHO_THREADS:-}
GEN_THREADS=${GEN_THREADS:-1}
BUILD=${BUILD:-1}
# Extra flags for rabid-punch only, split on spaces, e.g. SERVER_EXTRA_ARGS="--metrics 127.0.0.1:0".
SERVER_EXTRA_ARGS=${SERVER_EXTRA_ARGS:-}

usage() {
    cat <<EOF
usage: scripts/flood.sh [options]        (each option also reads the environment variable shown)
  --workers N             rabid-punch --workers (WORKERS, default $WORKERS)
  --sessions N            sessions in the ping flood (SESSIONS, default $SESSIONS)
  --players N             players per session (PLAYERS, default $PLAYERS)
  --outstanding N         pings in flight in total (OUTSTANDING, default $OUTSTANDING)
  --duration S            seconds measured per ping flood (DURATION, default $DURATION)
  --warmup S              seconds of load before measuring (WARMUP, default $WARMUP)
  --lifecycle-duration S  seconds of the lifecycle run, 0 to skip it (LIFECYCLE_DURATION, default $LIFECYCLE_DURATION)
  --concurrency N         sessions in flight in the lifecycle run (CONCURRENCY, default $CONCURRENCY)
  --echo-threads N        rabid-echo threads (ECHO_THREADS, default: same as --workers)
  --gen-threads N         rabid-flood threads (GEN_THREADS, default $GEN_THREADS)
  --no-build              use the binaries already built (BUILD=0)
Environment only: SERVER_EXTRA_ARGS, extra rabid-punch flags (e.g. "--metrics 127.0.0.1:0").
The binaries are taken from \${CARGO_TARGET_DIR:-target}/release.
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) WORKERS=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --players) PLAYERS=$2; shift 2 ;;
        --outstanding) OUTSTANDING=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --lifecycle-duration) LIFECYCLE_DURATION=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --echo-threads) ECHO_THREADS=$2; shift 2 ;;
        --gen-threads) GEN_THREADS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "flood.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
ECHO_THREADS=${ECHO_THREADS:-$WORKERS}

cd "$(dirname "$0")/.."
if [[ $BUILD == 1 ]]; then
    cargo build --release --bins
fi
bin="${CARGO_TARGET_DIR:-target}/release"
for b in rabid-punch rabid-flood rabid-echo; do
    [[ -x $bin/$b ]] || { echo "flood.sh: $bin/$b missing (build first)" >&2; exit 1; }
done

tmp=$(mktemp -d)
started=()
cleanup() {
    local pid
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    gen_pin=(taskset -c 0)
    srv_pin=(taskset -c 1)
    echo "pinning: generator on core 0, server and echo on core 1"
else
    gen_pin=()
    srv_pin=()
    echo "pinning: not pinned (taskset missing or fewer than 2 cores); figures are noisier"
fi

# CPU time (clock ticks) of a process and all its threads: utime + stime, fields 14 and 15 of
# /proc/PID/stat, counted after the command name, which may hold spaces.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
tick_hz=$(getconf CLK_TCK)

# start NAME CMD...: starts CMD on the server core, sets $pid and $port (from "listening on").
start() {
    local name=$1
    shift
    "${srv_pin[@]}" "$@" 2>"$tmp/$name.err" &
    pid=$!
    started+=("$pid")
    port=
    local tries
    for tries in $(seq 1 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/$name.err" | head -n 1)
        [[ -n $port ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "flood.sh: $name exited at start:" >&2
            cat "$tmp/$name.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [[ -z $port ]]; then
        echo "flood.sh: gave up after $tries checks" >&2
        echo "flood.sh: $name did not say 'listening on 127.0.0.1:PORT' within 10 s" >&2
        exit 1
    fi
    cpu_start=$(cpu_ticks "$pid")
}

# stop PID: stops a process this script started, and waits for it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${started[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    started=("${keep[@]}")
}

# flood OUT ARGS...: runs the generator on its core; its JSON line goes to OUT. A run with wrong
# or lost replies still reports; the script then exits 1 at the end.
failed=0
flood() {
    local out=$1
    shift
    if ! "${gen_pin[@]}" "$bin/rabid-flood" "$@" --threads "$GEN_THREADS" --json >"$out" 2>"$out.err"; then
        failed=1
        echo "flood.sh: rabid-flood $1 reported failures:" >&2
        cat "$out.err" >&2
    fi
    [[ -s $out ]] || { echo "flood.sh: rabid-flood $1 gave no result" >&2; cat "$out.err" >&2; exit 1; }
}

# field FILE NAME: a field of a one-line JSON object (numbers and booleans only).
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

ping_load=(--sessions "$SESSIONS" --players "$PLAYERS" --outstanding "$OUTSTANDING"
    --duration "$DURATION" --warmup "$WARMUP")

read -r -a server_extra <<<"$SERVER_EXTRA_ARGS"
echo "rabid-punch: --workers $WORKERS $SERVER_EXTRA_ARGS"
start punch "$bin/rabid-punch" --port 0 --bind 127.0.0.1 --workers "$WORKERS" --log-file "$tmp/punch.log" \
    "${server_extra[@]}"
punch_pid=$pid
if [[ $LIFECYCLE_DURATION != 0 ]]; then
    echo "  lifecycle run: $PLAYERS players, $CONCURRENCY sessions in flight, ${LIFECYCLE_DURATION} s"
    flood "$tmp/life.json" lifecycle --target "127.0.0.1:$port" --players "$PLAYERS" \
        --concurrency "$CONCURRENCY" --duration "$LIFECYCLE_DURATION" --server-pid "$punch_pid"
fi
echo "  ping flood: $SESSIONS sessions x $PLAYERS players, $OUTSTANDING outstanding, ${DURATION} s"
flood "$tmp/punch.json" ping --target "127.0.0.1:$port" "${ping_load[@]}" --server-pid "$punch_pid"
punch_cpu=$(( $(cpu_ticks "$punch_pid") - cpu_start ))
stop "$punch_pid"

echo "rabid-echo: --threads $ECHO_THREADS"
bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print d + w + 60 }')
start echo "$bin/rabid-echo" --port 0 --bind 127.0.0.1 --threads "$ECHO_THREADS" --duration "$bound"
echo_pid=$pid
echo "  ping flood (--echo): same load"
flood "$tmp/echo.json" ping --echo --target "127.0.0.1:$port" "${ping_load[@]}" --server-pid "$echo_pid"
echo_cpu=$(( $(cpu_ticks "$echo_pid") - cpu_start ))
stop "$echo_pid"

echo
printf '%-12s %12s %9s %9s %9s %8s %7s %14s %10s\n' target replies/s p50_us p99_us max_us lost wrong server_us/reply "vs echo"
row() {
    local name=$1 f=$2 ratio=$3
    printf '%-12s %12.0f %9s %9s %9s %8s %7s %14s %10s\n' "$name" \
        "$(field "$f" replies_per_s)" "$(field "$f" p50_us)" "$(field "$f" p99_us)" \
        "$(field "$f" max_us)" "$(field "$f" lost)" "$(field "$f" wrong)" \
        "$(field "$f" server_cpu_us_per_reply)" "$ratio"
}
ratio=$(awk -v a="$(field "$tmp/punch.json" replies_per_s)" -v b="$(field "$tmp/echo.json" replies_per_s)" \
    'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }')
cpu_ratio=$(awk -v a="$(field "$tmp/punch.json" server_cpu_us_per_reply)" \
    -v b="$(field "$tmp/echo.json" server_cpu_us_per_reply)" \
    'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
row rabid-punch "$tmp/punch.json" "$ratio"
row rabid-echo "$tmp/echo.json" "100%"
echo "server CPU per reply, rabid-punch / rabid-echo: $cpu_ratio"
if [[ -s $tmp/life.json ]]; then
    printf 'lifecycles: %.0f/s (%s completed, %s failed), p50 %s us, p99 %s us, server CPU %s us per lifecycle\n' \
        "$(field "$tmp/life.json" lifecycles_per_s)" "$(field "$tmp/life.json" completed)" \
        "$(field "$tmp/life.json" failed)" "$(field "$tmp/life.json" p50_us)" \
        "$(field "$tmp/life.json" p99_us)" "$(field "$tmp/life.json" server_cpu_us_per_lifecycle)"
fi
awk -v p="$punch_cpu" -v e="$echo_cpu" -v hz="$tick_hz" 'BEGIN {
    printf "whole-life server CPU (set-up and warm-up included): rabid-punch %.2f s, rabid-echo %.2f s\n", p / hz, e / hz }'
echo "generator: $GEN_THREADS thread(s); its CPU per reply: rabid-punch run $(field "$tmp/punch.json" gen_cpu_us_per_reply) us, echo run $(field "$tmp/echo.json" gen_cpu_us_per_reply) us"
if [[ $failed != 0 ]]; then
    echo "flood.sh: some replies were wrong or missing (see above)" >&2
    exit 1
fi
