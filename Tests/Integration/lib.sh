# Shared helpers for the integration tests (sourced). Each test builds its own
# topology of network namespaces, names everything with a per-run suffix, and
# tears it all down on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AGENT=${AGENT:-$ROOT/.build/debug/meshguard-agent}
RUN=${RUN:-$$}
PIDS=()
NETNS=()
FAILS=0
PASSES=0

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT

need() {
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || { echo "FAIL: missing tool $c (run scripts/bootstrap)"; exit 1; }
    done
}

ok() { PASSES=$((PASSES + 1)); echo "  ok: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "  FAIL: $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

netns() { ip netns add "$1"; NETNS+=("$1"); ip -n "$1" link set lo up; }

# veth NS1 ADDR1 NS2 ADDR2: a veth pair between two namespaces with /24 addresses.
veth() {
    ip link add "v$RUN-a" type veth peer name "v$RUN-b"
    ip link set "v$RUN-a" netns "$1"; ip link set "v$RUN-b" netns "$3"
    ip -n "$1" link set "v$RUN-a" name eth0; ip -n "$3" link set "v$RUN-b" name eth0
    ip -n "$1" addr add "$2/24" dev eth0; ip -n "$3" addr add "$4/24" dev eth0
    ip -n "$1" link set eth0 up; ip -n "$3" link set eth0 up
}

wait_socket() {
    local sock=/var/run/wireguard/$1.sock
    for _ in $(seq 1 100); do [[ -S $sock ]] && return 0; sleep 0.05; done
    echo "FAIL: $sock did not appear"; return 1
}

# start_ours NS IFACE: our engine in the foreground of a background job.
start_ours() {
    ip netns exec "$1" "$AGENT" wireguard "$2" 2>>"/tmp/mg-it-$RUN-$2.log" &
    PIDS+=($!)
    wait_socket "$2"
}

start_wggo() {
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec "$1" wireguard-go -f "$2" >>"/tmp/mg-it-$RUN-$2.log" 2>&1 &
    PIDS+=($!)
    wait_socket "$2"
}

# address NS IFACE V4 V6: give the tunnel interface its addresses and bring it up.
address() {
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$1" addr add "$4/64" dev "$2"
    ip -n "$1" link set "$2" mtu 1420 up
}

summary() {
    echo "$PASSES passed, $FAILS failed"
    [[ $FAILS -eq 0 ]]
}
