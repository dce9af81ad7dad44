#!/usr/bin/env bash
# flood.sh: rabid-punch's speed on this machine, as a ratio of this machine's ceiling.
#
# Builds the release binaries, starts rabid-punch on 127.0.0.1 (ephemeral port), runs a
# lifecycle run and a ping flood against it with rabid-flood, then the same ping flood against
# rabid-echo (the yardstick: a batched echo responder, the most any UDP server can answer here),
# and prints a table. Then the relay: a rabid-punch with --relay always carries game datagrams
# between the two players of each session (rabid-flood relay), and the same load against
# rabid-echo gives the ceiling for one datagram in, one out; a second table compares them.
# The lifecycle and ping runs use --relay off: they measure the rendezvous, and with the
# default (auto) the generator's quick restarts from the same IPs would be relayed.
# --ping-relay auto runs the ping flood with relay ports instead (as the default deploys: each
# worker then waits on its relay ports as well; give --lifecycle-duration 0 with it).
# The generator is pinned to core 0 and the server (or echo) to core 1 when
# taskset is available and there are two cores or more. Everything it starts is stopped by PID
# on exit. Bounded: about two and a half minutes with the defaults (plus the build), times --runs
# (the lobby runs take about half of it; --lobbies 0 skips them).
#
# Server CPU is read from /proc/<pid>/stat (utime+stime, all threads) by rabid-flood itself at
# the edges of its measured window (--server-pid), so set-up and warm-up are not counted; the
# script also prints the server's CPU over its whole life as a cross-check.
#
# The relay's budgets (--relay-session-rate, --relay-ip-rate, --relay-max-per-ip) are raised far
# above the load: every player is on 127.0.0.x, and budget drops would be measured instead of
# forwarding. Its ports are RELAY_PORT_BASE upwards, two per session per worker (plus slack,
# as sessions spread unevenly over the workers' shares of the pool). The relay floods keep
# RELAY_IN_FLIGHT datagrams in flight in all (by default one per player of RELAY_SESSIONS), so
# --relay-more-sessions N runs N sessions at the same load, to compare the cost per datagram
# with many relay ports; --relay-bytes 1200 gives a game's larger packets (payload bytes/s are
# printed against the echo's); --relay-in-flight 1 times a datagram through an idle server.
#
# The lobby directory's costs (third table): the ping flood, the same with LOBBIES public lobbies
# listed (rabid-flood ping --lobbies: half made public with d:, half announced with a:1:), and the
# same again with a listing flood of LIST_RATE listings/s running beside it (--list-rate: l: and
# padded b:1: pages, alternately, from sockets of their own), each against a fresh rabid-punch.
# The lobbies' host sockets are closed once they are listed (100 000 sockets do not fit under
# the open-files limit), so they never ping: these three servers run with --player-timeout and
# --session-lifetime of 1h instead of keep-alives, and --max-sessions raised above the lobbies
# plus the flood's sessions. All three get the same flags, so the lobbies are the only change.
# Lobby hosts use 127.1.0.0/22 (about 100 sessions per IP, under --max-sessions-per-ip 256)
# and the listing flood 127.2.0.0/20 (one address per socket, within the per-IP send budget).
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
RELAY_SESSIONS=${RELAY_SESSIONS:-32}
RELAY_WINDOW=${RELAY_WINDOW:-1}
RELAY_BYTES=${RELAY_BYTES:-100}
RELAY_DURATION=${RELAY_DURATION:-10}
RELAY_IN_FLIGHT=${RELAY_IN_FLIGHT:-}
RELAY_MORE_SESSIONS=${RELAY_MORE_SESSIONS:-0}
RELAY_PORT_BASE=${RELAY_PORT_BASE:-30000}
RELAY_ONLY=${RELAY_ONLY:-0}
PING_RELAY=${PING_RELAY:-off}
LOBBIES=${LOBBIES:-100000}
LIST_RATE=${LIST_RATE:-5000}
LOBBY_DURATION=${LOBBY_DURATION:-$DURATION}
LOBBIES_ONLY=${LOBBIES_ONLY:-0}
BUILD=${BUILD:-1}
RUNS=${RUNS:-1}
NICE=${NICE:-0}
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
  --relay-sessions N      two-player sessions in the relay flood (RELAY_SESSIONS, default $RELAY_SESSIONS)
  --relay-window N        datagrams in flight per player in the relay flood (RELAY_WINDOW, default $RELAY_WINDOW)
  --relay-bytes N         size of a relayed game datagram, e.g. 1200 for a game's large packets
                          (RELAY_BYTES, default $RELAY_BYTES)
  --relay-in-flight N     datagrams in flight in all in the relay floods, passed from player to
                          player (RELAY_IN_FLIGHT, default: --relay-window x 2 x --relay-sessions;
                          1 times a datagram through an idle server)
  --relay-more-sessions N also run the relay flood and its echo run with N sessions at the same
                          datagrams in flight, and compare the cost per datagram side by side
                          (RELAY_MORE_SESSIONS, default $RELAY_MORE_SESSIONS: skipped)
  --relay-duration S      seconds measured per relay flood, 0 to skip it (RELAY_DURATION, default $RELAY_DURATION)
  --relay-port-base P     first relay port (RELAY_PORT_BASE, default $RELAY_PORT_BASE)
  --relay-only            only the relay flood and its echo run (RELAY_ONLY=1)
  --ping-relay MODE       rabid-punch --relay in the ping flood: off, or auto to wait on relay
                          ports as the default deploys (PING_RELAY, default $PING_RELAY)
  --lobbies N             public lobbies listed in the lobby runs, 0 to skip them (LOBBIES, default $LOBBIES)
  --list-rate R           listings/s of the listing flood in the last lobby run (LIST_RATE, default $LIST_RATE)
  --lobby-duration S      seconds measured per lobby run (LOBBY_DURATION, default: --duration)
  --lobbies-only          only the three lobby runs (LOBBIES_ONLY=1)
  --runs N                repeat everything N times and print medians too (RUNS, default $RUNS)
  --nice N                run generator, server and echo at this nice value, e.g. -10 on a
                          machine busy with other work (needs root for < 0) (NICE, default $NICE)
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
        --relay-sessions) RELAY_SESSIONS=$2; shift 2 ;;
        --relay-window) RELAY_WINDOW=$2; shift 2 ;;
        --relay-bytes) RELAY_BYTES=$2; shift 2 ;;
        --relay-duration) RELAY_DURATION=$2; shift 2 ;;
        --relay-in-flight) RELAY_IN_FLIGHT=$2; shift 2 ;;
        --relay-more-sessions) RELAY_MORE_SESSIONS=$2; shift 2 ;;
        --relay-port-base) RELAY_PORT_BASE=$2; shift 2 ;;
        --relay-only) RELAY_ONLY=1; shift ;;
        --ping-relay) PING_RELAY=$2; shift 2 ;;
        --lobbies) LOBBIES=$2; shift 2 ;;
        --list-rate) LIST_RATE=$2; shift 2 ;;
        --lobby-duration) LOBBY_DURATION=$2; shift 2 ;;
        --lobbies-only) LOBBIES_ONLY=1; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --nice) NICE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "flood.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
