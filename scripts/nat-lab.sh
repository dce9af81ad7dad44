#!/usr/bin/env bash
# nat-lab.sh: real hole punching through real (Linux nftables) NATs, in network namespaces.
#
# Builds, inside network namespaces it creates and always deletes (on success, failure,
# Ctrl-C or TERM):
#   - a public network: a bridge in namespace <prefix>-inet, 203.0.113.0/24 (documentation range);
#   - the rabid-punch server in <prefix>-srv at 203.0.113.7:7777, and two more on 7778 and
#     7779 that serve only the NAT check (so the main server sees only the lab's sessions);
#   - one home per player. Kind `none`: the player sits on the public net itself
#     (203.0.113.50+k). Kind `cone` or `symmetric`: the player (192.0.2.8k+2/29) sits behind
#     its own router namespace (WAN 203.0.113.100+k) doing nftables masquerade:
#       cone       plain `masquerade`: the port is kept when free, the same mapping for every
#                  destination (endpoint-independent mapping);
#       symmetric  `masquerade random`: a different port for every destination.
#     Each router, like a home router's firewall, drops new connections arriving on its WAN
#     side. Without that, a peer's greeting that reaches the router before our own first
#     packet to that peer is accepted for the router itself and leaves a conntrack entry;
#     masquerade then sees the port as taken and maps our greetings to that peer to another
#     port, and two cone NATs fail with unreachable_self (measured: remove the rule and
#     cone,cone fails every time).
# Before the runs it checks each NAT kind in use from one fixed local port against two
# servers (7778 and 7779): cone must show the same port twice, symmetric two different ones.
# Then every group runs at once, each its own session: the first player hosts and starts when
# all are listed, all punch, then exchange a payload (`--payload`: clients send, the host
# echoes). With `--retry`, a group that fails runs once more at once, in a new session from the
# same homes, as a game retries after a failed punch; with `--client-retry` the clients retry
# by themselves instead (`rabid-punch client --retry`: the same session name again). With
# `--rematch`, a group that punched plays a second game, in a new session, once its first
# ended. It prints a table, and one machine-readable RESULT line per group (its last attempt).
#
# Relay mode (`--relay`): the server on 7777 runs with `--relay MODE --relay-ports
# 40000-40199` (the NAT check's servers always with `--relay off`). A relayed session's start
# message lists every peer at 203.0.113.7:<that peer's relay port>, so the unchanged client
# punches to the server, which forwards the peer phase and the payload.
#   off     as without a relay: a group with a symmetric NAT fails, the others punch and
#           their payload goes peer to peer (via=direct).
#   always  every group punches, symmetric NATs included, and every payload goes through the
#           server (via=server): the host hears each client from 203.0.113.7:<relay port>,
#           not from the client's NAT, and each client hears the host from there too.
#   auto    the server relays a start of the same players (names and IPs) as a start shortly
#           before (`--relay-auto-window`, 60 s; `--auto-window DUR` sets it): a first attempt
#           is direct (as with off), a retry (`--retry`, `--client-retry`) is relayed, so with
#           a retry every group ends punched, symmetric ones on their second attempt via=server.
#           A rematch (`--rematch`) whose start comes after the window is direct.
# After the runs the server on 7777 is stopped and its final stats line is printed as
# `SERVER stats: ...` (relay counters included when the server has them).
#
# Usage: scripts/nat-lab.sh [--bin PATH] [--relay MODE] [--retry | --client-retry] [--rematch]
#                           [--auto-window DUR] [--timeout SECS] [--keep] [GROUP...]
#   GROUP    NAT kinds of the players, host first, comma-separated, 2-4 players:
#            e.g. cone,cone  none,cone,symmetric. Default: none,none none,cone cone,cone
#            cone,cone,cone,cone none,symmetric cone,symmetric symmetric,symmetric
#   --bin    the rabid-punch binary (default: $RABID_PUNCH_BIN, else the newest of
#            ${CARGO_TARGET_DIR:-target}/{release,debug}/rabid-punch)
#   --relay  off, auto or always (default off): the main server's relay mode, see above
#   --retry  run a group that fails once more
#   --client-retry  give every player `--retry`: the client tries once more by itself
#   --rematch  a group that punched plays a second game once its first ended
#   --auto-window  the main server's --relay-auto-window (e.g. 5s)
#   --timeout  bound on each client run, seconds (default 60)
#   --keep   keep the logs directory (printed at the end)
# Needs root, iproute2 with `ip netns`, and nft. Installs nothing. Namespaces are named
# rpl<pid of this script>-*, so runs in parallel do not clash.
# Exit: 0 when every group ended as expected (punched, unless a player is behind a symmetric
# NAT and the session is not relayed; a punched group's payload through the server exactly
# when relayed), 1 when one did not or the NAT check failed, 2 on bad usage (or a binary
# without relay support asked to relay), 3 when a tool is missing.

