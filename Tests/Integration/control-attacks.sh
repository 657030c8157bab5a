#!/usr/bin/env bash
# Control-plane attacks on a running agent (issue 8, item 3), in network
# namespaces on a bridge:
#
#   n1 (A, 10.0.0.1: the target, metrics on 127.0.0.1:9586), n2 (B), n3 (C):
#       a mesh that trusts itself
#   n4 (U, 10.0.0.4): a node nobody trusts, knocking at A (genuine signed joins)
#   n9 (X, 10.0.0.9): the attacker, on the same bridge
#
# Genuine envelopes are captured on A's link (B's and U's), then X sends
# (Tests/Integration/ctlattack.py, paced): B's datagrams replayed 200 times,
# every truncation of them, 5,000 single-bit flips, 100 oversized envelopes
# naming B, 20,000 of U's genuine datagrams (an untrusted flood), 2,000 of
# random junk. Checks: every datagram is dropped and counted by reason in A's
# metrics (meshguard_control_drops_total), none is answered, no membership
# event happens anywhere, the mesh keeps working, and A's figures (CPU) are
# printed. The lying-member attacks (false accusations, unsigned incarnations)
# are unit tests: ControlPlaneAttackTests.
source "$(dirname "$0")/lib.sh"
need ip wg ping python3
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'cleanup; rm -rf "$tmp"' EXIT
SW=mgasw-$RUN
netns "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for i in 1 2 3 4 9; do
    ns=mga$i-$RUN
    netns "$ns"
    ip link add "v$RUN-$i" type veth peer name "p$RUN-$i"
    ip link set "v$RUN-$i" netns "$ns"; ip link set "p$RUN-$i" netns "$SW"
    ip -n "$ns" link set "v$RUN-$i" name eth0
    ip -n "$ns" addr add "10.0.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$SW" link set "p$RUN-$i" master br0 up
done
for i in 1 2 3 4; do "$AGENT" keygen --config-dir "$tmp/n$i" >/dev/null; "$AGENT" export --config-dir "$tmp/n$i" > "$tmp/n$i.pub"; done
for i in 1 2 3; do for j in 1 2 3; do
    [[ $i != "$j" ]] && "$AGENT" trust "$tmp/n$j.pub" --name "n$j" --config-dir "$tmp/n$i" >/dev/null
done; done
"$AGENT" trust "$tmp/n1.pub" --name n1 --config-dir "$tmp/n4" >/dev/null   # U trusts A; A does not trust U
IFACE() { echo "mga$1$RUN" | cut -c1-15; }
ipv4() { "$AGENT" show-identity --config-dir "$tmp/n$1" 2>/dev/null | awk '/mesh ipv4/ {print $3}'; }
start() {
    local i=$1; shift
    ip netns exec "mga$i-$RUN" "$AGENT" up --userspace --interface "$(IFACE "$i")" --config-dir "$tmp/n$i" \
        --runtime-dir "$tmp/run$i" "$@" 2>"$tmp/n$i.log" &
    PIDS+=($!)
}
start 1 --metrics-address 127.0.0.1:9586
PID_A=${PIDS[-1]}
start 2 --seed 10.0.0.1:51821
start 3 --seed 10.0.0.1:51821
routed() { ip netns exec "mga$1-$RUN" wg show "$(IFACE "$1")" allowed-ips 2>/dev/null | grep -c '/32' || true; }
full() { for i in 1 2 3; do [[ $(routed "$i") -eq 2 ]] || return 1; done; }
for _ in $(seq 300); do full && break; sleep 0.1; done
check "the three trusted nodes form a mesh" full