ECHO_THREADS=${ECHO_THREADS:-$WORKERS}
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || { echo "flood.sh: --runs must be 1..99" >&2; exit 2; }
if ! [[ $NICE =~ ^-?[0-9]+$ ]] || ((NICE < -20 || NICE > 19)); then
    echo "flood.sh: --nice must be -20..19" >&2
    exit 2
fi

if [[ $RELAY_ONLY == 1 && $RELAY_DURATION == 0 ]]; then
    echo "flood.sh: --relay-only with --relay-duration 0 leaves nothing to run" >&2
    exit 2
fi
[[ $RELAY_SESSIONS =~ ^[1-9][0-9]*$ && $WORKERS =~ ^[1-9][0-9]*$ && $RELAY_PORT_BASE =~ ^[1-9][0-9]*$ ]] || {
    echo "flood.sh: --relay-sessions, --workers and --relay-port-base must be positive integers" >&2
    exit 2
}
[[ $RELAY_MORE_SESSIONS =~ ^[0-9]+$ && ( -z $RELAY_IN_FLIGHT || $RELAY_IN_FLIGHT =~ ^[1-9][0-9]*$ ) ]] || {
    echo "flood.sh: --relay-more-sessions must be 0 or more, --relay-in-flight a positive integer" >&2
    exit 2
}
[[ $PING_RELAY == off || $PING_RELAY == auto ]] || {
    echo "flood.sh: --ping-relay must be off or auto" >&2
    exit 2
}
# The same load for both session counts: the datagrams in flight of the first.
RELAY_IN_FLIGHT=${RELAY_IN_FLIGHT:-$((RELAY_WINDOW * 2 * RELAY_SESSIONS))}
most_sessions=$((RELAY_MORE_SESSIONS > RELAY_SESSIONS ? RELAY_MORE_SESSIONS : RELAY_SESSIONS))
relay_last_port=$((RELAY_PORT_BASE + 2 * most_sessions * WORKERS + 63))
if ((relay_last_port > 65535)); then
    echo "flood.sh: relay ports $RELAY_PORT_BASE-$relay_last_port do not fit below 65536" >&2
    exit 2