set -uo pipefail

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

BIN="${RABID_PUNCH_BIN:-}"
TIMEOUT=60
RELAY=off
RETRY=""
CLIENT_RETRY=""
REMATCH=""
AUTO_WINDOW=""
KEEP=""
LAB_GROUPS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
        --timeout) TIMEOUT="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
        --relay) RELAY="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
        --retry) RETRY=1; shift ;;
        --client-retry) CLIENT_RETRY=1; shift ;;
        --rematch) REMATCH=1; shift ;;
        --auto-window) AUTO_WINDOW="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "nat-lab: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) LAB_GROUPS+=("$1"); shift ;;
    esac
done
if [ ${#LAB_GROUPS[@]} -eq 0 ]; then
    # shellcheck disable=SC2054 # the commas are inside each group, not between them
    LAB_GROUPS=(none,none none,cone cone,cone cone,cone,cone,cone none,symmetric cone,symmetric symmetric,symmetric)
fi
case "$TIMEOUT" in ''|*[!0-9]*) echo "nat-lab: --timeout takes whole seconds" >&2; exit 2 ;; esac
case "$RELAY" in off|auto|always) ;; *) echo "nat-lab: --relay takes off, auto or always" >&2; exit 2 ;; esac
if [ -n "$RETRY" ] && [ -n "$CLIENT_RETRY" ]; then echo "nat-lab: --retry or --client-retry, not both" >&2; exit 2; fi

# ---- checks: tools, privileges, groups, binary --------------------------------------------
# `wait -n -p` (bash 5.1) reaps the players one at a time, in the order they end.
if [ "${BASH_VERSINFO[0]}" -lt 5 ] || { [ "${BASH_VERSINFO[0]}" = 5 ] && [ "${BASH_VERSINFO[1]}" -lt 1 ]; }; then
    echo "nat-lab: needs bash 5.1 or later" >&2; exit 3
fi
if [ "$(id -u)" != 0 ]; then echo "nat-lab: needs root (network namespaces, nftables)" >&2; exit 3; fi
for tool in ip nft timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        case "$tool" in
            nft) echo "nat-lab: nft is missing: install nftables (Debian: apt-get install nftables)" >&2 ;;
            *) echo "nat-lab: $tool is missing" >&2 ;;
        esac
        exit 3
    fi
done
if ! ip netns list >/dev/null 2>&1; then echo "nat-lab: 'ip netns' does not work here" >&2; exit 3; fi

