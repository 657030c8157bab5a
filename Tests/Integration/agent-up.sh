#!/usr/bin/env bash
# `meshguard-agent up` with static peers, in network namespaces (host: no
# kernel module, so auto mode must fall back to userspace and say why).
#
#   ns A (mgua-$RUN)                        ns B (mgub-$RUN)
#   eth0 192.0.2.1/24 ------- veth -------- eth0 192.0.2.2/24
#   IF_A: up --userspace                    IF_B: up (auto -> userspace)
#   mesh 10.99.x.y/16 fd99:6d67::/64        mesh addresses from B's key
source "$(dirname "$0")/lib.sh"
need ip wg ping
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }

A=mgua-$RUN; B=mgub-$RUN
IF_A=mua$RUN; IF_B=mub$RUN
tmp=$(mktemp -d); trap 'cleanup; rm -rf "$tmp"' EXIT
netns "$A"; netns "$B"
veth "$A" 192.0.2.1 "$B" 192.0.2.2

for n in a b; do "$AGENT" keygen --config-dir "$tmp/$n" >/dev/null; "$AGENT" export --config-dir "$tmp/$n" > "$tmp/$n.pub"; done
"$AGENT" trust "$tmp/b.pub" --name node-b --config-dir "$tmp/a" >/dev/null
"$AGENT" trust "$tmp/a.pub" --name node-a --config-dir "$tmp/b" >/dev/null
echo "node-b 192.0.2.2:51821   # B's WireGuard endpoint" > "$tmp/a/static-peers"
echo "node-a 192.0.2.1:51821" > "$tmp/b/static-peers"
ipv4() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/mesh ipv4/ {print $3}'; }
ipv6() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/mesh ipv6/ {print $3}'; }

ip netns exec "$A" "$AGENT" up --userspace --interface "$IF_A" --config-dir "$tmp/a" --runtime-dir "$tmp/run" 2>"$tmp/a.log" &
PID_A=$!; PIDS+=($PID_A)
ip netns exec "$B" "$AGENT" up --interface "$IF_B" --config-dir "$tmp/b" --runtime-dir "$tmp/run" 2>"$tmp/b.log" &
PID_B=$!; PIDS+=($PID_B)
wait_socket "$IF_A"; wait_socket "$IF_B"
for _ in $(seq 100); do grep -q "running" "$tmp/a.log" && grep -q "running" "$tmp/b.log" && break; sleep 0.05; done

check "auto mode chose userspace and said why" grep -q "data plane userspace (userspace: the kernel has no wireguard module" "$tmp/b.log"
status_b=$("$AGENT" status --interface "$IF_B" --runtime-dir "$tmp/run")
check "status says the mode and why" grep -q "^mode: *userspace (userspace: the kernel has no wireguard module" <<<"$status_b"
check "status lists the peer and its endpoint" grep -q "192.0.2.1:51821" <<<"$status_b"
check "the interface carries the mesh IPv4 /16" grep -q "$(ipv4 a)/16" <<<"$(ip -n "$A" addr show "$IF_A")"
check "the interface carries the mesh IPv6 /64" grep -q "$(ipv6 a)/64" <<<"$(ip -n "$A" addr show "$IF_A")"
check "ping the peer's mesh IPv4" ip netns exec "$A" ping -c 3 -i 0.2 -W 2 "$(ipv4 b)"
check "ping the peer's mesh IPv6" ip netns exec "$B" ping -6 -c 3 -i 0.2 -W 2 "$(ipv6 a)"
check "wg show: the peer's allowed IPs are its mesh /32 and /128" \
    grep -q "$(ipv4 b)/32" <<<"$(ip netns exec "$A" wg show "$IF_A" allowed-ips)"
check "wg show: the private key is the identity's WireGuard key" \
    test "$(ip netns exec "$A" wg show "$IF_A" public-key)" = "$("$AGENT" show-identity --config-dir "$tmp/a" 2>/dev/null | awk '/wireguard/ {print $2}')"

"$AGENT" revoke node-b --config-dir "$tmp/a" >/dev/null
t0=$(date +%s%N)
for _ in $(seq 500); do [[ -z $(ip netns exec "$A" wg show "$IF_A" peers) ]] && break; sleep 0.02; done
t1=$(date +%s%N)
# The time is reported, not asserted (benchmarks measure; tests check behaviour).
check "a revoke applies by itself, no signal needed (took $(( (t1 - t0) / 1000000 )) ms)" test -z "$(ip netns exec "$A" wg show "$IF_A" peers)"
check "the revoked peer is unreachable" bash -c "! ip netns exec $A ping -c 1 -W 1 $(ipv4 b)"
"$AGENT" trust "$tmp/b.pub" --name node-b --config-dir "$tmp/a" >/dev/null
for _ in $(seq 500); do [[ -n $(ip netns exec "$A" wg show "$IF_A" peers) ]] && break; sleep 0.02; done
check "trusting it again brings it back without a restart" test -n "$(ip netns exec "$A" wg show "$IF_A" peers)"
ip netns exec "$A" wg set "$IF_A" peer "$(ip netns exec "$B" wg show "$IF_B" public-key)" remove
kill -HUP "$PID_A"
for _ in $(seq 500); do [[ -n $(ip netns exec "$A" wg show "$IF_A" peers) ]] && break; sleep 0.02; done
check "SIGHUP repairs drift (a peer removed behind the agent's back)" test -n "$(ip netns exec "$A" wg show "$IF_A" peers)"

kill -TERM "$PID_A"; wait "$PID_A"; rc=$?
check "SIGTERM exits cleanly" test "$rc" -eq 0
check "SIGTERM removes the interface" bash -c "! ip -n $A link show $IF_A 2>/dev/null"
check "status after stop says no agent runs" bash -c "! $AGENT status --interface $IF_A --runtime-dir $tmp/run 2>&1 | grep -q '^mode'"

"$AGENT" keygen --config-dir "$tmp/k" >/dev/null
if ! "$AGENT" up --kernel --interface mgk$RUN --config-dir "$tmp/k" 2>"$tmp/k.log"; then
    check "--kernel without the module fails with one line" test "$(wc -l < "$tmp/k.log")" -eq 1
    check "the --kernel error says what to do" grep -q "run with --userspace" "$tmp/k.log"
else
    bad "--kernel succeeded on a host without the wireguard module"
fi
summary