fi
if [[ $RELAY_ONLY == 1 ]]; then
    LIFECYCLE_DURATION=0
    LOBBIES=0
fi
[[ $LOBBIES =~ ^[0-9]+$ && $LIST_RATE =~ ^[1-9][0-9]*$ && $SESSIONS =~ ^[1-9][0-9]*$ ]] || {
    echo "flood.sh: --lobbies must be 0 or more, --list-rate and --sessions positive integers" >&2
    exit 2
}
if [[ $LOBBIES_ONLY == 1 ]]; then
    if [[ $LOBBIES == 0 ]]; then
        echo "flood.sh: --lobbies-only needs --lobbies above 0 and no --relay-only" >&2
        exit 2
    fi
    LIFECYCLE_DURATION=0
    RELAY_DURATION=0
fi
# The ping flood and its echo run (the first table), unless only one other part was asked for.
PING_TABLE=1
if [[ $RELAY_ONLY == 1 || $LOBBIES_ONLY == 1 ]]; then
    PING_TABLE=0
fi

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
if [[ $NICE != 0 ]]; then
    gen_pin=(nice -n "$NICE" "${gen_pin[@]}")
    srv_pin=(nice -n "$NICE" "${srv_pin[@]}")
    echo "priority: nice $NICE for the generator, the server and the echo"
fi

# CPU time (clock ticks) of a process and all its threads: utime + stime, fields 14 and 15 of
# /proc/PID/stat, counted after the command name, which may hold spaces.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
tick_hz=$(getconf CLK_TCK)