players=0
for group in "${LAB_GROUPS[@]}"; do
    IFS=, read -r -a kinds <<<"$group"
    if [ ${#kinds[@]} -lt 2 ] || [ ${#kinds[@]} -gt 4 ]; then
        echo "nat-lab: group '$group' must have 2 to 4 players" >&2; exit 2
    fi
    for kind in "${kinds[@]}"; do
        case "$kind" in none|cone|symmetric) ;; *) echo "nat-lab: unknown NAT kind '$kind' (none, cone, symmetric)" >&2; exit 2 ;; esac
    done
    players=$((players + ${#kinds[@]}))
done
if [ "$players" -gt 30 ]; then echo "nat-lab: at most 30 players in all" >&2; exit 2; fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$BIN" ]; then
    target="${CARGO_TARGET_DIR:-$ROOT/target}"
    BIN="$(ls -t "$target/release/rabid-punch" "$target/debug/rabid-punch" 2>/dev/null | head -n 1)"
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "nat-lab: no rabid-punch binary: build it (cargo build) or pass --bin PATH" >&2; exit 2
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
# A binary from before the relay has no --relay flag: it can still run the lab without one.
RELAY_ARGS=()
RELAY_OFF_ARGS=()
# (Not `--help | grep -q`: with pipefail, grep's early exit can fail the pipeline by SIGPIPE.)
if [[ "$("$BIN" --help 2>/dev/null)" == *--relay-ports* ]]; then
    RELAY_ARGS=(--relay "$RELAY" --relay-ports 40000-40199)
    [ -n "$AUTO_WINDOW" ] && RELAY_ARGS+=(--relay-auto-window "$AUTO_WINDOW")
    RELAY_OFF_ARGS=(--relay off)
elif [ "$RELAY" != off ]; then
    echo "nat-lab: $BIN has no --relay flag: it cannot run --relay $RELAY" >&2; exit 2
fi

# ---- lifetime: everything created is recorded and removed on any exit ----------------------
P="rpl$$"          # unique per run: two runs never share a namespace name
TMP="$(mktemp -d "${TMPDIR:-/tmp}/nat-lab.XXXXXX")"
NSS=()
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ -n "$KEEP" ]; then echo "nat-lab: logs kept in $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "nat-lab: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

SERVER_IP=203.0.113.7
INET="$P-inet"
SRV="$P-srv"

add_ns() {
    NSS+=("$1")
    ip netns add "$1" && ip -n "$1" link set lo up
}

# attach_public NS IP PORTNAME: a veth from the public bridge to NS, where it is called `wan`.
attach_public() {
    ip -n "$INET" link add "$3" type veth peer name wan netns "$1" &&
        ip -n "$INET" link set "$3" master br0 up &&
        ip -n "$1" addr add "$2/24" dev wan &&
        ip -n "$1" link set wan up
}

# add_router NS KIND K: the NAT of home K.
add_router() {
    local flag=""
    [ "$2" = symmetric ] && flag=" random"
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1 &&
        ip netns exec "$1" nft -f - <<EOF
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" masquerade$flag
    }
}
table inet filter {
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state new drop
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "wan" ct state new drop
    }
}
EOF
}

# add_home K KIND: the namespace a player runs in ($P-h$K), with its router if any.
add_home() {
    local k=$1 kind=$2 home="$P-h$1" router="$P-r$1"
    add_ns "$home" || return 1
    if [ "$kind" = none ]; then
        attach_public "$home" "203.0.113.$((50 + k))" "p$k"
        return
    fi
    add_ns "$router" &&
        attach_public "$router" "203.0.113.$((100 + k))" "p$k" &&
        ip -n "$router" link add lan type veth peer name eth0 netns "$home" &&
        ip -n "$router" addr add "192.0.2.$((8 * k + 1))/29" dev lan &&
        ip -n "$router" link set lan up &&
        ip -n "$home" addr add "192.0.2.$((8 * k + 2))/29" dev eth0 &&
        ip -n "$home" link set eth0 up &&
        ip -n "$home" route add default via "192.0.2.$((8 * k + 1))" &&
        add_router "$router" "$kind"
}

fail_setup() { echo "nat-lab: setup failed: $*" >&2; exit 1; }

add_ns "$INET" || fail_setup "namespace $INET"
ip -n "$INET" link add br0 type bridge && ip -n "$INET" link set br0 up || fail_setup "bridge"
add_ns "$SRV" && attach_public "$SRV" "$SERVER_IP" srv || fail_setup "server namespace"

# start_server PORT NAME ARGS...: runs a server in $SRV and waits (bounded) for it to listen.
start_server() {
    local port=$1 name=$2
    shift 2
    ip netns exec "$SRV" "$BIN" --port "$port" --bind "$SERVER_IP" --log-file "$TMP/$name.log" \
        "$@" >/dev/null 2>"$TMP/$name.err" </dev/null &
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q "listening on" "$TMP/$name.log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nat-lab: server $name did not start:" >&2
    cat "$TMP/$name.err" >&2
    return 1
}
# Only the main server relays: servers sharing a namespace would compete for the same relay
# ports. The NAT check has servers of its own so that its probe sessions neither show in the
# main server's stats nor count, for --relay auto, as an earlier start by a lab host.
start_server 7777 server "${RELAY_ARGS[@]}" || exit 1
SERVER_PID=${PIDS[0]}
start_server 7778 check1 "${RELAY_OFF_ARGS[@]}" || exit 1
start_server 7779 check2 "${RELAY_OFF_ARGS[@]}" || exit 1

