#!/usr/bin/env bash
# Five agents form a full mesh by gossip from one seed (userspace mode), in
# network namespaces joined by a bridge; a sixth node with a valid but
# untrusted key is never added; a killed node leaves everyone's data plane.
#
#   ns sw: bridge br0
#   ns n1..n6: eth0 10.0.0.i/24 ── veth ── br0        (n1 is the seed)
source "$(dirname "$0")/lib.sh"
need ip wg ping
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }
tmp=$(mktemp -d); trap 'cleanup; rm -rf "$tmp"' EXIT
SW=mgsw-$RUN
netns "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
N=6
for i in $(seq 1 $N); do
    ns=mgn$i-$RUN
    netns "$ns"
    ip link add "v$RUN-$i" type veth peer name "p$RUN-$i"
    ip link set "v$RUN-$i" netns "$ns"; ip link set "p$RUN-$i" netns "$SW"
    ip -n "$ns" link set "v$RUN-$i" name eth0
    ip -n "$ns" addr add "10.0.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$SW" link set "p$RUN-$i" master br0 up
    "$AGENT" keygen --config-dir "$tmp/n$i" >/dev/null
    "$AGENT" export --config-dir "$tmp/n$i" > "$tmp/n$i.pub"
done
# Nodes 1-5 trust each other; nobody trusts node 6 (which trusts everyone).
for i in $(seq 1 $N); do
    for j in $(seq 1 5); do
        [[ $i != "$j" ]] && "$AGENT" trust "$tmp/n$j.pub" --name "n$j" --config-dir "$tmp/n$i" >/dev/null
    done
done
ipv4() { "$AGENT" show-identity --config-dir "$tmp/n$1" 2>/dev/null | awk '/mesh ipv4/ {print $3}'; }
IFACE() { echo "mgm$1$RUN" | cut -c1-15; }

start() {
    local i=$1; shift
    ip netns exec "mgn$i-$RUN" "$AGENT" up --userspace --interface "$(IFACE "$i")" --config-dir "$tmp/n$i" \
        --runtime-dir "$tmp/run$i" "$@" 2>"$tmp/n$i.log" &
    PIDS+=($!)
}
start 1
for i in $(seq 2 5); do start "$i" --seed 10.0.0.1:51821; done
start 6 --seed 10.0.0.1:51821 --log-level warning
peers() { ip netns exec "mgn$1-$RUN" wg show "$(IFACE "$1")" peers 2>/dev/null | wc -l; }
# Peers with their mesh addresses as allowed IPs (a member not yet heard from is configured without).
routed() { ip netns exec "mgn$1-$RUN" wg show "$(IFACE "$1")" allowed-ips 2>/dev/null | grep -c '/32'; }
full() { for i in 1 2 3 4 5; do [[ $(peers "$i") -eq 4 && $(routed "$i") -eq 4 ]] || return 1; done; }
wgkey() { "$AGENT" show-identity --config-dir "$tmp/n$1" 2>/dev/null | awk '/wireguard/ {print $2}'; }
t0=$(date +%s%N)
for _ in $(seq 300); do full && break; sleep 0.1; done
t1=$(date +%s%N)
check "five trusted nodes form a full mesh by gossip from one seed (took $(( (t1 - t0) / 1000000 )) ms)" full
pings=0
for i in 1 2 3 4 5; do for j in 1 2 3 4 5; do
    [[ $i == "$j" ]] && continue
    ip netns exec "mgn$i-$RUN" ping -c 1 -W 3 "$(ipv4 "$j")" >/dev/null 2>&1 && pings=$((pings + 1))
done; done
check "every pair pings over mesh addresses ($pings of 20)" test "$pings" -eq 20
check "status --json: every other trusted member alive, configured and routed, with a handshake" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
live = [m for m in d["members"] if m["state"] == "alive"]
assert len(live) == 4 and all(m["configured"] and m["routed"] for m in live), d["members"]
assert sorted(m["name"] for m in live) == ["n2", "n3", "n4", "n5"], live
assert all(m["latestHandshake"] and m["receivedBytes"] > 0 for m in live), live
assert d["memberCounts"]["alive"] == 4
' "$("$AGENT" status --json --runtime-dir "$tmp/run1")"
all_peers() { for i in 1 2 3 4 5; do ip netns exec "mgn$i-$RUN" wg show "$(IFACE "$i")" peers; done; }
check "the data planes name members by WireGuard key" grep -qF "$(wgkey 2)" <(all_peers)
check "the untrusted node is in nobody's data plane" bash -c "! grep -qF '$(wgkey 6)' <(for i in 1 2 3 4 5; do ip netns exec mgn\$i-$RUN wg show \$(echo mgm\$i$RUN | cut -c1-15) peers; done)"
check "--log-level warning: a running node logs no info lines (node 1 does)" \
    bash -c "kill -0 ${PIDS[5]} && grep -q 'data plane userspace' $tmp/n1.log && ! grep -q 'data plane' $tmp/n6.log && ! grep -v ': warning: ' $tmp/n6.log | grep -q ."
