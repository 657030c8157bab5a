#!/usr/bin/env bash
# Chaos (issue 8, item 4): five agents (userspace mode) in namespaces on a
# bridge, under a seeded random schedule of failures for CHAOS_SECONDS:
#
#   kill       kill -9 of a member, restarted at once with the same identity
#   kill-wait  kill -9, wait until every other member has removed it, restart
#   kill2      kill -9 of two members at once, wait for their removal, restart both
#   term       SIGTERM (a graceful leave) and restart
#   netem      loss (20-30 %) and delay (100-200 ms, jitter 10-50 ms) on what a
#              member sends, for 15-30 s, then cleared
#   partition  the bridge drops frames between two groups ({1 or 2} and the
#              rest); each side converges to itself, then the partition heals
#
# After every event the mesh must converge (deadline CHAOS_DEADLINE, 90 s):
# every live member has exactly the expected WireGuard peers (set of keys,
# each with its mesh /32 and /128 and nothing else), exactly one tunnel
# interface and its two routes; `status --json` shows every expected member
# alive, configured and routed and no other member configured; every pair
# pings over the mesh (IPv4; IPv6 around a ring). A killed member's interface
# and routes disappear with its process. At the end everything is stopped
# with SIGTERM: no interface, route, socket or namespace is left.
# Convergence times are printed per event and summarised per kind (figures,
# not assertions).
#
#   ns mgcsw: bridge br0 (and the nftables partition table)
#   ns mgc1..mgc5: eth0 10.0.0.i/24 ── veth ── br0      (every member seeds from all others)
#
# This kernel may have no sch_netem: loss and delay are made by a small
# packet forwarder (AF_PACKET, virtio-net headers so checksum offload and GSO
# pass through) put between the member's veth and the bridge while it lasts.
#
#   CHAOS_SEED=N        the schedule (printed; same seed, same events)
#   CHAOS_SECONDS=150   run events while less than this has passed (every kind runs once first)
#   CHAOS_ROUNDS=N      exactly N events instead (replay: with the printed seed)
#   CHAOS_DEADLINE=90   seconds before a convergence counts as failed
#   CHAOS_EVENTS=kill,netem  only these kinds, in turn (targets and durations stay seeded)
#   CHAOS_NETEM_LOSS, _DELAY, _JITTER  fixed impairment figures (percent, ms)
#   CHAOS_LOG_LEVEL=info, CHAOS_OUT=DIR (logs and times kept; on failure they
#   are always kept, in /tmp/mesh-chaos-<run> unless CHAOS_OUT says where)
source "$(dirname "$0")/lib.sh"
need ip wg ping nft python3
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }
N=5
CHAOS_SEED=${CHAOS_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 ))}
CHAOS_SECONDS=${CHAOS_SECONDS:-150}
CHAOS_ROUNDS=${CHAOS_ROUNDS:-0}
DEADLINE=${CHAOS_DEADLINE:-90}
LOG_LEVEL=${CHAOS_LOG_LEVEL:-info}
RANDOM=$CHAOS_SEED
echo "chaos: seed $CHAOS_SEED (replay: CHAOS_SEED=$CHAOS_SEED $0), ${CHAOS_SECONDS} s, deadline ${DEADLINE} s"