# start NAME CMD...: starts CMD on the server core, sets $pid and $port (from "listening on").
start() {
    local name=$1
    shift
    # Emptied here, not only by the redirection below: that happens in the background child,
    # and the loop could otherwise read the previous server's port before it does.
    : >"$tmp/$name.err"
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

relay_load=(--window "$RELAY_WINDOW" --in-flight "$RELAY_IN_FLIGHT" --bytes "$RELAY_BYTES"
    --duration "$RELAY_DURATION" --warmup "$WARMUP")

read -r -a server_extra <<<"$SERVER_EXTRA_ARGS"
# With relay ports in the ping flood, the relay floods' range (free above RELAY_PORT_BASE).
ping_relay_ports=()
if [[ $PING_RELAY != off ]]; then
    ping_relay_ports=(--relay-ports "$RELAY_PORT_BASE-$relay_last_port")
fi

# one_run N: the lifecycle run and the ping flood against a fresh rabid-punch, then the same
# ping flood against a fresh rabid-echo; then the relay flood against a fresh rabid-punch with
# --relay always and the same load against a fresh rabid-echo; results in
# $tmp/{life,punch,echo,relay,relayecho}-N.json.
punch_ticks=0
echo_ticks=0
relay_punch_ticks=0
relay_echo_ticks=0
one_run() {
    local n=$1
    echo "run $n of $RUNS"
    local punch_pid
    if [[ $PING_TABLE == 1 || $LIFECYCLE_DURATION != 0 ]]; then
        echo "  rabid-punch --workers $WORKERS $SERVER_EXTRA_ARGS"
    fi
    # Each measurement gets a fresh server: state left by one (finished sessions, players
    # timing out, grown tables) would weigh on the next.
    if [[ $LIFECYCLE_DURATION != 0 ]]; then
        start punch "$bin/rabid-punch" --port 0 --bind 127.0.0.1 --workers "$WORKERS" \
            --relay off --log-file "$tmp/punch.log" "${server_extra[@]}"
        punch_pid=$pid
        echo "    lifecycle run (--relay off): $PLAYERS players, $CONCURRENCY sessions in flight, ${LIFECYCLE_DURATION} s"
        flood "$tmp/life-$n.json" lifecycle --target "127.0.0.1:$port" --players "$PLAYERS" \
            --concurrency "$CONCURRENCY" --duration "$LIFECYCLE_DURATION" --server-pid "$punch_pid"
        punch_ticks=$((punch_ticks + $(cpu_ticks "$punch_pid") - cpu_start))
        stop "$punch_pid"
    fi
    local bound echo_pid
    if [[ $PING_TABLE == 1 ]]; then
        echo "    rabid-punch --relay $PING_RELAY"
        start punch "$bin/rabid-punch" --port 0 --bind 127.0.0.1 --workers "$WORKERS" \
            --relay "$PING_RELAY" "${ping_relay_ports[@]}" --log-file "$tmp/punch.log" "${server_extra[@]}"
        punch_pid=$pid
        echo "    ping flood: $SESSIONS sessions x $PLAYERS players, $OUTSTANDING outstanding, ${DURATION} s"
        flood "$tmp/punch-$n.json" ping --target "127.0.0.1:$port" "${ping_load[@]}" --server-pid "$punch_pid"
        punch_ticks=$((punch_ticks + $(cpu_ticks "$punch_pid") - cpu_start))
        stop "$punch_pid"

        echo "  rabid-echo --threads $ECHO_THREADS"
        bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print d + w + 60 }')
        start echo "$bin/rabid-echo" --port 0 --bind 127.0.0.1 --threads "$ECHO_THREADS" --duration "$bound"
        echo_pid=$pid
        echo "    ping flood (--echo): same load"
        flood "$tmp/echo-$n.json" ping --echo --target "127.0.0.1:$port" "${ping_load[@]}" --server-pid "$echo_pid"
        echo_ticks=$((echo_ticks + $(cpu_ticks "$echo_pid") - cpu_start))
        stop "$echo_pid"
    fi

    if [[ $RELAY_DURATION != 0 ]]; then
        relay_run "$n" relay "$RELAY_SESSIONS"
        if [[ $RELAY_MORE_SESSIONS != 0 ]]; then
            relay_run "$n" relaymore "$RELAY_MORE_SESSIONS"
        fi
    fi

    if [[ $LOBBIES != 0 ]]; then
        lobby_run "$n"
    fi
}

# relay_run N NAME SESSIONS: the relay flood of SESSIONS sessions against a fresh rabid-punch
# with --relay always, then the same load against a fresh rabid-echo; results in
# $tmp/{NAME,NAMEecho}-N.json.
relay_run() {
    local n=$1 name=$2 sessions=$3 punch_pid echo_pid bound
    echo "  rabid-punch --workers $WORKERS --relay always --relay-ports $RELAY_PORT_BASE-$relay_last_port $SERVER_EXTRA_ARGS"
    start punch "$bin/rabid-punch" --port 0 --bind 127.0.0.1 --workers "$WORKERS" \
        --relay always --relay-ports "$RELAY_PORT_BASE-$relay_last_port" \
        --relay-session-rate 1000000000 --relay-ip-rate 1000000000 --relay-max-per-ip 100000 \
        --log-file "$tmp/punch.log" "${server_extra[@]}"
    punch_pid=$pid
    echo "    relay flood: $sessions sessions x 2 players, $RELAY_IN_FLIGHT in flight in all (at most $RELAY_WINDOW per player), $RELAY_BYTES bytes, ${RELAY_DURATION} s"
    flood "$tmp/$name-$n.json" relay --target "127.0.0.1:$port" --sessions "$sessions" "${relay_load[@]}" --server-pid "$punch_pid"
    relay_punch_ticks=$((relay_punch_ticks + $(cpu_ticks "$punch_pid") - cpu_start))
    stop "$punch_pid"

    echo "  rabid-echo --threads $ECHO_THREADS"
    bound=$(awk -v d="$RELAY_DURATION" -v w="$WARMUP" 'BEGIN { print d + w + 60 }')
    start echo "$bin/rabid-echo" --port 0 --bind 127.0.0.1 --threads "$ECHO_THREADS" --duration "$bound"
    echo_pid=$pid
    echo "    relay flood (--echo): same load"
    flood "$tmp/${name}echo-$n.json" relay --echo --target "127.0.0.1:$port" --sessions "$sessions" "${relay_load[@]}" --server-pid "$echo_pid"
    relay_echo_ticks=$((relay_echo_ticks + $(cpu_ticks "$echo_pid") - cpu_start))
    stop "$echo_pid"
}

