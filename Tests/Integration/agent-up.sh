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
# The admin group of A's control socket; removed on exit.
GROUP=mgadm$RUN
groupadd "$GROUP"; GID=$(getent group "$GROUP" | cut -d: -f3)
IF_A=mua$RUN; IF_B=mub$RUN
tmp=$(mktemp -d); trap 'cleanup; rm -rf "$tmp"; groupdel "$GROUP" 2>/dev/null' EXIT
netns "$A"; netns "$B"
veth "$A" 192.0.2.1 "$B" 192.0.2.2

for n in a b; do "$AGENT" keygen --config-dir "$tmp/$n" >/dev/null; "$AGENT" export --config-dir "$tmp/$n" > "$tmp/$n.pub"; done
"$AGENT" trust "$tmp/b.pub" --name node-b --config-dir "$tmp/a" >/dev/null
"$AGENT" trust "$tmp/a.pub" --name node-a --config-dir "$tmp/b" >/dev/null
echo "node-b 192.0.2.2:51821   # B's WireGuard endpoint" > "$tmp/a/static-peers"
echo "node-a 192.0.2.1:51821" > "$tmp/b/static-peers"
ipv4() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/mesh ipv4/ {print $3}'; }
ipv6() { "$AGENT" show-identity --config-dir "$tmp/$1" 2>/dev/null | awk '/mesh ipv6/ {print $3}'; }

# A runs as systemd would start a Type=notify unit with WatchdogSec=1s: a
# listener on NOTIFY_SOCKET records every datagram, one per line.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n"); f.flush()
' "$tmp/notify.sock" "$tmp/notify.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $tmp/notify.sock ]] && break; sleep 0.02; done
NOTIFY_SOCKET=$tmp/notify.sock WATCHDOG_USEC=1000000 \
ip netns exec "$A" "$AGENT" up --userspace --interface "$IF_A" --config-dir "$tmp/a" --runtime-dir "$tmp/runa" --admin-group "$GROUP" \
    --metrics-address 127.0.0.1:9586 --stun-server 192.0.2.99:3478 --stun-server 192.0.2.98 2>"$tmp/a.log" &
PID_A=$!; PIDS+=($PID_A)
# B takes its settings from its configuration file; the flag overrides the file's log format.
cat > "$tmp/b/meshguard-agent.toml" <<EOF
# B's settings
interface = "$IF_B"
mtu = 1380
runtime-dir = "$tmp/runb"
log-format = "text"   # overridden by --log-format json
EOF
ip netns exec "$B" "$AGENT" up --config-dir "$tmp/b" --log-format json 2>"$tmp/b.log" &
PID_B=$!; PIDS+=($PID_B)
wait_socket "$IF_A"; wait_socket "$IF_B"
for _ in $(seq 100); do grep -q "running" "$tmp/a.log" && grep -q "running" "$tmp/b.log" && break; sleep 0.05; done
for _ in $(seq 100); do grep -q "^READY=1" "$tmp/notify.log" 2>/dev/null && break; sleep 0.05; done
check "systemd: READY=1 with a status line once up" grep -q "^READY=1|STATUS=$IF_A userspace: 1 peer(s)" "$tmp/notify.log"
check "STUN servers that never answer delay nothing: ready at once, status says the NAT is unknown" \
    bash -c "'$AGENT' status --runtime-dir '$tmp/runa' | grep -qx 'nat:        public unknown, mapping unknown'"

check "--log-format json: every log line is an object with time, level and message" python3 -c '
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) >= 3, lines
for l in lines:
    d = json.loads(l)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["time"]) and d["level"] in ("info", "warning") and d["message"], d
' "$tmp/b.log"
check "the configuration file sets the interface, its MTU and the runtime directory" \
    bash -c "ip -n $B link show $IF_B | grep -q 'mtu 1380' && test -S $tmp/runb/control.sock"
check "auto mode chose userspace and said why" grep -q "data plane userspace (userspace: the kernel has no wireguard module" "$tmp/b.log"
status_b=$("$AGENT" status --runtime-dir "$tmp/runb")
check "status says the mode and why" grep -q "^mode: *userspace (userspace: the kernel has no wireguard module" <<<"$status_b"
check "status lists the peer and its endpoint" grep -q "192.0.2.1:51821" <<<"$status_b"
check "status names the peer and its state" grep -Eq "^node-a +[^ ]+ +static +192.0.2.1:51821 +static" <<<"$status_b"
json_a=$("$AGENT" status --json --runtime-dir "$tmp/runa")
check "status --json: schema, mode, interface, own keys" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["schema"] == 1 and d["mode"] == "userspace" and d["interface"] == sys.argv[2], d
assert d["identity"] == sys.argv[3] and d["trust"] == "enforced" and d["peerCount"] == 1
m = d["members"][0]
assert m["name"] == "node-b" and m["endpoint"] == "192.0.2.2:51821" and m["configured"] and m["routed"], m
assert m["meshIPv4"] == sys.argv[4] and m["state"] == "static" and m["path"] == "static"
' "$json_a" "$IF_A" "$(cat "$tmp/a.pub")" "$(ipv4 b)"
check "peers lists the WireGuard peer" grep -q "^node-b .*192.0.2.2:51821 *$(ipv4 b)" <("$AGENT" peers --runtime-dir "$tmp/runa")
check "the control socket is root:$GROUP 0660, its directory 0750" \
    test "$(stat -c '%U:%G %a' "$tmp/runa/control.sock") $(stat -c %a "$tmp/runa")" = "root:$GROUP 660 750"