# Homes: k counts players over all groups; HOME_OF[g,i] is the namespace of player i of group g.
declare -A HOME_OF KIND_OF
declare -a ATTEMPTS REMATCHED
k=0
g=0
for group in "${LAB_GROUPS[@]}"; do
    g=$((g + 1))
    IFS=, read -r -a kinds <<<"$group"
    for i in "${!kinds[@]}"; do
        k=$((k + 1))
        add_home "$k" "${kinds[$i]}" || fail_setup "home $k (${kinds[$i]})"
        HOME_OF[$g,$i]="$P-h$k"
        KIND_OF[$g,$i]="${kinds[$i]}"
    done
done

# json_field FILE NAME: a string or number field of the client's one-line JSON.
json_field() {
    sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" "$1" 2>/dev/null | head -n 1
}

# ---- check that each NAT kind maps as it claims ----------------------------------------------
nat_ok=1
for kind in cone symmetric; do
    home=""
    for key in "${!KIND_OF[@]}"; do
        [ "${KIND_OF[$key]}" = "$kind" ] && home="${HOME_OF[$key]}" && break
    done
    [ -n "$home" ] || continue
    ports=()
    for port in 7778 7779; do
        out="$TMP/check-$kind-$port.json"
        ip netns exec "$home" "$BIN" client --server "$SERVER_IP:$port" --probe --json \
            --local-port 45000 --timeout 10 >"$out" 2>/dev/null </dev/null
        addr="$(json_field "$out" public_addr)"
        ports+=("${addr##*:}")
    done
    if [ "$kind" = cone ] && [ "${ports[0]}" = 45000 ] && [ "${ports[1]}" = 45000 ]; then
        echo "NAT check: cone maps local port 45000 to public port 45000 for both destinations"
    elif [ "$kind" = symmetric ] && [ -n "${ports[0]}" ] && [ -n "${ports[1]}" ] && [ "${ports[0]}" != "${ports[1]}" ]; then
        echo "NAT check: symmetric maps local port 45000 to public ports ${ports[0]} and ${ports[1]} for two destinations"
    else
        echo "NAT check FAILED: $kind maps local port 45000 to '${ports[0]:-?}' and '${ports[1]:-?}'" >&2
        nat_ok=0
    fi
done
[ "$nat_ok" = 1 ] || exit 1
echo "nat-lab: set up and NAT check done after ${SECONDS} s"

# ---- run every group at once -------------------------------------------------------------------
# run_player G A I ARGS...: player I of group G, attempt A, in its home; its JSON line to
# $TMP/gGaApI.json.
run_player() {
    local g=$1 a=$2 i=$3
    shift 3
    [ -n "$CLIENT_RETRY" ] && set -- "$@" --retry
    ip netns exec "${HOME_OF[$g,$i]}" timeout $((TIMEOUT + 15)) "$BIN" client \
        --server "$SERVER_IP:7777" --session "$(session_of "$g" "$a")" --name "g${g}p$i" \
        --json --payload "hello-from-g${g}p$i" --timeout "$TIMEOUT" "$@" \
        >"$TMP/g${g}a${a}p$i.json" 2>"$TMP/g${g}a${a}p$i.err" </dev/null &
    PIDS+=($!)
}

# session_of G A: the session name of group G's attempt A (a retry is a new session).
session_of() { if [ "$2" = 1 ]; then echo "lab$1"; else echo "lab$1r$2"; fi; }

