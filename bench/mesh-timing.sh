#!/usr/bin/env bash
# bench/mesh-timing.sh [RUNS]: how fast the real mesh reacts (issue 5, item 9),
# in network namespaces on this host, userspace mode, LAN preset. Per run:
#   join     a fifth node joins a converged mesh of four through one seed: time
#            from its first contact (the seed's first answer, the agent's
#            "first contact" log line) until it has pinged every member's mesh
#            address (pings retried every 10 ms from the agent's start, each
#            waiting 200 ms for its answer); also from starting the agent;
#   failure  one member is killed with SIGKILL: time until it is gone from
#            every other node's WireGuard peers.
# Prints each run and the median and maximum. Run as root. KEEP_SLOW=DIR keeps
# the nodes' logs of a failure run slower than 5 s in DIR/run-N.
set -euo pipefail
RUNS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && swift build -c release --product meshguard-agent >/dev/null)
AGENT=$ROOT/.build/release/meshguard-agent
now() { date +%s%N; }

run_once() {
    local R=$1 tmp pids=() i j
    tmp=$(mktemp -d)
    local SW=mt-sw-$R
    cleanup_run() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        for i in 1 2 3 4 5; do ip netns del "mt$i-$R" 2>/dev/null || true; done
        ip netns del "$SW" 2>/dev/null || true
        rm -rf "$tmp"
    }
    ip netns add "$SW"; ip -n "$SW" link add br0 type bridge; ip -n "$SW" link set br0 up
    for i in 1 2 3 4 5; do
        ip netns add "mt$i-$R"; ip -n "mt$i-$R" link set lo up
        ip link add "mtv$R-$i" type veth peer name "mtp$R-$i"
        ip link set "mtv$R-$i" netns "mt$i-$R"; ip link set "mtp$R-$i" netns "$SW"
        ip -n "mt$i-$R" addr add "10.0.0.$i/24" dev "mtv$R-$i"; ip -n "mt$i-$R" link set "mtv$R-$i" up
        ip -n "$SW" link set "mtp$R-$i" master br0 up
        "$AGENT" keygen --config-dir "$tmp/n$i" >/dev/null; "$AGENT" export --config-dir "$tmp/n$i" > "$tmp/n$i.pub"
    done
    for i in 1 2 3 4 5; do for j in 1 2 3 4 5; do
        [[ $i != "$j" ]] && "$AGENT" trust "$tmp/n$j.pub" --name "n$j" --config-dir "$tmp/n$i" >/dev/null
    done; done
    start() {
        local i=$1; shift
        ip netns exec "mt$i-$R" "$AGENT" up --userspace --interface "mt$i$R" --config-dir "$tmp/n$i" --runtime-dir "$tmp/run$i" "$@" \
            2> >(while IFS= read -r line; do echo "$(now) $line"; done > "$tmp/n$i.log") &
        pids+=($!)
    }
    peers() { ip netns exec "mt$1-$R" wg show "mt$1$R" peers 2>/dev/null | wc -l; }
    start 1
    for i in 2 3 4; do start "$i" --seed 10.0.0.1:51821; done
    for _ in $(seq 300); do [[ $(peers 1) -eq 3 && $(peers 2) -eq 3 && $(peers 3) -eq 3 && $(peers 4) -eq 3 ]] && break; sleep 0.05; done
    sleep 1   # let the four settle before the join is timed
    local addrs=() t0 t1
    for j in 1 2 3 4; do addrs+=("$("$AGENT" show-identity --config-dir "$tmp/n$j" 2>/dev/null | awk '/mesh ipv4/ {print $3}')"); done
    t0=$(now)
    # Node 5's log, each line stamped with the wall clock on arrival.
    ip netns exec "mt5-$R" "$AGENT" up --userspace --interface "mt5$R" --config-dir "$tmp/n5" --runtime-dir "$tmp/run5" --seed 10.0.0.1:51821 \
        2> >(while IFS= read -r line; do echo "$(now) $line"; done > "$tmp/n5.log") &
    pids+=($!)
    local pingers=()
    for a in "${addrs[@]}"; do
        ( end=$(( $(now) + 30000000000 ))
          while (( $(now) < end )); do ip netns exec "mt5-$R" ping -c 1 -W 0.2 "$a" >/dev/null 2>&1 && exit 0; sleep 0.01; done; exit 1 ) &
        pingers+=($!)
    done
    for p in "${pingers[@]}"; do wait "$p" || true; done
    t1=$(now)
    local contact
    contact=$(awk '/first contact/ {print $1; exit}' "$tmp/n5.log")
    local join=$(( (t1 - ${contact:-$t0}) / 1000000 )) start=$(( (t1 - t0) / 1000000 ))
    kill -9 "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true   # node 2
    t0=$(now)
    for _ in $(seq 600); do [[ $(peers 1) -eq 3 && $(peers 3) -eq 3 && $(peers 4) -eq 3 && $(peers 5) -eq 3 ]] && break; sleep 0.02; done
    t1=$(now)
    local fail=$(( (t1 - t0) / 1000000 ))
    # Keep the nodes' logs (lines stamped with the wall clock in ns) of a run slower than 5 s.
    if [[ -n ${KEEP_SLOW:-} && $fail -gt 5000 ]]; then
        mkdir -p "$KEEP_SLOW/run-$R"; cp "$tmp"/n*.log "$KEEP_SLOW/run-$R/"; echo "$t0 kill" > "$KEEP_SLOW/run-$R/kill"
    fi
    cleanup_run
    echo "$join $start $fail"
}

joins=(); starts=(); fails=()
echo "run  first-contact-to-all-pings-ms  agent-start-to-all-pings-ms  failure-removed-everywhere-ms"
for r in $(seq 1 "$RUNS"); do
    read -r j s f < <(run_once "$$$r")
    joins+=("$j"); starts+=("$s"); fails+=("$f")
    printf '%3d  %29s  %27s  %29s\n' "$r" "$j" "$s" "$f"
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, max %d ms", a[int((NR+1)/2)], a[NR]}'; }
echo "join (from the seed's first answer): $(stats "${joins[@]}")"
echo "join (from starting the agent):      $(stats "${starts[@]}")"
echo "failure: $(stats "${fails[@]}")"
