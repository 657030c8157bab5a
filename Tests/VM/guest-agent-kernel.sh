#!/usr/bin/env bash
# Guest script (runs inside the VM, Debian's stock kernel, via Tests/VM/vm.sh):
# meshguard-agent's kernel data plane end to end.
#
#   ns A: up --kernel        eth0 192.0.2.1 ─ veth ─ 192.0.2.2 eth0   ns B: up (auto -> kernel)
#   then ns B is restarted with --userspace (a mixed kernel/userspace pair),
#   and A is killed with SIGKILL and restarted (the interface is reused).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AGENT=${AGENT:-$ROOT/.build/debug/meshguard-agent}
PASSES=0; FAILS=0
ok() { PASSES=$((PASSES + 1)); echo "  ok: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "  FAIL: $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; ip netns del ka 2>/dev/null; ip netns del kb 2>/dev/null; }
trap cleanup EXIT

echo "kernel $(uname -r)"
modprobe wireguard 2>/dev/null || true
tmp=$(mktemp -d)
ip netns add ka; ip netns add kb
ip link add va type veth peer name vb
ip link set va netns ka; ip link set vb netns kb
ip -n ka addr add 192.0.2.1/24 dev va; ip -n kb addr add 192.0.2.2/24 dev vb
for n in ka kb; do ip -n $n link set lo up; done
ip -n ka link set va up; ip -n kb link set vb up

for n in a b; do "$AGENT" keygen --config-dir "$tmp/$n" >/dev/null; "$AGENT" export --config-dir "$tmp/$n" > "$tmp/$n.pub"; done
"$AGENT" trust "$tmp/b.pub" --name node-b --config-dir "$tmp/a" >/dev/null
"$AGENT" trust "$tmp/a.pub" --name node-a --config-dir "$tmp/b" >/dev/null
echo "node-b 192.0.2.2:51820" > "$tmp/a/static-peers"
echo "node-a 192.0.2.1:51820" > "$tmp/b/static-peers"
v4() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/mesh ipv4/ {print $3}'; }
v6() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/mesh ipv6/ {print $3}'; }
wgkey() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/wireguard/ {print $2}'; }
started() { for _ in $(seq 200); do grep -q "running" "$1" && return 0; sleep 0.05; done; return 1; }

start() {  # start NS DIR LOG ARGS...
    local ns=$1 d=$2 log=$3; shift 3
    ip netns exec "$ns" "$AGENT" up --config-dir "$tmp/$d" --runtime-dir "$tmp/run-$ns" "$@" 2>"$log" &
    PIDS+=($!)
    started "$log"
}

echo "== two kernel-mode agents"
start ka a "$tmp/a.log" --kernel; PID_A=${PIDS[-1]}
start kb b "$tmp/b.log"; PID_B=${PIDS[-1]}
check "--kernel uses the kernel module" grep -q "data plane kernel" "$tmp/a.log"
check "auto mode picks the kernel and says why" grep -q "data plane kernel (kernel: " "$tmp/b.log"
check "status says kernel and why" grep -q "^mode: *kernel (kernel: " <<<"$("$AGENT" status --runtime-dir "$tmp/run-kb")"
check "mg0 is a wireguard link" grep -q "wireguard" <<<"$(ip -n ka -d link show mg0)"
check "the mesh prefixes are routed to mg0" bash -c "ip -n ka route show dev mg0 | grep -q '^10.99.0.0/16' && ip -n ka -6 route show dev mg0 | grep -q '^fd99:6d67::/64'"
check "mg0 carries the mesh IPv4 /16" grep -q "$(v4 a)/16" <<<"$(ip -n ka addr show mg0)"
check "ping over the kernel tunnel (IPv4)" ip netns exec ka ping -c 3 -i 0.2 -W 2 "$(v4 b)"
check "ping over the kernel tunnel (IPv6)" ip netns exec kb ping -6 -c 3 -i 0.2 -W 2 "$(v6 a)"
check "wg show: our WireGuard key" test "$(ip netns exec ka wg show mg0 public-key)" = "$(wgkey a)"
check "wg show: the peer and its mesh /32" grep -q "$(v4 b)/32" <<<"$(ip netns exec ka wg show mg0 allowed-ips)"
check "wg show: listen port 51820" test "$(ip netns exec ka wg show mg0 listen-port)" = 51820
check "wg show: a handshake happened" test "$(ip netns exec ka wg show mg0 latest-handshakes | awk '{print $2}')" -gt 0

echo "== crash and restart: the interface is found and reused"
hs=$(ip netns exec ka wg show mg0 latest-handshakes | awk '{print $2}')
kill -9 "$PID_A"; wait "$PID_A" 2>/dev/null
check "after kill -9 the interface is still there" ip -n ka link show mg0
start ka a "$tmp/a2.log" --kernel; PID_A=${PIDS[-1]}
check "restart reuses the interface (one mg0, one peer)" test "$(ip netns exec ka wg show mg0 peers | wc -l)" -eq 1
check "restart kept the session of the unchanged peer" test "$(ip netns exec ka wg show mg0 latest-handshakes | awk '{print $2}')" = "$hs"
check "addresses are not duplicated" test "$(ip -n ka addr show mg0 | grep -c "$(v4 a)")" -eq 1
check "traffic flows after the restart" ip netns exec ka ping -c 2 -i 0.2 -W 2 "$(v4 b)"

echo "== mixed pair: kernel (A) and userspace (B)"
kill -TERM "$PID_B"; wait "$PID_B" 2>/dev/null
check "SIGTERM removed B's kernel interface" bash -c "! ip -n kb link show mg0 2>/dev/null"
echo "node-a 192.0.2.1:51820" > "$tmp/b/static-peers"
start kb b "$tmp/b2.log" --userspace --listen-port 51820; PID_B=${PIDS[-1]}
check "B runs the userspace engine" grep -q "data plane userspace" "$tmp/b2.log"
# B restarted with new sessions: it speaks first (A's kernel still holds the
# old session and would only rehandshake after 15 s of unanswered data).
check "userspace -> kernel ping (IPv6)" ip netns exec kb ping -6 -c 3 -i 0.2 -W 3 "$(v6 a)"
check "kernel -> userspace ping" ip netns exec ka ping -c 3 -i 0.2 -W 3 "$(v4 b)"

kill -TERM "$PID_A"; wait "$PID_A" 2>/dev/null
check "SIGTERM removed A's kernel interface" bash -c "! ip -n ka link show mg0 2>/dev/null"
echo "$PASSES passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
