#!/usr/bin/env bash
# bench/userspace-throughput.sh [SECONDS] [RUNS]: TCP throughput (iperf3, one
# stream) between two network namespaces over one veth, measured in the same
# run through (1) the raw veth, (2) Debian's wireguard-go, (3) our userspace
# engine (release build). Both tunnels stay up side by side and are measured
# alternately RUNS times (default 3), so background load hits both alike;
# prints the median Mbit/s of each and our ratio to wireguard-go. Run as
# root. Results go in docs/performance.md.
#
#   ns S (server)  eth0 192.0.2.1 ── veth ── 192.0.2.2 eth0  ns C (client)
#                  wireguard-go 10.7.0.1 :51820      10.7.0.2 :51821
#                  ours         10.8.0.1 :51830      10.8.0.2 :51831
set -euo pipefail
SECS=${1:-10}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=$$
command -v iperf3 >/dev/null || { apt-get install -y -qq --no-install-recommends iperf3 >/dev/null; }
for c in wg wireguard-go ip; do command -v $c >/dev/null || { echo "missing $c: run scripts/bootstrap"; exit 1; }; done
(cd "$ROOT" && swift build -c release --product meshguard-agent >/dev/null)
AGENT=$ROOT/.build/release/meshguard-agent

S=bs-$RUN; C=bc-$RUN
PIDS=()
cleanup() { set +e; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; ip netns del $S 2>/dev/null; ip netns del $C 2>/dev/null; rm -rf "$tmp"; }
tmp=$(mktemp -d); trap cleanup EXIT
ip netns add $S; ip netns add $C
ip link add v$RUN-s type veth peer name v$RUN-c
ip link set v$RUN-s netns $S; ip link set v$RUN-c netns $C
ip -n $S addr add 192.0.2.1/24 dev v$RUN-s; ip -n $C addr add 192.0.2.2/24 dev v$RUN-c
for n in $S $C; do ip -n $n link set lo up; done
ip -n $S link set v$RUN-s up; ip -n $C link set v$RUN-c up

ip netns exec $S iperf3 -s -D -1 >/dev/null 2>&1 || true
measure() {  # measure ADDR -> Mbit/s (receiver side)
    ip netns exec $S iperf3 -s -1 >/dev/null 2>&1 &
    local sp=$!
    sleep 0.3
    local out
    out=$(ip netns exec $C iperf3 -c "$1" -t "$SECS" -J 2>/dev/null || true)
    wait $sp 2>/dev/null || true
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(round(d["end"]["sum_received"]["bits_per_second"]/1e6))' <<<"$out" 2>/dev/null || echo 0
}

KS=$(wg genkey); KC=$(wg genkey); PS=$(echo "$KS" | wg pubkey); PC=$(echo "$KC" | wg pubkey)
echo "$KS" > "$tmp/ks"; echo "$KC" > "$tmp/kc"

tunnel() {  # tunnel KIND NET PORT: start both ends with KIND (wggo|ours) on NET.1/NET.2, ports PORT/PORT+1
    local kind=$1 net=$2 port=$3
    local ifs=t${kind:0:1}s$RUN ifc=t${kind:0:1}c$RUN
    for pair in "$S:$ifs" "$C:$ifc"; do
        local ns=${pair%%:*} ifn=${pair#*:}
        if [[ $kind == wggo ]]; then
            WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec $ns wireguard-go -f $ifn >/dev/null 2>&1 &
        else
            ip netns exec $ns "$AGENT" wireguard $ifn 2>/dev/null &
        fi
        PIDS+=($!)
        for _ in $(seq 100); do [[ -S /var/run/wireguard/$ifn.sock ]] && break; sleep 0.05; done
    done
    ip netns exec $S wg set $ifs private-key "$tmp/ks" listen-port $port peer "$PC" allowed-ips $net.2/32 endpoint 192.0.2.2:$((port + 1))
    ip netns exec $C wg set $ifc private-key "$tmp/kc" listen-port $((port + 1)) peer "$PS" allowed-ips $net.1/32 endpoint 192.0.2.1:$port
    ip -n $S addr add $net.1/24 dev $ifs; ip -n $C addr add $net.2/24 dev $ifc
    ip -n $S link set $ifs mtu 1420 up; ip -n $C link set $ifc mtu 1420 up
    ip netns exec $C ping -c 2 -W 2 $net.1 >/dev/null
}

median() { python3 -c 'import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:]))))' "$@"; }

veth=$(measure 192.0.2.1)
tunnel wggo 10.7.0 51820
tunnel ours 10.8.0 51830
W=(); O=()
for _ in $(seq "$RUNS"); do W+=("$(measure 10.7.0.1)"); O+=("$(measure 10.8.0.1)"); done
wggo=$(median "${W[@]}"); ours=$(median "${O[@]}")

ratio=$(python3 -c "print(f'{$ours/$wggo:.2f}' if $wggo else 'n/a')")
echo "iperf3 TCP, 1 stream, ${SECS}s, median of $RUNS runs, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-26s %8s Mbit/s\n' "raw veth" "$veth" "wireguard-go $(dpkg-query -W -f='${Version}' wireguard-go)" "$wggo" "meshguard-agent" "$ours"
echo "ratio meshguard-agent / wireguard-go: $ratio"
echo "runs (Mbit/s): wireguard-go ${W[*]}; meshguard-agent ${O[*]}"
