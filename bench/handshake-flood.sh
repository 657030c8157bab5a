#!/usr/bin/env bash
# bench/handshake-flood.sh [SECONDS] [RUNS]: a handshake-initiation flood
# (Tests/Integration/wgflood.py: valid mac1, spoofed sources from
# 100.64.0.0/10, as fast as one Python sender goes) at two responders in the
# same run, alternately RUNS times (default 3): Debian's wireguard-go and our
# userspace engine (`meshguard-agent wireguard`, release build), both set up
# with wg(8) alike. For each: flood packets sent, cookie replies the responder
# sent (counted where they come back: the flooder's interface), the
# responder's CPU (one core = 100%), and how long a legitimate peer
# (wireguard-go) takes to make a fresh handshake and ping under the flood
# (without a flood: a few ms; under one, a cookie round trip: the peer waits
# REKEY_TIMEOUT, 5 s, before it retries with mac2). Prints medians and our
# ratio to wireguard-go. Run as root. Results go in docs/performance.md.
#
#   ns L: legitimate peer (wireguard-go) 192.0.2.1 ── 192.0.2.2 ns V: responder ── 198.51.100.1 ── 198.51.100.2 ns F: flooder
set -euo pipefail
SECS=${1:-10}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=$$
for c in wg wireguard-go ip python3; do command -v $c >/dev/null || { echo "missing $c: run scripts/bootstrap"; exit 1; }; done
(cd "$ROOT" && swift build -c release --product meshguard-agent >/dev/null)
AGENT=$ROOT/.build/release/meshguard-agent
L=bfl-$RUN; V=bfv-$RUN; F=bff-$RUN
PIDS=()
tmp=$(mktemp -d)
cleanup() { set +e; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; for n in $L $V $F; do ip netns del $n 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
for n in $L $V $F; do ip netns add $n; ip -n $n link set lo up; done
ip link add v$RUN-l type veth peer name v$RUN-v; ip link add w$RUN-v type veth peer name w$RUN-f
ip link set v$RUN-l netns $L; ip link set v$RUN-v netns $V; ip link set w$RUN-v netns $V; ip link set w$RUN-f netns $F
ip -n $L addr add 192.0.2.1/24 dev v$RUN-l; ip -n $V addr add 192.0.2.2/24 dev v$RUN-v
ip -n $V addr add 198.51.100.1/24 dev w$RUN-v; ip -n $F addr add 198.51.100.2/24 dev w$RUN-f
ip -n $L link set v$RUN-l up; ip -n $V link set v$RUN-v up; ip -n $V link set w$RUN-v up; ip -n $F link set w$RUN-f up
ip -n $V route add 100.64.0.0/10 via 198.51.100.2
for c in all default w$RUN-v; do ip netns exec $V sysctl -qw net.ipv4.conf.$c.rp_filter=0; done

KL=$(wg genkey); KV=$(wg genkey); PL=$(echo "$KL" | wg pubkey); PV=$(echo "$KV" | wg pubkey)
echo "$KL" > "$tmp/kl"; echo "$KV" > "$tmp/kv"
IFL=bfl$RUN
WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec $L wireguard-go -f $IFL >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -S /var/run/wireguard/$IFL.sock ]] && break; sleep 0.05; done
ip -n $L addr add 10.6.0.1/24 dev $IFL; ip -n $L link set $IFL up
ip netns exec $L wg set $IFL private-key "$tmp/kl" listen-port 51820

