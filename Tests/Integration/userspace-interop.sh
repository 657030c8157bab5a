#!/usr/bin/env bash
# Our userspace engine against Debian's wireguard-go, and against itself, in
# network namespaces. Run as root.
#
#   ns A (mgA-$RUN)                         ns B (mgB-$RUN)
#   eth0 192.0.2.1/24 ------- veth -------- eth0 192.0.2.2/24
#   IF_A: wireguard-go                      IF_B: meshguard-agent wireguard
#         10.9.0.1/24 fd09::1/64                  10.9.0.2/24 fd09::2/64
#
# Checks: handshake initiated from each side, ping both ways over IPv4 and
# IPv6, `wg show` on our interface (endpoint, latest handshake, transfer),
# `wg set` removing and re-adding a peer, `wg showconf`; then our engine
# against a second instance of itself.
source "$(dirname "$0")/lib.sh"
need ip wg wireguard-go ping
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }

A=mgA-$RUN; B=mgB-$RUN
IF_A=wgoa$RUN; IF_B=mgb$RUN
netns "$A"; netns "$B"
veth "$A" 192.0.2.1 "$B" 192.0.2.2

KA=$(wg genkey); KB=$(wg genkey)
PA=$(echo "$KA" | wg pubkey); PB=$(echo "$KB" | wg pubkey)
PSK=$(wg genpsk)
tmp=$(mktemp -d); PIDS+=(); trap 'cleanup; rm -rf "$tmp"' EXIT
echo "$KA" > "$tmp/ka"; echo "$KB" > "$tmp/kb"; echo "$PSK" > "$tmp/psk"

echo "== wireguard-go ($IF_A) <-> meshguard-agent ($IF_B)"
start_wggo "$A" "$IF_A"
start_ours "$B" "$IF_B"
ip netns exec "$A" wg set "$IF_A" private-key "$tmp/ka" listen-port 51820 \
    peer "$PB" preshared-key "$tmp/psk" endpoint 192.0.2.2:51821 allowed-ips 10.9.0.2/32,fd09::2/128
ip netns exec "$B" wg set "$IF_B" private-key "$tmp/kb" listen-port 51821 \
    peer "$PA" preshared-key "$tmp/psk" endpoint 192.0.2.1:51820 allowed-ips 10.9.0.1/32,fd09::1/128
address "$A" "$IF_A" 10.9.0.1 fd09::1
address "$B" "$IF_B" 10.9.0.2 fd09::2

check "ours initiates: ping wireguard-go over IPv4" ip netns exec "$B" ping -c 3 -i 0.2 -W 2 10.9.0.1
check "ping wireguard-go over IPv6" ip netns exec "$B" ping -6 -c 3 -i 0.2 -W 2 fd09::1
check "wireguard-go pings us back" ip netns exec "$A" ping -c 3 -i 0.2 -W 2 10.9.0.2
show=$(ip netns exec "$B" wg show "$IF_B" dump)
peer_line=$(grep "^$PA" <<<"$show" || true)
check "wg show lists the peer with its endpoint" grep -q "192.0.2.1:51820" <<<"$peer_line"
hs=$(awk '{print $5}' <<<"$peer_line"); rx=$(awk '{print $6}' <<<"$peer_line"); tx=$(awk '{print $7}' <<<"$peer_line")
check "latest handshake is recent ($hs)" test "${hs:-0}" -gt $(( $(date +%s) - 60 ))
check "transfer counters count ($rx rx, $tx tx)" test "${rx:-0}" -gt 0 -a "${tx:-0}" -gt 0
check "wg show reports our listen port" grep -q "51821" <<<"$(ip netns exec "$B" wg show "$IF_B" listen-port)"
check "wg showconf round-trips the private key" grep -q "PrivateKey = $KB" <<<"$(ip netns exec "$B" wg showconf "$IF_B")"
ip netns exec "$B" wg showconf "$IF_B" > "$tmp/conf"
hs_before=$(ip netns exec "$B" wg show "$IF_B" latest-handshakes | awk '{print $2}')
check "wg syncconf with the same configuration succeeds" ip netns exec "$B" wg syncconf "$IF_B" "$tmp/conf"
check "syncconf kept the session (same latest handshake)" test "$hs_before" = "$(ip netns exec "$B" wg show "$IF_B" latest-handshakes | awk '{print $2}')"
check "traffic still flows after syncconf" ip netns exec "$B" ping -c 1 -W 2 10.9.0.1
check "wg setconf applies a whole configuration" ip netns exec "$B" wg setconf "$IF_B" "$tmp/conf"
uapi() {  # uapi IFACE REQUEST: send a raw UAPI request, print the reply
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()); print(s.recv(65536).decode())' \
        "/var/run/wireguard/$1.sock" "$2"
}
check "a bad UAPI set is refused with EINVAL" grep -q "errno=-22" <<<"$(uapi "$IF_B" $'set=1\nlisten_port=70000\n\n')"
check "a line without '=' is refused with EPROTO" grep -q "errno=-71" <<<"$(uapi "$IF_B" $'set=1\nbogus\n\n')"
check "the engine still answers get after bad requests" grep -q "listen_port=51821" <<<"$(uapi "$IF_B" $'get=1\n\n')"