tmp=$(mktemp -d)
SW=mgcsw-$RUN
keep_logs() {
    local out=${CHAOS_OUT:-/tmp/mesh-chaos-$RUN}
    mkdir -p "$out" && cp "$tmp"/n*.log "$tmp"/times "$tmp"/impair.log "$out"/ 2>/dev/null
    echo "chaos: logs and times in $out"
}
finish() {
    set +e
    [[ ${#PIDS[@]} -gt 0 ]] && cleanup
    if [[ $FAILS -gt 0 || -n ${CHAOS_OUT:-} ]]; then keep_logs; fi
    for i in $(seq 1 $N); do rm -f "/var/run/wireguard/$(IFACE "$i").sock"; done
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$tmp"
    true
}
trap finish EXIT
IFACE() { echo "mgc$1$RUN" | cut -c1-15; }
NS() { echo "mgc$1-$RUN"; }
PORT() { echo "p$RUN-$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T_START=$(now_ms)
elapsed() { echo $(( ($(now_ms) - T_START) / 1000 )); }
# rnd N: R = a seeded random number in 0..N-1 (in this shell: a subshell's $RANDOM would not advance ours).
rnd() { R=$(( RANDOM % $1 )); }

netns "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for i in $(seq 1 $N); do
    netns "$(NS "$i")"
    ip link add "v$RUN-$i" type veth peer name "$(PORT "$i")"
    ip link set "v$RUN-$i" netns "$(NS "$i")"; ip link set "$(PORT "$i")" netns "$SW"
    ip -n "$(NS "$i")" link set "v$RUN-$i" name eth0
    ip -n "$(NS "$i")" addr add "10.0.0.$i/24" dev eth0
    ip -n "$(NS "$i")" link set eth0 up
    ip -n "$SW" link set "$(PORT "$i")" master br0 up
    "$AGENT" keygen --config-dir "$tmp/n$i" >/dev/null
    "$AGENT" export --config-dir "$tmp/n$i" >"$tmp/n$i.pub"
done
declare -a WGK V4 V6 PID LIVE GROUP SEEDS
for i in $(seq 1 $N); do
    for j in $(seq 1 $N); do
        [[ $i != "$j" ]] && "$AGENT" trust "$tmp/n$j.pub" --name "n$j" --config-dir "$tmp/n$i" >/dev/null
    done
    id=$("$AGENT" show-identity --config-dir "$tmp/n$i")
    WGK[i]=$(awk '/^wireguard:/ {print $2}' <<<"$id")
    V4[i]=$(awk '/^mesh ipv4:/ {print $3}' <<<"$id")
    V6[i]=$(awk '/^mesh ipv6:/ {print $3}' <<<"$id")
    SEEDS[i]=""
    for j in $(seq 1 $N); do [[ $i != "$j" ]] && SEEDS[i]+=" --seed 10.0.0.$j:51821"; done
    GROUP[i]=0
    LIVE[i]=0
done
touch "$tmp/times"

start() {
    local i=$1
    echo "=== chaos: start at $(elapsed) s" >>"$tmp/n$i.log"
    # shellcheck disable=SC2086
    ip netns exec "$(NS "$i")" "$AGENT" up --userspace --interface "$(IFACE "$i")" --config-dir "$tmp/n$i" \
        --runtime-dir "$tmp/run$i" ${SEEDS[i]} --log-level "$LOG_LEVEL" 2>>"$tmp/n$i.log" &
    PID[i]=$!; PIDS+=($!); LIVE[i]=1
}
# stop I SIGNAL: signals the agent and reaps it; RC is its exit status.
stop() {
    local i=$1
    echo "=== chaos: $2 at $(elapsed) s" >>"$tmp/n$i.log"
    kill "-$2" "${PID[i]}" 2>/dev/null || true
    RC=0; wait "${PID[i]}" 2>/dev/null || RC=$?
    LIVE[i]=0; forget "${PID[i]}"
}
# forget PID: it was reaped; cleanup must not signal a pid the system may have reused.
forget() { local q keep=(); for q in "${PIDS[@]}"; do [[ $q == "$1" ]] || keep+=("$q"); done; PIDS=("${keep[@]}"); }
live() { local i; for i in $(seq 1 $N); do [[ ${LIVE[i]} == 1 ]] && echo "$i"; done; true; }
# The members node I should have: live, on its side of a partition, not itself.
expected() { local j; for j in $(seq 1 $N); do [[ $j != "$1" && ${LIVE[j]} == 1 && ${GROUP[j]} == "${GROUP[$1]}" ]] && echo "$j"; done; true; }

# links I: the links in node I's namespace other than lo and eth0.
links() { ip -n "$(NS "$1")" -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vxE 'lo|eth0' || true; }
# meshroutes I: routes (v4 and v6) in node I's namespace that are not eth0's, but link-local.
meshroutes() { { ip -n "$(NS "$1")" route; ip -n "$(NS "$1")" -6 route; } 2>/dev/null | grep -v -e ' dev eth0 ' -e '^fe80::/64 ' || true; }
# One line per peer: key and its allowed IPs, sorted.
allowed() {
    ip netns exec "$(NS "$1")" wg show "$(IFACE "$1")" allowed-ips 2>/dev/null |
        while read -r k ips; do echo "$k $(tr ' ' '\n' <<<"$ips" | sort | tr '\n' ' ')"; done | sort
}
want_allowed() {
    local j
    for j in $(expected "$1"); do echo "${WGK[j]} $(printf '%s\n' "${V4[j]}/32" "${V6[j]}/128" | sort | tr '\n' ' ')"; done | sort
}
status_ok() {   # status_ok I: status --json agrees with expected()
    local names
    names=$(for j in $(expected "$1"); do echo "n$j"; done | paste -sd, -)
    python3 -c '
import json, sys
d = json.loads(sys.argv[2]); want = set(filter(None, sys.argv[1].split(",")))
names = [m["name"] for m in d["members"]]
assert len(names) == len(set(names)), ("duplicate members", names)
alive = {m["name"] for m in d["members"] if m["state"] == "alive"}
assert alive == want, ("alive", sorted(alive), "want", sorted(want))
for m in d["members"]:
    if m["name"] in want: assert m["configured"] and m["routed"], ("not programmed", m["name"])
    else: assert not m["configured"], ("stale peer", m["name"], m["state"])
assert d["memberCounts"]["suspect"] == 0, ("suspect", d["memberCounts"])
assert d["peerCount"] == len(want), ("peerCount", d["peerCount"])
' "$names" "$("$AGENT" status --json --runtime-dir "$tmp/run$1" 2>/dev/null)" 2>&1 | tail -1
}
# converged: the state expected() describes, everywhere; WHY says what is not there yet.
converged() {
    local i j why
    for i in $(live); do
        [[ $(links "$i") == "$(IFACE "$i")" ]] || { WHY="n$i: links [$(links "$i" | paste -sd' ')]"; return 1; }
        [[ $(meshroutes "$i" | grep -c " dev $(IFACE "$i") ") -eq 2 && $(meshroutes "$i" | grep -vc " dev $(IFACE "$i") ") -eq 0 ]] ||
            { WHY="n$i: routes [$(meshroutes "$i" | paste -sd';')]"; return 1; }
        [[ $(allowed "$i") == "$(want_allowed "$i")" ]] || { WHY="n$i: wg peers [$(allowed "$i" | cut -c1-8 | paste -sd' ')], want [$(want_allowed "$i" | cut -c1-8 | paste -sd' ')]"; return 1; }
    done
    for i in $(live); do
        why=$(status_ok "$i") || true
        [[ -z $why ]] || { WHY="n$i status: $why"; return 1; }
    done
    for i in $(live); do
        for j in $(expected "$i"); do
            ip netns exec "$(NS "$i")" ping -c 1 -W 1 "${V4[j]}" >/dev/null 2>&1 || { WHY="n$i cannot ping n$j"; return 1; }
        done
        j=$(expected "$i" | awk -v i="$i" '$1 > i' | head -1); [[ -n $j ]] || j=$(expected "$i" | head -1)
        [[ -z $j ]] || ip netns exec "$(NS "$i")" ping -6 -c 1 -W 1 "${V6[j]}" >/dev/null 2>&1 || { WHY="n$i cannot ping n$j over IPv6"; return 1; }
    done
    WHY=""
}
ABORT=0
# await KIND WHAT: polls until converged or the deadline; records the time under KIND.
await() {
    local kind=$1 what=$2 t0 i last=""
    t0=$(now_ms)
    while true; do
        for i in $(live); do
            if ! kill -0 "${PID[i]}" 2>/dev/null; then
                bad "$what: n$i exited unexpectedly"; tail -5 "$tmp/n$i.log" | sed 's/^/    /'; ABORT=1; return 1
            fi
        done
        if converged; then
            T=$(( $(now_ms) - t0 ))
            [[ $T -gt 3000 ]] || last=""
            echo "$kind $T" >>"$tmp/times"
            ok "$what: converged in $(awk -v t="$T" 'BEGIN { printf "%.1f", t / 1000 }') s${last:+ (last waited for: $last)}"
            return 0
        fi
        last=$WHY
        if (( $(now_ms) - t0 > DEADLINE * 1000 )); then
            bad "$what: did not converge in $DEADLINE s ($WHY)"
            for i in $(live); do
                echo "    n$i: $("$AGENT" status --runtime-dir "$tmp/run$i" 2>&1 | grep -E '^members|^peers' | paste -sd' ')"
            done
            ABORT=1; return 1
        fi
        sleep 0.2
    done
}
# A stopped member: its interface, its routes and its UAPI socket go with its process.
gone_clean() {
    local i=$1 what=$2 n
    for n in $(seq 50); do [[ -z $(links "$i") && -z $(meshroutes "$i") ]] && break; sleep 0.1; done
    check "$what: n$i's interface and routes went with its process" test -z "$(links "$i")$(meshroutes "$i")"
}

# --- the events ---
ev_kill() {   # kill -9 and an immediate restart (0-2 s)
    rnd "$N"; local v=$((R + 1)); rnd 3; local pause=$R
    stop "$v" KILL
    gone_clean "$v" "kill -9"
    sleep "$pause"
    start "$v"
    await kill "kill -9 n$v, restarted after $pause s"
}
ev_kill_wait() {
    rnd "$N"; local v=$((R + 1))
    stop "$v" KILL
    gone_clean "$v" "kill -9"
    await kill-detect "kill -9 n$v: removed by every other member" || return 0
    start "$v"
    await kill-rejoin "n$v restarted"
}
ev_kill2() {
    rnd "$N"; local a=$((R + 1)); rnd $((N - 1)); local b=$((R + 1)); [[ $b -ge $a ]] && b=$((b + 1))
    stop "$a" KILL; stop "$b" KILL
    gone_clean "$a" "kill -9 of two"; gone_clean "$b" "kill -9 of two"
    await kill-detect "kill -9 n$a and n$b: removed by the others" || return 0
    start "$a"; start "$b"
    await kill-rejoin "n$a and n$b restarted"
}
ev_term() {
    rnd "$N"; local v=$((R + 1))
    stop "$v" TERM
    check "SIGTERM: n$v exits 0 (exit $RC)" test "$RC" -eq 0
    check "SIGTERM: n$v removed its control socket and UAPI socket" \
        test ! -e "$tmp/run$v/control.sock" -a ! -e "/var/run/wireguard/$(IFACE "$v").sock"
    gone_clean "$v" "SIGTERM"
    start "$v"
    await term "SIGTERM n$v and restart"
}
ev_netem() {
    rnd "$N"; local v=$((R + 1)); rnd 11; local loss=$((20 + R)); rnd 101; local delay=$((100 + R))
    rnd 41; local jitter=$((10 + R)); rnd 16; local secs=$((15 + R)); rnd 100000; local fseed=$R
    loss=${CHAOS_NETEM_LOSS:-$loss}; delay=${CHAOS_NETEM_DELAY:-$delay}; jitter=${CHAOS_NETEM_JITTER:-$jitter}
    local p q dead0 dead1 susp0 susp1 loss_out j
    p=$(PORT "$v"); q=qa$RUN-$v
    ip -n "$SW" link add "$q" type veth peer name "qb$RUN-$v"
    ip -n "$SW" link set "$q" up
    ip -n "$SW" link set "qb$RUN-$v" master br0 up
    ip -n "$SW" link set "$p" nomaster
    ip netns exec "$SW" python3 -c "$IMPAIR" "$p" "$q" "$delay" "$jitter" "$loss" "$fseed" >>"$tmp/impair.log" 2>&1 &
    local fpid=$!; PIDS+=($fpid)
    dead0=$(cat "$tmp"/n*.log | grep -c 'membership: member failed' || true)
    susp0=$(cat "$tmp"/n*.log | grep -c 'suspected of having failed' || true)
    j=$(( v % N + 1 ))
    loss_out=$(ip netns exec "$(NS "$v")" ping -q -i 0.2 -W 2 -c "$((secs * 5))" "${V4[j]}" 2>/dev/null | grep -o '[0-9.]*% packet loss' || true)
    dead1=$(cat "$tmp"/n*.log | grep -c 'membership: member failed' || true)
    susp1=$(cat "$tmp"/n*.log | grep -c 'suspected of having failed' || true)
    ip -n "$SW" link set "$p" master br0
    kill "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true; forget "$fpid"
    ip -n "$SW" link del "$q" 2>/dev/null || true
    tail -1 "$tmp/impair.log" | sed 's/^/    /'
    echo "  netem n$v: ${loss}% loss, ${delay}±${jitter} ms on what it sends, ${secs} s: mesh ping n$v→n$j ${loss_out:-?}; $((susp1 - susp0)) suspicion(s), $((dead1 - dead0)) declared dead meanwhile"
    await netem "netem on n$v cleared"
}
ev_partition() {
    # A random group of 1 or 2 members against the rest.
    rnd 2; local k=$((R + 1)) i a b side_a=() side_b=()
    for i in $(seq 1 $N); do GROUP[i]=1; done
    rnd "$N"; a=$((R + 1)); GROUP[a]=0; side_a+=("$a")
    if [[ $k -eq 2 ]]; then rnd $((N - 1)); b=$((R + 1)); [[ $b -ge $a ]] && b=$((b + 1)); GROUP[b]=0; side_a+=("$b"); fi
    for i in $(seq 1 $N); do [[ ${GROUP[i]} == 1 ]] && side_b+=("$i"); done
    local pa pb
    pa=$(for i in "${side_a[@]}"; do echo "\"$(PORT "$i")\""; done | paste -sd, -)
    pb=$(for i in "${side_b[@]}"; do echo "\"$(PORT "$i")\""; done | paste -sd, -)
    ip netns exec "$SW" nft -f - <<EOF
table bridge mgpart {
    chain forward {
        type filter hook forward priority 0; policy accept;
        iifname { $pa } oifname { $pb } drop
        iifname { $pb } oifname { $pa } drop
    }
}
EOF
    check "partition {${side_a[*]}} | {${side_b[*]}}: no mesh ping across" \
        bash -c "! ip netns exec $(NS "${side_a[0]}") ping -c 1 -W 1 ${V4[${side_b[0]}]}"
    await partition "partition {${side_a[*]}} | {${side_b[*]}}: each side to itself" || return 0
    rnd 6; sleep "$R"
    ip netns exec "$SW" nft delete table bridge mgpart
    for i in $(seq 1 $N); do GROUP[i]=0; done
    await heal "partition healed"
}

# The impairment: frames the member sends (veth end in the switch namespace)
# are dropped with probability LOSS% and delayed DELAY±JITTER ms (in order);
# frames toward it pass at once. Virtio-net headers carry checksum offload
# and GSO through unchanged.
IMPAIR='
import heapq, random, select, signal, socket, sys, time
inner, outer = sys.argv[1], sys.argv[2]
delay, jitter, loss = float(sys.argv[3]) / 1000, float(sys.argv[4]) / 1000, float(sys.argv[5]) / 100
rng = random.Random(int(sys.argv[6]))
def packet_socket(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(263, 15, 1)       # SOL_PACKET, PACKET_VNET_HDR
    s.setsockopt(263, 23, 1)       # PACKET_IGNORE_OUTGOING
    s.bind((name, 0)); s.setblocking(False)
    return s
si, so = packet_socket(inner), packet_socket(outer)
n = {"passed": 0, "lost": 0}
def bye(*_):
    print("impair %s: %d frames passed, %d lost" % (inner, n["passed"], n["lost"]), flush=True); sys.exit(0)
signal.signal(signal.SIGTERM, bye)
queue, seq, last = [], 0, 0.0
while True:
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        try: so.send(heapq.heappop(queue)[2])
        except OSError: pass
    ready, _, _ = select.select([si, so], [], [], max(0.0, queue[0][0] - now) if queue else 1.0)
    for s in ready:
        while True:
            try: frame, addr = s.recvfrom(65536 + 10)
            except BlockingIOError: break
            if addr[2] == socket.PACKET_OUTGOING: continue
            if s is so:
                try: si.send(frame)
                except OSError: pass
            elif rng.random() < loss: n["lost"] += 1
            else:
                n["passed"] += 1; seq += 1
                last = max(last, time.monotonic() + max(0.0, delay + rng.uniform(-jitter, jitter)))
                heapq.heappush(queue, (last, seq, frame))
'

# --- the run ---
for i in $(seq 1 $N); do start "$i"; done
await initial "five members form a full mesh" || true
KINDS=(kill kill-wait kill2 term netem partition)
# Every kind once, in a seeded order, then seeded random picks.
order=("${KINDS[@]}")
for ((i = ${#order[@]} - 1; i > 0; i--)); do rnd $((i + 1)); t=${order[i]}; order[i]=${order[R]}; order[R]=$t; done
round=0
while [[ $ABORT -eq 0 ]]; do
    if [[ $CHAOS_ROUNDS -gt 0 ]]; then
        [[ $round -lt $CHAOS_ROUNDS ]] || break
    else
        [[ $round -lt ${#KINDS[@]} || $(elapsed) -lt $CHAOS_SECONDS ]] || break
    fi
    if [[ $round -lt ${#order[@]} ]]; then kind=${order[round]}; else rnd ${#KINDS[@]}; kind=${KINDS[R]}; fi
    [[ -z ${CHAOS_EVENTS:-} ]] || kind=$(tr ',' '\n' <<<"$CHAOS_EVENTS" | sed -n "$(( round % $(tr ',' '\n' <<<"$CHAOS_EVENTS" | wc -l) + 1 ))p")
    round=$((round + 1))
    echo "event $round at $(elapsed) s: $kind"
    case $kind in
        kill) ev_kill ;; kill-wait) ev_kill_wait ;; kill2) ev_kill2 ;;
        term) ev_term ;; netem) ev_netem ;; partition) ev_partition ;;
    esac
done
echo "chaos: $round event(s) in $(elapsed) s (seed $CHAOS_SEED; replay: CHAOS_SEED=$CHAOS_SEED CHAOS_ROUNDS=$round $0)"
echo "convergence times (ms) per kind: count, median, max"
sort -k1,1 -k2,2n "$tmp/times" | awk '
    { k = $1; v[k, ++c[k]] = $2 }
    END { for (k in c) printf "  %-11s %3d  %6d  %6d\n", k, c[k], v[k, int((c[k] + 1) / 2)], v[k, c[k]] }' | sort

# --- the end: SIGTERM everyone; nothing may be left ---
rcs=""
for i in $(live); do stop "$i" TERM; rcs+=" $RC"; done
check "every agent exits 0 on the final SIGTERM (exit statuses:$rcs)" test -z "$(tr -d ' 0' <<<"$rcs")"
leaks=""
for i in $(seq 1 $N); do
    [[ -z $(links "$i") ]] || leaks+=" n$i links: $(links "$i" | paste -sd' ');"
    [[ -z $(meshroutes "$i") ]] || leaks+=" n$i routes: $(meshroutes "$i" | paste -sd';');"
    [[ -z $(ls -A "$tmp/run$i" 2>/dev/null) ]] || leaks+=" run$i: $(ls -A "$tmp/run$i" | paste -sd' ');"
    [[ ! -e /var/run/wireguard/$(IFACE "$i").sock ]] || leaks+=" /var/run/wireguard/$(IFACE "$i").sock;"
    [[ -z $(find "$tmp/n$i" -name '.*' 2>/dev/null) ]] || leaks+=" n$i temporary files;"
done
check "after SIGTERM: no interface, route, runtime file or UAPI socket is left${leaks:+ (${leaks})}" test -z "$leaks"
none_left() { ! pgrep -f "mgc[0-9]$RUN|qa$RUN-" >/dev/null; }
check "no forwarder or agent of this run is left" none_left
PIDS=()
for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
NETNS=()
check "no namespace or veth of this run is left" bash -c "! ip netns list | grep -q -- '-$RUN\b' && ! ip -o link | grep -qE '[pvq][ab]?$RUN-'"
summary