# lobby_run N: the ping flood against three fresh rabid-punch with the same flags: plain, with
# $LOBBIES public lobbies listed, and with them and a listing flood; results in
# $tmp/{plain,lobbies,listing}-N.json.
lobby_ticks=0
lobby_run() {
    local n=$1 case srv_pid
    local lobby_server=(--workers "$WORKERS" --relay off --max-sessions "$((LOBBIES + SESSIONS + 1000))"
        --player-timeout 1h --session-lifetime 1h)
    local lobby_load=(--sessions "$SESSIONS" --players "$PLAYERS" --outstanding "$OUTSTANDING"
        --duration "$LOBBY_DURATION" --warmup "$WARMUP")
    echo "  rabid-punch ${lobby_server[*]} $SERVER_EXTRA_ARGS (fresh for each of the three)"
    # The order turns from run to run, so a drift of the machine does not favour one case.
    local order=(plain lobbies listing)
    local first=$(((n - 1) % 3))
    order=("${order[@]:first}" "${order[@]:0:first}")
    for case in "${order[@]}"; do
        [[ -r /proc/loadavg ]] && echo "    (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        start punch "$bin/rabid-punch" --port 0 --bind 127.0.0.1 "${lobby_server[@]}" \
            --log-file "$tmp/punch.log" "${server_extra[@]}"
        srv_pid=$pid
        local extra=()
        case $case in
            plain) echo "    ping flood: $SESSIONS sessions x $PLAYERS players, $OUTSTANDING outstanding, ${LOBBY_DURATION} s" ;;
            lobbies)
                extra=(--lobbies "$LOBBIES")
                echo "    the same with $LOBBIES public lobbies listed" ;;
            listing)
                extra=(--lobbies "$LOBBIES" --list-rate "$LIST_RATE")
                echo "    the same with $LOBBIES lobbies and a listing flood of $LIST_RATE/s" ;;
        esac
        flood "$tmp/$case-$n.json" ping --target "127.0.0.1:$port" "${lobby_load[@]}" "${extra[@]}" \
            --server-pid "$srv_pid"
        lobby_ticks=$((lobby_ticks + $(cpu_ticks "$srv_pid") - cpu_start))
        stop "$srv_pid"
    done
}
for n in $(seq 1 "$RUNS"); do
    one_run "$n"
done

# values NAME PREFIX: field NAME of every run's PREFIX-N.json, one a line.
values() {
    local n
    for n in $(seq 1 "$RUNS"); do
        field "$tmp/$2-$n.json" "$1"
    done
}
# median: of the numbers on standard input.
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio A B FORMAT SCALE: A / B * SCALE, or n/a.
ratio() { awk -v a="$1" -v b="$2" -v f="$3" -v k="$4" 'BEGIN { if (b > 0) printf f, k * a / b; else print "n/a" }'; }