check "without a group the socket is root's only (0600, directory 0700)" \
    test "$(stat -c '%U %a' "$tmp/runb/control.sock") $(stat -c %a "$tmp/runb")" = "root 600 700"
chmod o+x "$tmp"
check "a member of the admin group may ask" timeout 5 setpriv --reuid nobody --regid nogroup --groups "$GID" "$AGENT" status --runtime-dir "$tmp/runa"
rc=0; timeout 5 setpriv --reuid nobody --regid nogroup --clear-groups "$AGENT" status --runtime-dir "$tmp/runa" >"$tmp/denied.out" 2>&1 || rc=$?
check "anyone else gets a clear permission error at once, not a hang" \
    bash -c "[[ $rc -eq 1 ]] && grep -q 'permission denied on $tmp/runa/control.sock: run as root or as a member' '$tmp/denied.out' && [[ \$(wc -l < '$tmp/denied.out') -eq 1 ]]"
check "a second agent on the same runtime directory refuses to start" \
    bash -c "! ip netns exec $A $AGENT up --userspace --interface x$IF_A --config-dir $tmp/a --runtime-dir $tmp/runa 2>$tmp/second.log && grep -q 'another meshguard-agent is running' $tmp/second.log && ! ip -n $A link show x$IF_A 2>/dev/null"
check "the interface carries the mesh IPv4 /16" grep -q "$(ipv4 a)/16" <<<"$(ip -n "$A" addr show "$IF_A")"
check "the interface carries the mesh IPv6 /64" grep -q "$(ipv6 a)/64" <<<"$(ip -n "$A" addr show "$IF_A")"
check "ping the peer's mesh IPv4" ip netns exec "$A" ping -c 3 -i 0.2 -W 2 "$(ipv4 b)"
check "ping the peer's mesh IPv6" ip netns exec "$B" ping -6 -c 3 -i 0.2 -W 2 "$(ipv6 a)"
check "metrics: a Prometheus scrape shows the peer, its traffic and the members" ip netns exec "$A" python3 -c '
import urllib.request, urllib.error
r = urllib.request.urlopen("http://127.0.0.1:9586/metrics", timeout=5)
assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
t = r.read().decode()
assert "meshguard_peers 1\n" in t and "meshguard_members{state=\"static\"} 1\n" in t, t
sessions = [l for l in t.splitlines() if l.startswith("meshguard_wireguard_handshakes_total{kind=\"session\"}")]
assert sessions and int(sessions[0].split()[-1]) >= 1, t
assert "meshguard_wireguard_drops_total{reason=\"invalid-mac\"}" in t, t
rx = [l for l in t.splitlines() if l.startswith("meshguard_peer_receive_bytes_total{peer=\"node-b\"")]
assert rx and int(rx[0].split()[-1]) > 0, t
try:
    urllib.request.urlopen("http://127.0.0.1:9586/", timeout=5); raise SystemExit("no 404")
except urllib.error.HTTPError as e:
    assert e.code == 404
'
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

check "systemd: SIGHUP is announced (RELOADING=1, then READY=1)" \
    awk '/^RELOADING=1\|MONOTONIC_USEC=[0-9]+$/ {r = 1} r && /^READY=1/ {ok = 1} END {exit !ok}' "$tmp/notify.log"
for _ in $(seq 100); do [[ $(grep -c "^WATCHDOG=1$" "$tmp/notify.log") -ge 2 ]] && break; sleep 0.05; done
check "systemd: the watchdog is fed every half period" test "$(grep -c "^WATCHDOG=1$" "$tmp/notify.log")" -ge 2
kill -TERM "$PID_A"; wait "$PID_A"; rc=$?
check "systemd: SIGTERM is announced (STOPPING=1)" grep -q "^STOPPING=1$" "$tmp/notify.log"
check "SIGTERM exits cleanly" test "$rc" -eq 0
check "SIGTERM removes the interface" bash -c "! ip -n $A link show $IF_A 2>/dev/null"
"$AGENT" down --runtime-dir "$tmp/runb" >"$tmp/down.out" 2>&1
rc=0; wait "$PID_B" || rc=$?
check "down: the agent says it stops, then exits cleanly" bash -c "grep -q '^stopping' $tmp/down.out && [[ $rc -eq 0 ]]"
check "down removes the interface" bash -c "! ip -n $B link show $IF_B 2>/dev/null"
check "status after stop says no agent runs" grep -q "no meshguard-agent is running" <("$AGENT" status --runtime-dir "$tmp/runa" 2>&1)

"$AGENT" keygen --config-dir "$tmp/k" >/dev/null
if ! "$AGENT" up --kernel --interface mgk$RUN --config-dir "$tmp/k" 2>"$tmp/k.log"; then
    check "--kernel without the module fails with one line" test "$(wc -l < "$tmp/k.log")" -eq 1
    check "the --kernel error says what to do" grep -q "run with --userspace" "$tmp/k.log"
else
    bad "--kernel succeeded on a host without the wireguard module"
fi
summary