metrics() { ip netns exec "mga1-$RUN" python3 -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9586/metrics", timeout=10).read().decode())'; }
drop() { metrics | awk -v r="meshguard_control_drops_total{reason=\"$1\"}" '$1 == r {print $2; f=1} END {if (!f) print 0}'; }
alldrops() { metrics | awk '/^meshguard_control_drops_total/ {s += $2} END {print s + 0}'; }
events() {  # A's membership events other than joins (suspicions, deaths, departures, updates)
    metrics | awk '/^meshguard_membership_events_total/ && !/event="joined"/ {s += $2} END {print s + 0}'
}

# Capture genuine envelopes on A's link while U knocks (it retries its join every 2 s).
ip netns exec "mga1-$RUN" python3 "$HERE/ctlattack.py" capture eth0 7 "$tmp/cap" > "$tmp/capture.out" &
CAP=$!
sleep 0.5
start 4 --seed 10.0.0.1:51821 --log-level warning
wait $CAP || true
mkdir -p "$tmp/attack"
[[ -d $tmp/cap/10.0.0.2 ]] && cp -r "$tmp/cap/10.0.0.2" "$tmp/attack/trusted"
[[ -d $tmp/cap/10.0.0.4 ]] && cp -r "$tmp/cap/10.0.0.4" "$tmp/attack/untrusted"
check "captured genuine envelopes from B and from the untrusted node ($(cat "$tmp/capture.out"))" \
    test -d "$tmp/attack/trusted" -a -d "$tmp/attack/untrusted"
kill "${PIDS[-1]}" 2>/dev/null || true   # U stops knocking: what follows is the attacker's alone
sleep 0.5

ev0=$(events); d0=$(alldrops); u0=$(drop untrustedSender); r0=$(drop replayed)
cpu0=$(awk '{print $14 + $15}' "/proc/$PID_A/stat"); t0=$(date +%s%N)
ip netns exec "mga9-$RUN" python3 "$HERE/ctlattack.py" attack 10.0.0.1:51821 "$tmp/attack" > "$tmp/attack.out" 2>&1 || true
t1=$(date +%s%N); cpu1=$(awk '{print $14 + $15}' "/proc/$PID_A/stat")
sleep 1
cat "$tmp/attack.out" | sed 's/^/  sent: /'
sent=$(awk '$1 != "replies" {s += $2} END {print s + 0}' "$tmp/attack.out")
replies=$(awk '$1 == "replies" {print $2}' "$tmp/attack.out")
d1=$(alldrops)
echo "  figures: $sent datagrams in $(( (t1 - t0) / 1000000 )) ms; A's CPU $(( (cpu1 - cpu0) * 100 * 1000000000 / $(getconf CLK_TCK) / (t1 - t0) ))% of one core"
echo "  drops at A by reason:"; metrics | awk '/^meshguard_control_drops_total/ {print "    " $0}'
check "the attack ran ($sent datagrams)" test "$sent" -gt 25000
check "nothing was answered (replies: ${replies:-none})" test "${replies:-1}" -eq 0
check "every datagram was dropped and counted: $((d1 - d0)) of $sent (at least 99 %, never more)" \
    test $(( (d1 - d0) * 100 )) -ge $(( sent * 99 )) -a $((d1 - d0)) -le "$sent"
for r in replayed truncated badSignature tooLarge badMagic; do
    check "metrics count drops as $r" test "$(drop $r)" -gt 0
done
check "replays counted as replayed ($(( $(drop replayed) - r0 )))" test $(( $(drop replayed) - r0 )) -ge 1000
check "the untrusted flood counted as untrustedSender ($(( $(drop untrustedSender) - u0 )))" test $(( $(drop untrustedSender) - u0 )) -ge 19000
check "no membership event at A during the attack" test "$(events)" -eq "$ev0"
check "the mesh is whole: every node routes to both others" full
check "A pings B and C over the mesh" bash -c "ip netns exec mga1-$RUN ping -c 1 -W 2 $(ipv4 2) && ip netns exec mga1-$RUN ping -c 1 -W 2 $(ipv4 3)"
check "the untrusted node is nobody's peer" bash -c "! ip netns exec mga1-$RUN wg show $(IFACE 1) peers | grep -q \"$(awk '{print $1}' "$tmp/n4.pub" | head -c 20)\""
status_json=$("$AGENT" status --runtime-dir "$tmp/run1" --json)
check "status --json shows the drops by reason" python3 -c '
import json, sys
d = json.loads(sys.argv[1])["drops"]
assert d["replayed"] > 0 and d["untrustedSender"] > 0 and d["tooLarge"] > 0, d' "$status_json"
check "A is alive and logged no crash" bash -c "kill -0 $PID_A && ! grep -Eqi 'fatal|backtrace|crash' '$tmp/n1.log'"
summary