# responder KIND: start KIND (wggo|ours) in V on port 51830, tunnel address 10.6.0.2; sets RPID.
responder() {
    local ifn=bfv${1:0:1}$RUN
    if [[ $1 == wggo ]]; then
        WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec $V wireguard-go -f $ifn >/dev/null 2>&1 &
    else
        ip netns exec $V "$AGENT" wireguard $ifn 2>/dev/null &
    fi
    RPID=$!
    for _ in $(seq 100); do [[ -S /var/run/wireguard/$ifn.sock ]] && break; sleep 0.05; done
    ip netns exec $V wg set $ifn private-key "$tmp/kv" listen-port 51830 peer "$PL" allowed-ips 10.6.0.1/32
    ip -n $V addr add 10.6.0.2/24 dev $ifn; ip -n $V link set $ifn up
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
handshake_ms() {  # a fresh handshake from L (the peer removed and re-added) and a ping: ms, or "timeout"
    ip netns exec $L wg set $IFL peer "$PV" remove
    ip netns exec $L wg set $IFL peer "$PV" endpoint 192.0.2.2:51830 allowed-ips 10.6.0.2/32
    local t0; t0=$(now_ms)
    for _ in $(seq 30); do
        ip netns exec $L ping -c 1 -W 1 10.6.0.2 >/dev/null 2>&1 && { echo $(( $(now_ms) - t0 )); return; }
    done
    echo timeout
}
rx() { ip netns exec $F cat /sys/class/net/w$RUN-f/statistics/rx_packets; }
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
HZ=$(getconf CLK_TCK)
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print a[int((NR + 1) / 2)]}'; }

declare -A SENT REPLIES CPU HS IDLE
one() {  # one KIND
    local kind=$1 port=51830 pid
    responder "$kind"; pid=$RPID
    IDLE[$kind]+="$(handshake_ms) "
    local r0 c0 t0 out
    r0=$(rx); c0=$(cpu $pid); t0=$(now_ms)
    ip netns exec $F python3 "$ROOT/Tests/Integration/wgflood.py" --target 198.51.100.1:$port --key "$PV" --seconds "$SECS" > "$tmp/out" 2>&1 &
    local fp=$!
    sleep 1
    HS[$kind]+="$(handshake_ms) "
    wait $fp || true
    sleep 0.2
    local t1 c1 r1
    t1=$(now_ms); c1=$(cpu $pid); r1=$(rx)
    SENT[$kind]+="$(awk '/^sent/ {printf "%d", $2 / '"$SECS"'}' "$tmp/out") "
    REPLIES[$kind]+="$(( (r1 - r0) * 1000 / (t1 - t0) )) "
    CPU[$kind]+="$(( (c1 - c0) * 100 * 1000 / HZ / (t1 - t0) )) "
    kill $pid; wait $pid 2>/dev/null || true
}
for r in $(seq "$RUNS"); do
    one wggo
    one ours
    echo "run $r: wireguard-go: sent ${SENT[wggo]##* } replies/s ${REPLIES[wggo]} cpu ${CPU[wggo]} hs ${HS[wggo]} | ours: ${REPLIES[ours]} cpu ${CPU[ours]} hs ${HS[ours]}" >&2
done
printf "%-13s %12s %16s %10s %16s %16s\n" responder "flood pps" "cookie replies/s" "CPU %" "handshake ms" "idle handshake"
for k in wggo ours; do
    name=$([[ $k == wggo ]] && echo wireguard-go || echo meshguard)
    printf "%-13s %12s %16s %10s %16s %16s\n" $name \
        "$(tr ' ' '\n' <<<"${SENT[$k]}" | grep . | median)" "$(tr ' ' '\n' <<<"${REPLIES[$k]}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${CPU[$k]}" | grep . | median)" "$(tr ' ' '\n' <<<"${HS[$k]}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${IDLE[$k]}" | grep . | median)"
done
a=$(tr ' ' '\n' <<<"${REPLIES[ours]}" | grep . | median); b=$(tr ' ' '\n' <<<"${REPLIES[wggo]}" | grep . | median)
echo "cookie replies/s, ours / wireguard-go: $(python3 -c "print(round($a / max($b, 1), 2))")"
echo "handshakes under the flood (ms, each run): wireguard-go ${HS[wggo]}; ours ${HS[ours]}"