fmt='%-18s %11s %8s %8s %9s %6s %6s %12s %9s %10s\n'
# table P E RATE CPU LABEL UNIT: one row per run for rabid-punch (results $tmp/P-N.json, named
# LABEL) and rabid-echo (E-N.json), with RATE (per second) and CPU (server us per unit) fields
# of their JSON, then medians and the median of the runs' ratios.
table() {
    local pp=$1 ee=$2 rate=$3 cpu=$4 label=$5 unit=$6 n p e t
    echo
    # shellcheck disable=SC2059 # the format is the constant above
    printf "$fmt" target "$unit/s" p50_us p99_us max_us lost wrong "srv_us/$unit" vs_echo srv_cpu_x
    row() {
        local name=$1 f=$2 vs=$3 cpu_x=$4
        # shellcheck disable=SC2059
        printf "$fmt" "$name" "$(printf '%.0f' "$(field "$f" "$rate")")" "$(field "$f" p50_us)" \
            "$(field "$f" p99_us)" "$(field "$f" max_us)" "$(field "$f" lost)" "$(field "$f" wrong)" \
            "$(field "$f" "$cpu")" "$vs" "$cpu_x"
    }
    for n in $(seq 1 "$RUNS"); do
        p="$tmp/$pp-$n.json"
        e="$tmp/$ee-$n.json"
        row "$label #$n" "$p" \
            "$(ratio "$(field "$p" "$rate")" "$(field "$e" "$rate")" '%.1f%%' 100)" \
            "$(ratio "$(field "$p" "$cpu")" "$(field "$e" "$cpu")" '%.2fx' 1)"
        row "rabid-echo #$n" "$e" "100%" "1x"
    done
    if [[ $RUNS -gt 1 ]]; then
        for t in "$pp" "$ee"; do
            # shellcheck disable=SC2059
            printf "$fmt" "median $t" "$(printf '%.0f' "$(values "$rate" "$t" | median)")" \
                "$(values p50_us "$t" | median)" "$(values p99_us "$t" | median)" \
                "$(values max_us "$t" | median)" "$(values lost "$t" | awk '{ s += $1 } END { print s }')" \
                "$(values wrong "$t" | awk '{ s += $1 } END { print s }')" \
                "$(values "$cpu" "$t" | median)" "" ""
        done
        echo "median of the runs' ratios ($label): $unit/s $(for n in $(seq 1 "$RUNS"); do
            ratio "$(field "$tmp/$pp-$n.json" "$rate")" "$(field "$tmp/$ee-$n.json" "$rate")" '%.2f\n' 100
        done | median)% of the echo's, server CPU per $unit $(for n in $(seq 1 "$RUNS"); do
            ratio "$(field "$tmp/$pp-$n.json" "$cpu")" "$(field "$tmp/$ee-$n.json" "$cpu")" '%.3f\n' 1
        done | median)x the echo's"
    fi
}
if [[ $PING_TABLE == 1 ]]; then
    table punch echo replies_per_s server_cpu_us_per_reply rabid-punch reply
fi
# payload NAME: "X MB/s" of payload, the median over the runs of NAME.
payload() { values bytes_per_s "$1" | median | awk '{ printf "%.1f MB/s", $1 / 1e6 }'; }
# run_ratios A B FIELD FORMAT: the median over the runs of A's FIELD / B's FIELD.
run_ratios() {
    local n
    for n in $(seq 1 "$RUNS"); do
        ratio "$(field "$tmp/$1-$n.json" "$3")" "$(field "$tmp/$2-$n.json" "$3")" "$4\n" 1
    done | median
}
if [[ $RELAY_DURATION != 0 ]]; then
    table relay relayecho datagrams_per_s server_cpu_us_per_datagram "punch relay" dgram
    echo "payload ($RELAY_BYTES-byte datagrams), medians: relay $(payload relay), echo $(payload relayecho); the relay's bytes/s are $(run_ratios relay relayecho bytes_per_s '%.3f') x the echo's (median of the runs' ratios)"
    echo "relayed datagram's server CPU by thread kind (median us): workers $(values workers_cpu_us_per_datagram relay | median), receiver $(values receiver_cpu_us_per_datagram relay | median), others $(values others_cpu_us_per_datagram relay | median)"
    if [[ $RELAY_MORE_SESSIONS != 0 ]]; then
        table relaymore relaymoreecho datagrams_per_s server_cpu_us_per_datagram "relay $RELAY_MORE_SESSIONS s" dgram
        echo
        echo "$RELAY_SESSIONS vs $RELAY_MORE_SESSIONS sessions ($((2 * RELAY_SESSIONS)) vs $((2 * RELAY_MORE_SESSIONS)) relay ports), $RELAY_IN_FLIGHT datagrams in flight either way:"
        echo "  relay server CPU per datagram, median: $(values server_cpu_us_per_datagram relay | median) us vs $(values server_cpu_us_per_datagram relaymore | median) us; per run, $RELAY_MORE_SESSIONS / $RELAY_SESSIONS sessions: $(run_ratios relaymore relay server_cpu_us_per_datagram '%.3f')x (median)"
        echo "  echo server CPU per datagram, median: $(values server_cpu_us_per_datagram relayecho | median) us vs $(values server_cpu_us_per_datagram relaymoreecho | median) us; per run: $(run_ratios relaymoreecho relayecho server_cpu_us_per_datagram '%.3f')x (median)"
        echo "  relay datagrams/s, median: $(values datagrams_per_s relay | median | xargs printf '%.0f') vs $(values datagrams_per_s relaymore | median | xargs printf '%.0f')"
    fi