echo "== sessions reset; wireguard-go initiates"
ip netns exec "$B" wg set "$IF_B" peer "$PA" remove
check "a removed peer is gone from wg show" bash -c "! ip netns exec $B wg show $IF_B peers | grep -q '$PA'"
check "no traffic without the peer" bash -c "! ip netns exec $B ping -c 1 -W 1 10.9.0.1"
ip netns exec "$A" wg set "$IF_A" peer "$PB" remove
ip netns exec "$A" wg set "$IF_A" peer "$PB" preshared-key "$tmp/psk" endpoint 192.0.2.2:51821 allowed-ips 10.9.0.2/32,fd09::2/128
ip netns exec "$B" wg set "$IF_B" peer "$PA" preshared-key "$tmp/psk" allowed-ips 10.9.0.1/32,fd09::1/128
check "wireguard-go initiates: ping us over IPv4" ip netns exec "$A" ping -c 3 -i 0.2 -W 2 10.9.0.2
check "wireguard-go pings us over IPv6" ip netns exec "$A" ping -6 -c 3 -i 0.2 -W 2 fd09::2
check "we learned wireguard-go's endpoint from its handshake" grep -q "192.0.2.1:51820" <<<"$(ip netns exec "$B" wg show "$IF_B" endpoints)"
check "we answer" ip netns exec "$B" ping -c 2 -i 0.2 -W 2 10.9.0.1

echo "== meshguard-agent <-> meshguard-agent"
ip netns exec "$A" ip link del "$IF_A"
kill "${PIDS[0]}" 2>/dev/null || true
IF_A2=mga$RUN
start_ours "$A" "$IF_A2"
# B first: A's persistent keepalive starts a handshake as soon as it is set.
ip netns exec "$B" wg set "$IF_B" peer "$PA" remove
ip netns exec "$B" wg set "$IF_B" peer "$PA" endpoint 192.0.2.1:51820 allowed-ips 10.9.0.1/32,fd09::1/128
ip netns exec "$A" wg set "$IF_A2" private-key "$tmp/ka" listen-port 51820 \
    peer "$PB" endpoint 192.0.2.2:51821 allowed-ips 10.9.0.2/32,fd09::2/128 persistent-keepalive 25
address "$A" "$IF_A2" 10.9.0.1 fd09::1
check "ours to ours over IPv4" ip netns exec "$A" ping -c 3 -i 0.2 -W 2 10.9.0.2
check "ours to ours over IPv6" ip netns exec "$B" ping -6 -c 3 -i 0.2 -W 2 fd09::1
check "persistent keepalive shows in wg show" grep -q "25" <<<"$(ip netns exec "$A" wg show "$IF_A2" persistent-keepalive)"

summary