# start_group G A: attempt A of group G: its host, then its clients once the session exists.
# The players' pids go to GROUP_PIDS[G].
start_group() {
    local g=$1 a=$2 session i n
    IFS=, read -r -a kinds <<<"${LAB_GROUPS[$((g - 1))]}"
    n=${#kinds[@]}
    session="$(session_of "$g" "$a")"
    ATTEMPTS[g]=$a
    run_player "$g" "$a" 0 --host --max-players "$n" --start-when "$n"
    GROUP_PIDS[g]=$!
    # Clients join once the session exists (a join before it gets session_non_existent, which
    # the client takes as final). Up to 15 s: a loaded box can be slow to start the host.
    local created=0
    for _ in $(seq 300); do
        grep -q "session $session created" "$TMP/server.log" && created=1 && break
        sleep 0.05
    done
    [ "$created" = 1 ] || echo "nat-lab: group $g: session $session not created after 15 s; its clients join anyway" >&2
    for ((i = 1; i < n; i++)); do
        run_player "$g" "$a" "$i"
        GROUP_PIDS[g]+=" $!"
    done
}

# group_punched G A: whether every player of group G's attempt A succeeded with its payload.
group_punched() {
    local f
    for f in "$TMP/g$1a$2p"*.json; do
        [ "$(json_field "$f" outcome)" = success ] && [ "$(json_field "$f" payload)" = ok ] || return 1
    done
}

# without ARRAY_NAME PID: the array without PID.
without() {
    local -n list=$1
    local kept=() p
    for p in "${list[@]}"; do [ "$p" = "$2" ] || kept+=("$p"); done
    list=("${kept[@]}")
}

all_groups=()
declare -a GROUP_PIDS
for ((g = 1; g <= ${#LAB_GROUPS[@]}; g++)); do
    all_groups+=("$g")
    start_group "$g" 1
done
# Reap the players one by one as they end. With --retry, a group whose attempt failed starts
# again at once, as a game does after a failed punch: the same players, in a new session.
# Bounded: every player is bounded by `timeout`, and each turn reaps one of at most two
# attempts' players.
running=()
for g in "${all_groups[@]}"; do read -r -a pids <<<"${GROUP_PIDS[g]}"; running+=("${pids[@]}"); done
for ((turn = 0; turn < 2 * players && ${#running[@]} > 0; turn++)); do
    ended=""
    wait -n -p ended "${running[@]}" 2>/dev/null
    [ -n "$ended" ] || break
    without running "$ended"
    without PIDS "$ended"  # reaped: the cleanup must not signal a pid that may be reused
    for g in "${all_groups[@]}"; do
        [[ " ${GROUP_PIDS[g]} " == *" $ended "* ]] || continue
        read -r -a left <<<"${GROUP_PIDS[g]}"
        without left "$ended"
        GROUP_PIDS[g]="${left[*]}"
        if [ -z "${GROUP_PIDS[g]}" ] && [ -n "$RETRY" ] && [ "${ATTEMPTS[g]}" = 1 ] &&
            ! group_punched "$g" 1; then
            echo "retrying group $g"
            start_group "$g" 2
            read -r -a pids <<<"${GROUP_PIDS[g]}"
            running+=("${pids[@]}")
        elif [ -z "${GROUP_PIDS[g]}" ] && [ -n "$REMATCH" ] && [ "${ATTEMPTS[g]}" = 1 ] &&
            group_punched "$g" 1; then
            echo "rematch of group $g"
            REMATCHED[g]=1
            start_group "$g" 2
            read -r -a pids <<<"${GROUP_PIDS[g]}"
            running+=("${pids[@]}")
        fi
    done
done

# The main server's final stats line (written on an orderly stop) tells what it relayed.
kill -TERM "$SERVER_PID" 2>/dev/null
for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" 2>/dev/null
    PIDS=("${PIDS[@]:1}")  # reaped: the cleanup must not signal a pid that may be reused
fi
server_stats="$(sed -n 's/.*stopped; stats: //p' "$TMP/server.log" | tail -n 1)"

# addrs FILE: the source addresses of the payloads a player heard, comma-separated.
addrs() {
    grep -o '"addr":"[^"]*"' "$1" 2>/dev/null | sed 's/"addr":"\(.*\)"/\1/' | paste -sd, -
}

# ---- report ---------------------------------------------------------------------------------------
# Each group is reported by its last attempt. via: where that attempt's payloads came from.
# server: every one from the server's address (relayed); direct: none; mixed: some; `-`: no
# payload heard at all.
printf '\n%-5s %-30s %-8s %-8s %-8s %-7s %-8s %s\n' group "NAT kinds (host first)" punched expected attempts via time outcomes
all_expected=1
results=()
for g in "${all_groups[@]}"; do
    group="${LAB_GROUPS[$((g - 1))]}"
    a=${ATTEMPTS[g]}
    IFS=, read -r -a kinds <<<"$group"
    # Tries of the reported game: the script's attempts, or the clients' own (--client-retry).
    tries=$a
    for f in "$TMP/g${g}a${a}p"*.json; do
        t="$(json_field "$f" attempts)"
        [ -n "$t" ] && [ "$t" -gt "$tries" ] && tries=$t
    done
    [ -n "${REMATCHED[g]:-}" ] && tries=1  # a rematch is a first try of a new game
    outcomes=() payloads=() clients_heard=()
    host_heard=""
    max_ms=0
    punched=yes
    ok=0
    for i in "${!kinds[@]}"; do
        f="$TMP/g${g}a${a}p$i.json"
        outcome="$(json_field "$f" outcome)"
        payload="$(json_field "$f" payload)"
        ms="$(json_field "$f" elapsed_ms)"
        outcomes+=("${outcome:-none}")
        payloads+=("${payload:-none}")
        [ -n "$ms" ] && [ "$ms" -gt "$max_ms" ] && max_ms=$ms
        if [ "$outcome" = success ] && [ "$payload" = ok ]; then ok=$((ok + 1)); else punched=no; fi
        if [ "$i" = 0 ]; then
            host_heard="$(addrs "$f")"
        else
            heard="$(addrs "$f")"
            clients_heard+=("${heard:-none}")
        fi
    done
    via=-
    from_server=0 from_elsewhere=0
    IFS=, read -r -a all_heard <<<"$host_heard,$(IFS=,; echo "${clients_heard[*]}")"
    for addr in "${all_heard[@]}"; do
        case "$addr" in ''|none) continue ;; esac
        if [ "${addr%:*}" = "$SERVER_IP" ]; then
            from_server=$((from_server + 1))
        else
            from_elsewhere=$((from_elsewhere + 1))
        fi
    done
    if [ "$from_server" -gt 0 ] && [ "$from_elsewhere" -gt 0 ]; then
        via=mixed
    elif [ "$from_server" -gt 0 ]; then
        via=server
    elif [ "$from_elsewhere" -gt 0 ]; then
        via=direct
    fi
    # What the mode promises: `always` relays every session, `auto` a retry (the same players
    # started moments ago), `off` none; only a relayed session gets through a symmetric NAT.
    relayed=no
    if [ "$RELAY" = always ] || { [ "$RELAY" = auto ] && [ "$tries" -gt 1 ]; }; then relayed=yes; fi
    expected=yes
    if [[ ",$group," == *",symmetric,"* ]]; then
        expected=no
        if [ "$RELAY" = always ] || { [ "$RELAY" = auto ] && [ -n "$RETRY$CLIENT_RETRY" ]; }; then expected=yes; fi
    fi
    expected_via=direct
    [ "$relayed" = yes ] && expected_via=server
    mark=""
    if [ "$punched" != "$expected" ]; then
        mark="  <-- UNEXPECTED"
        all_expected=0
    elif [ "$punched" = yes ] && [ "$via" != "$expected_via" ]; then
        mark="  <-- UNEXPECTED: payload via $via, expected via $expected_via"
        all_expected=0
    fi
    secs="$(printf '%d.%d s' $((max_ms / 1000)) $(((max_ms % 1000) / 100)))"
    shown=$punched
    [ "$punched" = no ] && [ "$ok" -gt 0 ] && shown="no($ok/${#kinds[@]})"
    printf '%-5s %-30s %-8s %-8s %-8s %-7s %-8s %s%s\n' "$g" "$group" "$shown" "$expected" "$tries" "$via" \
        "$secs" "$(IFS=,; echo "${outcomes[*]}")" "$mark"
    results+=("RESULT group=$g kinds=$group relay=$RELAY attempts=$tries games=$a punched=$punched players_ok=$ok expected=$expected via=$via time_ms=$max_ms outcomes=$(IFS=,; echo "${outcomes[*]}") payload=$(IFS=,; echo "${payloads[*]}") host_heard=$host_heard clients_heard=$(IFS=,; echo "${clients_heard[*]}")")
done
echo
printf '%s\n' "${results[@]}"
echo "SERVER stats: ${server_stats:-none (the server did not stop in time)}"
echo "server: $SERVER_IP:7777 (relay $RELAY); players behind NAT use WAN 203.0.113.(100+k), players on the public net 203.0.113.(50+k)"
if [ "$all_expected" = 1 ]; then
    echo "nat-lab: every group ended as expected"
    exit 0
fi
echo "nat-lab: some group did not end as expected; client logs: rerun with --keep" >&2
exit 1