fi

# lobby_table: the third table, the ping flood plain, with the lobbies listed, and with the
# listing flood too; each against its run's plain flood (ratios of replies/s and of server CPU
# per reply), then medians.
lobby_table() {
    local lfmt='%-16s %10s %7s %7s %5s %5s %12s %8s %8s %7s %7s %6s %6s\n' n c f p
    echo
    echo "the lobby directory's costs: the ping flood plain, with $LOBBIES public lobbies listed, and with them and a listing flood of $LIST_RATE/s"
    # shellcheck disable=SC2059 # the format is the constant above
    printf "$lfmt" case reply/s p50_us p99_us lost wrong srv_us/reply srv_cpu vs_plain cpu_x list/s unans lwrong
    lrow() {
        local name=$1 f=$2 base=$3
        # shellcheck disable=SC2059
        printf "$lfmt" "$name" "$(printf '%.0f' "$(field "$f" replies_per_s)")" "$(field "$f" p50_us)" \
            "$(field "$f" p99_us)" "$(field "$f" lost)" "$(field "$f" wrong)" \
            "$(field "$f" server_cpu_us_per_reply)" \
            "$(ratio "$(field "$f" server_cpu_s)" "$(field "$f" window_s)" '%.0f%%' 100)" \
            "$(ratio "$(field "$f" replies_per_s)" "$(field "$base" replies_per_s)" '%.1f%%' 100)" \
            "$(ratio "$(field "$f" server_cpu_us_per_reply)" "$(field "$base" server_cpu_us_per_reply)" '%.2fx' 1)" \
            "$(field "$f" list_replies_per_s | awk '{ if ($1 == "null") print "-"; else printf "%.0f", $1 }')" \
            "$(field "$f" list_unanswered | awk '{ print ($1 == "null" ? "-" : $1) }')" \
            "$(field "$f" list_wrong | awk '{ print ($1 == "null" ? "-" : $1) }')"
    }
    for n in $(seq 1 "$RUNS"); do
        for c in plain lobbies listing; do
            lrow "$c #$n" "$tmp/$c-$n.json" "$tmp/plain-$n.json"
        done
    done
    if [[ $RUNS -gt 1 ]]; then
        for c in plain lobbies listing; do
            # shellcheck disable=SC2059
            printf "$lfmt" "median $c" "$(printf '%.0f' "$(values replies_per_s "$c" | median)")" \
                "$(values p50_us "$c" | median)" "$(values p99_us "$c" | median)" \
                "$(values lost "$c" | awk '{ s += $1 } END { print s }')" \
                "$(values wrong "$c" | awk '{ s += $1 } END { print s }')" \
                "$(values server_cpu_us_per_reply "$c" | median)" "" \
                "$(for n in $(seq 1 "$RUNS"); do
                    p="$tmp/plain-$n.json"
                    f="$tmp/$c-$n.json"
                    ratio "$(field "$f" replies_per_s)" "$(field "$p" replies_per_s)" '%.2f\n' 100
                done | median | xargs printf '%.1f%%')" \
                "$(for n in $(seq 1 "$RUNS"); do
                    p="$tmp/plain-$n.json"
                    f="$tmp/$c-$n.json"
                    ratio "$(field "$f" server_cpu_us_per_reply)" "$(field "$p" server_cpu_us_per_reply)" '%.3f\n' 1
                done | median | xargs printf '%.2fx')" \
                "$(values list_replies_per_s "$c" | grep -v null | median | awk '{ if ($1 == "n/a") print "-"; else printf "%.0f", $1 }')" \
                "$(values list_unanswered "$c" | awk '$1 != "null" { s += $1; k = 1 } END { print (k ? s : "-") }')" \
                "$(values list_wrong "$c" | awk '$1 != "null" { s += $1; k = 1 } END { print (k ? s : "-") }')"
        done
        echo "(median rows: vs_plain and cpu_x are the medians of each run's ratios)"
    fi
    echo "lobbies listed in (s, per run): $(for n in $(seq 1 "$RUNS"); do field "$tmp/lobbies-$n.json" lobby_setup_s; done | tr '\n' ' ')"
    echo "srv_us/reply is the server's CPU over the window per ping reply: in the listing run it includes the listings' cost"
}
if [[ $LOBBIES != 0 ]]; then
    lobby_table
