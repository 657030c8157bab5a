#!/usr/bin/env bash
# Guest script: proves the VM can host our kernel-mode tests. Run it with
#   Tests/VM/vm.sh Tests/VM/kernel-smoke.sh [OUT_DIR]
# (with OUT_DIR shared by --rw, the guest writes OUT_DIR/uname-r there).
#
#   ns A (mgsa)                              ns B (mgsb)
#   veth 192.0.2.1/24 -------- veth -------- veth 192.0.2.2/24
#   wg0 (kernel) 10.9.0.1/24                 wg0 (kernel) 10.9.0.2/24
#
# Checks: the wireguard module, `ip link add type wireguard` in each netns,
# `wg set` with `wg genkey` keys, ping through the tunnel, a handshake and
# rx bytes in `wg show`, /dev/net/tun and nf_tables for later tests, and that
# our Swift binary (.build/debug/meshguard-agent, if built) runs in the guest.
# Last line: "N passed, N failed"; exit status 0 only if nothing failed.
set -uo pipefail

if [[ ${MESHGUARD_IN_VM:-} != 1 ]]; then
    echo "FAIL: this is a guest script; run it as: Tests/VM/vm.sh $0"
    echo "0 passed, 1 failed"
    exit 1
fi

PASSES=0; FAILS=0
ok() { PASSES=$((PASSES + 1)); echo "  ok: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "  FAIL: $*"; }
# check WHAT CMD...: one line; on failure, the last line of CMD's output says why.
check() {
    local what=$1 out; shift
    if out=$("$@" 2>&1); then ok "$what"; else bad "$what: ${out##*$'\n'}"; fi
}

A=mgsa; B=mgsb
tmp=$(mktemp -d)
cleanup() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

echo "uname -r: $(uname -r)"
if [[ -n ${1:-} ]]; then
    check "write to the --rw share $1" sh -c 'uname -r > "$1/uname-r"' sh "$1"
fi

check "modprobe wireguard (or already loaded)" \
    sh -c 'modprobe wireguard 2>&1 || grep -q "^wireguard " /proc/modules'
check "wireguard module is loaded" grep -q '^wireguard ' /proc/modules
check "/dev/net/tun exists (userspace mode)" test -c /dev/net/tun
check "nf_tables is loaded" grep -q '^nf_tables ' /proc/modules
check "modprobe an on-demand module (sch_netem)" \
    sh -c 'modprobe sch_netem && grep -q "^sch_netem " /proc/modules'

umask 077
wg genkey > "$tmp/ka" && wg genkey > "$tmp/kb" || bad "wg genkey"
PA=$(wg pubkey < "$tmp/ka"); PB=$(wg pubkey < "$tmp/kb")

check "ip netns add" sh -c "ip netns add $A && ip netns add $B"
check "veth between the namespaces" sh -c "
    ip link add veth-a netns $A type veth peer name veth-b netns $B &&
    ip -n $A addr add 192.0.2.1/24 dev veth-a && ip -n $B addr add 192.0.2.2/24 dev veth-b &&
    ip -n $A link set lo up && ip -n $B link set lo up &&
    ip -n $A link set veth-a up && ip -n $B link set veth-b up"
check "ip link add type wireguard (ns A)" ip -n "$A" link add wg0 type wireguard
check "ip link add type wireguard (ns B)" ip -n "$B" link add wg0 type wireguard
check "wg set (ns A)" ip netns exec "$A" wg set wg0 private-key "$tmp/ka" listen-port 51820 \
    peer "$PB" endpoint 192.0.2.2:51820 allowed-ips 10.9.0.2/32
check "wg set (ns B)" ip netns exec "$B" wg set wg0 private-key "$tmp/kb" listen-port 51820 \
    peer "$PA" endpoint 192.0.2.1:51820 allowed-ips 10.9.0.1/32
for n in "$A:10.9.0.1" "$B:10.9.0.2"; do
    ip -n "${n%%:*}" addr add "${n#*:}/24" dev wg0 && ip -n "${n%%:*}" link set wg0 up || bad "address wg0 in ${n%%:*}"
done
check "ping A -> B through the tunnel" ip netns exec "$A" ping -c 3 -i 0.2 -W 2 10.9.0.2
check "ping B -> A through the tunnel" ip netns exec "$B" ping -c 2 -i 0.2 -W 2 10.9.0.1
echo "--- wg show (ns A)"
ip netns exec "$A" wg show wg0 | sed 's/^/    /'
hs=$(ip netns exec "$A" wg show wg0 latest-handshakes | awk '{print $2}')
rx=$(ip netns exec "$B" wg show wg0 transfer | awk '{print $2}')
check "wg show: latest handshake recorded (${hs:-none})" test "${hs:-0}" -gt 0
check "wg show: B received bytes (${rx:-0})" test "${rx:-0}" -gt 0

AGENT=${MESHGUARD_AGENT:-$PWD/.build/debug/meshguard-agent}
if [[ -x $AGENT ]]; then
    v=$("$AGENT" --version 2>&1); rc=$?
    if [[ $rc -eq 0 && -n $v ]]; then ok "Swift binary runs in the guest: meshguard-agent --version = $v"
    else bad "Swift binary in the guest: $AGENT --version exited $rc: ${v##*$'\n'}"; fi
else
    echo "  skip: $AGENT not built; Swift binary check not run"
fi

echo "$PASSES passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