check "the untrusted node reaches no mesh address" bash -c "! ip netns exec mgn6-$RUN ping -c 1 -W 1 $(ipv4 1)"

kill -9 "${PIDS[4]}"; wait "${PIDS[4]}" 2>/dev/null || true   # node 5
t0=$(date +%s%N)
gone() { for i in 1 2 3 4; do [[ $(peers "$i") -eq 3 ]] || return 1; done; }
for _ in $(seq 600); do gone && break; sleep 0.1; done
t1=$(date +%s%N)
check "a killed node leaves every other data plane (took $(( (t1 - t0) / 1000000 )) ms)" gone
kill -TERM "${PIDS[3]}"; wait "${PIDS[3]}" 2>/dev/null || true   # node 4 leaves gracefully
left() { for i in 1 2 3; do [[ $(peers "$i") -eq 2 ]] || return 1; done; }
for _ in $(seq 300); do left && break; sleep 0.1; done
check "a node that leaves gracefully is removed everywhere" left

# Lab mode: node 3 restarts with --open and takes the untrusted node 6; nodes 1 and 2 still refuse it.
kill -TERM "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null || true
kill -TERM "${PIDS[5]}"; wait "${PIDS[5]}" 2>/dev/null || true
start 3 --seed 10.0.0.1:51821 --open
start 6 --seed 10.0.0.3:51821
has6() { ip netns exec "mgn$1-$RUN" wg show "$(IFACE "$1")" allowed-ips 2>/dev/null | grep -F "$(wgkey 6)" | grep -q '/32'; }
for _ in $(seq 100); do has6 3 && break; sleep 0.1; done
check "--open warns loudly that authorized_keys/ is not enforced" grep -q "warning: \*\*\* --open: authorized_keys/ is NOT enforced" "$tmp/n3.log"
check "--open: status says trust is open" grep -q "^trust: *OPEN" <("$AGENT" status --runtime-dir "$tmp/run3")
check "--open: the open node routes to the untrusted node" has6 3
check "--open: the untrusted node pings the open node" ip netns exec "mgn6-$RUN" ping -c 1 -W 3 "$(ipv4 3)"
sleep 1
# Node 5 was killed with SIGKILL: its control socket file is stale. It restarts on the same runtime directory and rejoins.
check "the killed node left a stale control socket" test -S "$tmp/run5/control.sock"
start 5 --seed 10.0.0.1:51821
back5() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert any(m["name"]=="n5" and m["state"]=="alive" and m["routed"] for m in d["members"])' "$("$AGENT" status --json --runtime-dir "$tmp/run1" 2>/dev/null)" 2>/dev/null; }
for _ in $(seq 100); do back5 && break; sleep 0.1; done
check "restarted after kill -9 on the same runtime directory: it answers status" grep -q "^mode: *userspace" <("$AGENT" status --runtime-dir "$tmp/run5")
check "... and is alive and routed again at the seed" back5
# Node 4 (it left) starts again without seeds: alone. A seeds file appears: it joins without a restart;
# a changed MTU in its configuration file is reported as needing a restart.
start 4
for _ in $(seq 50); do grep -q "no seeds" "$tmp/n4.log" && break; sleep 0.1; done
echo "10.0.0.1:51821" > "$tmp/n4/seeds"
echo "mtu = 1380" > "$tmp/n4/meshguard-agent.toml"
back4() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert any(m["name"]=="n1" and m["state"]=="alive" and m["routed"] for m in d["members"])' "$("$AGENT" status --json --runtime-dir "$tmp/run4" 2>/dev/null)" 2>/dev/null; }
for _ in $(seq 100); do back4 && break; sleep 0.1; done
check "a seeds file written while running is applied: the lone node joins the mesh" back4
check "a changed setting that needs a restart says so" grep -q "warning: 'mtu' changed; it applies when the agent restarts" "$tmp/n4.log"
reloads=$(grep -c "reloaded:" "$tmp/n4.log" || true)
kill -HUP "${PIDS[-1]}"
for _ in $(seq 50); do [[ $(grep -c "reloaded:" "$tmp/n4.log") -gt $reloads ]] && break; sleep 0.1; done
check "SIGHUP under the service group reloads and keeps running" \
    bash -c "[[ \$(grep -c reloaded: $tmp/n4.log) -gt $reloads ]] && kill -0 ${PIDS[-1]} && grep -q '^mode' <($AGENT status --runtime-dir $tmp/run4)"
check "--open: nodes that enforce authorized_keys/ still refuse it" bash -c "! grep -qF '$(wgkey 6)' <(for i in 1 2; do ip netns exec mgn\$i-$RUN wg show \$(echo mgm\$i$RUN | cut -c1-15) peers; done)"
summary