fi
echo
if [[ $LIFECYCLE_DURATION != 0 ]]; then
    for n in $(seq 1 "$RUNS"); do
        l="$tmp/life-$n.json"
        printf 'lifecycles #%s: %.0f/s (%s completed, %s failed), p50 %s us, p99 %s us, server CPU %s us per lifecycle\n' \
            "$n" "$(field "$l" lifecycles_per_s)" "$(field "$l" completed)" "$(field "$l" failed)" \
            "$(field "$l" p50_us)" "$(field "$l" p99_us)" "$(field "$l" server_cpu_us_per_lifecycle)"
    done
    if [[ $RUNS -gt 1 ]]; then
        printf 'lifecycles median: %.0f/s, server CPU %s us per lifecycle\n' \
            "$(values lifecycles_per_s life | median)" "$(values server_cpu_us_per_lifecycle life | median)"
    fi
fi
if [[ $PING_TABLE == 1 ]]; then
    awk -v p="$punch_ticks" -v e="$echo_ticks" -v hz="$tick_hz" 'BEGIN {
        printf "whole-life server CPU (set-up and warm-up included): rabid-punch %.2f s, rabid-echo %.2f s\n", p / hz, e / hz }'
    echo "generator ($GEN_THREADS thread(s)) CPU per reply, median: rabid-punch runs $(values gen_cpu_us_per_reply punch | median) us, echo runs $(values gen_cpu_us_per_reply echo | median) us (busy-polling included)"
fi
if [[ $RELAY_DURATION != 0 ]]; then
    awk -v p="$relay_punch_ticks" -v e="$relay_echo_ticks" -v hz="$tick_hz" 'BEGIN {
        printf "whole-life server CPU of the relay runs (set-up and warm-up included): rabid-punch %.2f s, rabid-echo %.2f s\n", p / hz, e / hz }'
    echo "generator ($GEN_THREADS thread(s)) CPU per datagram, median: relay runs $(values gen_cpu_us_per_datagram relay | median) us, echo runs $(values gen_cpu_us_per_datagram relayecho | median) us (busy-polling included)"
fi
if [[ $LOBBIES != 0 ]]; then
    awk -v p="$lobby_ticks" -v hz="$tick_hz" 'BEGIN {
        printf "whole-life server CPU of the lobby runs (lobby set-up and warm-up included): %.2f s\n", p / hz }'
    echo "generator ($GEN_THREADS ping thread(s), plus the listing thread in the listing run) CPU per reply, median: plain $(values gen_cpu_us_per_reply plain | median) us, lobbies $(values gen_cpu_us_per_reply lobbies | median) us, listing $(values gen_cpu_us_per_reply listing | median) us"
fi
if [[ $failed != 0 ]]; then
    echo "flood.sh: some replies were wrong or missing (see above)" >&2
    exit 1
fi
