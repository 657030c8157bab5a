#!/usr/bin/env bash
# Guest script (runs inside the VM, Debian's stock kernel, via Tests/VM/vm.sh):
# a gossip mesh of kernel-mode and userspace-mode agents (issue 5).
#
#   ns mb: bridge br0
#   ns m1 (kernel, the seed)  10.0.0.1 ─┐
#   ns m2 (userspace)         10.0.0.2 ─┼─ br0
#   ns m3 (kernel)            10.0.0.3 ─┘
# Every pair pings over mesh addresses; a killed member leaves both other
# data planes and comes back after a restart; a graceful leave is seen by all.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AGENT=${MESHGUARD_AGENT:-$ROOT/.build/debug/meshguard-agent}
PASSES=0; FAILS=0
ok() { PASSES=$((PASSES + 1)); echo "  ok: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "  FAIL: $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; return 1; fi; }
declare -A PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; for n in m1 m2 m3 mb; do ip netns del $n 2>/dev/null; done; }
trap cleanup EXIT

echo "kernel $(uname -r)"
modprobe wireguard 2>/dev/null || true
tmp=$(mktemp -d)
ip netns add mb; ip -n mb link add br0 type bridge; ip -n mb link set br0 up
for i in 1 2 3; do
    ip netns add m$i; ip -n m$i link set lo up
    ip link add e$i type veth peer name p$i
    ip link set e$i netns m$i; ip link set p$i netns mb
    ip -n m$i addr add 10.0.0.$i/24 dev e$i; ip -n m$i link set e$i up
    ip -n mb link set p$i master br0 up
    "$AGENT" keygen --config-dir "$tmp/n$i" >/dev/null; "$AGENT" export --config-dir "$tmp/n$i" > "$tmp/n$i.pub"
done
for i in 1 2 3; do for j in 1 2 3; do
    [[ $i != "$j" ]] && "$AGENT" trust "$tmp/n$j.pub" --name "n$j" --config-dir "$tmp/n$i" >/dev/null
done; done
v4() { "$AGENT" show-identity --config-dir "$tmp/n$1" 2>/dev/null | awk '/mesh ipv4/ {print $3}'; }
v6() { "$AGENT" show-identity --config-dir "$tmp/n$1" 2>/dev/null | awk '/mesh ipv6/ {print $3}'; }
wgkey() { "$AGENT" show-identity --config-dir "$tmp/n$1" 2>/dev/null | awk '/wireguard/ {print $2}'; }
start() {  # start I MODE ARGS...
    local i=$1 mode=$2; shift 2
    ip netns exec m$i "$AGENT" up "--$mode" --interface mg$i --config-dir "$tmp/n$i" --runtime-dir "$tmp/run$i" "$@" 2>>"$tmp/n$i.log" &
    PIDS[$i]=$!
}
# Interfaces are named mg1..mg3: `wg` asks a userspace engine's UAPI socket
# (/var/run/wireguard/NAME.sock, shared by every namespace) before the kernel,
# so one name for all would show the userspace node's view everywhere.
# Peers, and peers routed (their mesh /32 as allowed IPs: a member not yet heard from has none).
peers() { ip netns exec m$1 wg show mg$1 peers 2>/dev/null | wc -l; }
routed() { ip netns exec m$1 wg show mg$1 allowed-ips 2>/dev/null | grep -c '/32'; }
wait_for() { local tries=$1; shift; for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.2; done; return 1; }
full() { for i in 1 2 3; do [[ $(peers $i) -eq 2 && $(routed $i) -eq 2 ]] || return 1; done; }

echo "== a kernel seed, a userspace member and a kernel member gossip into one mesh"
start 1 kernel
start 2 userspace --seed 10.0.0.1:51821
start 3 kernel --seed 10.0.0.1:51821
check "the mesh is full: every node routes to both others" wait_for 300 full || true
check "node 1 runs the kernel data plane" grep -q "data plane kernel" "$tmp/n1.log"
check "node 2 runs the userspace data plane" grep -q "data plane userspace" "$tmp/n2.log"
check "node 3 runs the kernel data plane" grep -q "data plane kernel" "$tmp/n3.log"
eps1=$(ip netns exec m1 wg show mg1 endpoints 2>&1); peers2=$(ip netns exec m2 wg show mg2 peers 2>&1)
check "the kernel's wg show has the userspace member at its WireGuard port" grep -q "10.0.0.2:51821" <<<"$eps1" || echo "$eps1"
check "the userspace member's wg show has the kernel member" grep -qF "$(wgkey 3)" <<<"$peers2" || echo "$peers2"
pings=0
for i in 1 2 3; do for j in 1 2 3; do
    [[ $i == "$j" ]] && continue
    ip netns exec m$i ping -c 1 -W 3 "$(v4 $j)" >/dev/null 2>&1 && pings=$((pings + 1))
    ip netns exec m$i ping -6 -c 1 -W 3 "$(v6 $j)" >/dev/null 2>&1 && pings=$((pings + 1))
done; done
check "every pair pings over IPv4 and IPv6 mesh addresses ($pings of 12)" test "$pings" -eq 12

echo "== a killed userspace member leaves both kernel data planes; it comes back"
kill -9 "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null
gone() { [[ $(peers 1) -eq 1 && $(peers 3) -eq 1 ]]; }
check "the killed member is removed from both kernels" wait_for 300 gone
start 2 userspace --seed 10.0.0.3:51821
check "restarted, it is back in every data plane" wait_for 300 full || true
check "kernel -> restarted userspace ping" ip netns exec m3 ping -c 2 -i 0.3 -W 3 "$(v4 2)"

echo "== a kernel member leaves gracefully"
kill -TERM "${PIDS[3]}"; wait "${PIDS[3]}" 2>/dev/null
check "its interface is removed" bash -c "! ip -n m3 link show mg3 2>/dev/null"
left() { [[ $(peers 1) -eq 1 && $(peers 2) -eq 1 ]]; }
check "it is removed from the other two" wait_for 100 left
if [[ $FAILS -gt 0 ]]; then
    for i in 1 2 3; do echo "--- node $i log (last 15 lines)"; tail -15 "$tmp/n$i.log"; done
    for i in 1 2 3; do echo "--- node $i wg show"; ip netns exec m$i wg show mg$i 2>&1 | head -20; done
fi
echo "$PASSES passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
