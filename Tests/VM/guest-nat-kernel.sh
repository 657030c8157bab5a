#!/usr/bin/env bash
# Guest script (runs inside the VM, Debian's stock kernel, via Tests/VM/vm.sh):
# the NAT lab of Tests/Integration/nat-lab.sh with KERNEL-mode agents (one
# userspace agent, C, for a mixed pair). Four homes behind NAT routers that all
# use the same private subnet, one public member S: the seed and the relay.
#
#   ns pub: bridge br0 = the internet 198.51.100.0/24
#           coturn STUN on 198.51.100.1 and .2, port 3478
#   ns S:   198.51.100.3                     kernel mode, no NAT: seed and relay
#   ns hX:  192.168.1.2/24 ── lan 192.168.1.1 │ rX │ wan 198.51.100.1N ── br0
#           A (.11) kernel,    endpoint-independent NAT (nft masquerade)
#           B (.12) kernel,    endpoint-independent NAT
#           C (.13) userspace, endpoint-dependent NAT   (nft masquerade fully-random)
#           D (.14) kernel,    endpoint-dependent NAT
#           every router drops unsolicited inbound (ct state new,invalid on wan).
#
# A kernel agent behind NAT advertises <public ip>:51820 (it assumes the NAT
# keeps the kernel's WireGuard port, as masquerade does when it is free), so
# A and B punch a direct path between their kernels' sockets; any pair with an
# endpoint-dependent NAT on one side is relayed through S.
#
# Run: Tests/Integration/vm-nat-kernel.sh, or with the agents' logs and final
# status kept in DIR: Tests/VM/vm.sh --rw DIR Tests/VM/guest-nat-kernel.sh DIR
# MESHGUARD_NAT_PING_LIMIT=S (default 60): how long a pair may take to its
# first ping. MESHGUARD_AGENT: the agent binary (default .build/debug).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AGENT=${MESHGUARD_AGENT:-$ROOT/.build/debug/meshguard-agent}
[[ ${MESHGUARD_NAT_PING_LIMIT:-60} =~ ^[1-9][0-9]*$ ]] || { echo "  FAIL: MESHGUARD_NAT_PING_LIMIT must be a positive number of seconds"; echo "0 passed, 1 failed"; exit 1; }
PING_LIMIT_MS=$(( ${MESHGUARD_NAT_PING_LIMIT:-60} * 1000 ))
PASSES=0; FAILS=0
ok() { PASSES=$((PASSES + 1)); echo "  ok: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "  FAIL: $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; return 1; fi; }
# Milliseconds since the epoch, without a process (exec is expensive under TCG).
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
start_ms=$(now_ms)
phase() { echo "== $* (at $(( ($(now_ms) - start_ms) / 1000 )) s)"; }
# helper CMD...: a background job; wait_bg waits for those only (not the agents).
BG=()
helper() { "$@" & BG+=($!); }
wait_bg() { for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done; BG=(); }

PUB=pub
S_IP=198.51.100.3
STUN1=198.51.100.1:3478 STUN2=198.51.100.2:3478
HOMES=(A B C D)
NODES=(S A B C D)
declare -A NS=([S]=nS [A]=hA [B]=hB [C]=hC [D]=hD) ROUTER=([A]=rA [B]=rB [C]=rC [D]=rD)
declare -A WAN=([A]=198.51.100.11 [B]=198.51.100.12 [C]=198.51.100.13 [D]=198.51.100.14)
declare -A NAT=([A]=eim [B]=eim [C]=edm [D]=edm)
declare -A MODE=([S]=kernel [A]=kernel [B]=kernel [C]=userspace [D]=kernel)
# One interface name per node: `wg` asks a userspace engine's UAPI socket
# (/var/run/wireguard/NAME.sock, shared by every namespace) before the kernel.
declare -A IFACE=([S]=mgS [A]=mgA [B]=mgB [C]=mgC [D]=mgD)

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for n in "${NS[@]}" "${ROUTER[@]}" "$PUB"; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT

echo "kernel $(uname -r)"
[[ -x $AGENT ]] || { echo "  FAIL: $AGENT not built"; echo "0 passed, 1 failed"; exit 1; }
for c in ip wg ping nft turnserver conntrack ss; do
    command -v "$c" >/dev/null 2>&1 || { echo "  FAIL: missing tool $c (run scripts/bootstrap)"; echo "0 passed, 1 failed"; exit 1; }
done
modprobe -a wireguard bridge nft_ct nft_nat nft_masq nft_chain_nat nf_conntrack_netlink 2>/dev/null || true
tmp=$(mktemp -d /tmp/mg-natk.XXXXXX)
# nap S: sleep without exec'ing sleep (a read that times out on a FIFO no one writes).
mkfifo "$tmp/never"; exec {NEVER}<>"$tmp/never"
nap() { read -r -t "$1" -u "$NEVER" _ || true; }

# ---------------------------------------------------------------- topology (Tests/Integration/natlab.sh)
netns() { ip netns add "$1"; ip -n "$1" link set lo up; }
source "$ROOT/Tests/Integration/natlab.sh"
natlab_build "198.51.100.1 198.51.100.2" || bad "the lab could not be built"

# ---------------------------------------------------------------- STUN servers
phase "the lab is built; coturn"
ip netns exec "$PUB" turnserver -n --stun-only --no-cli --no-tls --no-dtls \
    -L 198.51.100.1 -L 198.51.100.2 -p 3478 --log-file=stdout --simple-log \
    --pidfile="$tmp/turnserver.pid" --db="$tmp/turndb" >"$tmp/coturn.log" 2>&1 &
PIDS+=($!)
listening() { local l; l=$(ip netns exec "$PUB" ss -Huln); for a in "$@"; do grep -qF " $a " <<<"$l" || return 1; done; }
for _ in $(seq 150); do listening 198.51.100.1:3478 198.51.100.2:3478 && break; sleep 0.1; done
check "coturn listens on 198.51.100.1:3478 and 198.51.100.2:3478" listening 198.51.100.1:3478 198.51.100.2:3478
reach=0
for h in "${HOMES[@]}"; do ip netns exec "${NS[$h]}" ping -c1 -W2 "$S_IP" >/dev/null 2>&1 && reach=$((reach + 1)); done
check "lab: S is reachable from every home ($reach of 4)" test "$reach" -eq 4
check "lab: routers drop unsolicited inbound traffic (S cannot ping rA's wan address)" \
    bash -c '! ip netns exec "$1" ping -c1 -W1 "$2"' _ "${NS[S]}" "${WAN[A]}"

# ---------------------------------------------------------------- identities: everyone trusts everyone
phase "identities"
# One job per node (35 agent runs at ~0.4 s each under TCG: in parallel on both vCPUs).
for n in "${NODES[@]}"; do
    helper bash -c '"$1" keygen --config-dir "$2" >/dev/null && "$1" export --config-dir "$2" >"$2.pub"' _ "$AGENT" "$tmp/$n"
done
wait_bg
trust_all() {  # N: N trusts every other node, then notes its identity
    local m
    for m in "${NODES[@]}"; do
        [[ $1 != "$m" ]] && "$AGENT" trust "$tmp/$m.pub" --name "$m" --config-dir "$tmp/$1" >/dev/null
    done
    "$AGENT" show-identity --config-dir "$tmp/$1" >"$tmp/$1.id"
}
for n in "${NODES[@]}"; do helper trust_all "$n"; done
wait_bg
declare -A V4 KEY
for n in "${NODES[@]}"; do
    V4[$n]=$(awk '/mesh ipv4/ {print $3}' "$tmp/$n.id")
    KEY[$n]=$(awk '/wireguard/ {print $2}' "$tmp/$n.id")
    [[ -n ${V4[$n]} && -n ${KEY[$n]} ]] || bad "identity of $n: no mesh IPv4 or WireGuard key in show-identity"
done
check "every node trusts the 4 others" bash -c 'for d; do [[ $(ls "$d/authorized_keys" | wc -l) -eq 4 ]] || exit 1; done' _ "${NODES[@]/#/$tmp/}"

# ---------------------------------------------------------------- agents
declare -A AGPID
for r in "${ROUTER[@]}"; do ip netns exec "$r" conntrack -F >/dev/null 2>&1 || true; done   # no mapping left from the lab checks
T0=$(now_ms)
for n in "${NODES[@]}"; do
    extra=(); [[ $n != S ]] && extra=(--seed "$S_IP:51821")
    ip netns exec "${NS[$n]}" "$AGENT" up "--${MODE[$n]}" --interface "${IFACE[$n]}" --config-dir "$tmp/$n" \
        --runtime-dir "$tmp/run$n" --stun-server "$STUN1" --stun-server "$STUN2" "${extra[@]}" >>"$tmp/$n.log" 2>&1 &
    AGPID[$n]=$!; PIDS+=($!)
done
alive() { kill -0 "${AGPID[$1]}" 2>/dev/null; }
PAIRS=(A-B C-D A-C A-D B-C B-D A-S B-S C-S D-S)
# is_up X: X's agent has logged its data plane (its interface and mesh route exist).
is_up() { local l=; read -r l <"$tmp/$1.log" 2>/dev/null; [[ $l == *"data plane"* ]]; }
# first_ping X Y: X -> Y's mesh IPv4, from the start of the agents (T0) to the
# first answer; "MS PATH" or "none WHY" in a file. Like nat-lab.sh, but one
# ping process sending every 0.5 s instead of one process per try: under TCG
# every exec costs tens of milliseconds and ten pollers starve the agents.
first_ping() {
    local x=$1 y=$2 out="$tmp/first.$1-$2" t left
    while :; do
        t=$(now_ms); left=$(( (T0 + PING_LIMIT_MS - t) / 1000 ))
        if ! alive "$x" || ! alive "$y"; then
            alive "$x" && echo "none (agent $y exited)" >"$out" || echo "none (agent $x exited)" >"$out"; return
        fi
        if ((left <= 0)); then echo "none (no ping within $((PING_LIMIT_MS / 1000)) s)" >"$out"; return; fi
        if ! is_up "$x"; then nap 0.2; continue; fi
        if ip netns exec "${NS[$x]}" ping -q -c1 -i0.5 -W1 -w "$left" "${V4[$y]}" >/dev/null 2>&1; then
            t=$(now_ms); echo "$((t - T0)) $(path_of "$x" "$y")" >"$out"; return
        fi
        nap 0.5   # ping gave up at once (no route yet) or at the deadline
    done
}

# ---------------------------------------------------------------- 1. time to first ping
phase "five agents (S, A, B, D kernel; C userspace) behind NATs: time to first ping from the start of the agents"
# agents_up: when each agent's first log line (its data plane, interface made) appeared;
# the agents' start-up under TCG is part of every pair's time. Builtins only.
agents_up() {
    local n t left=("${NODES[@]}") rest
    while ((${#left[@]})); do
        t=${EPOCHREALTIME/[.,]/}; t=$((t / 1000))
        ((t - T0 >= PING_LIMIT_MS)) && break
        rest=()
        for n in "${left[@]}"; do
            if is_up "$n"; then echo "$((t - T0)) ms" >"$tmp/up.$n"; else rest+=("$n"); fi
        done
        left=("${rest[@]}")
        nap 0.1
    done
    for n in "${left[@]}"; do echo never >"$tmp/up.$n"; done
}
helper agents_up
for p in "${PAIRS[@]}"; do helper first_ping "${p%-*}" "${p#*-}"; done
wait_bg
echo "agents up (data plane made) after: $(for n in "${NODES[@]}"; do printf '%s %s, ' "$n" "$(cat "$tmp/up.$n")"; done | sed 's/, $//')"
for p in "${PAIRS[@]}"; do
    r=$(cat "$tmp/first.$p")
    if [[ $r == none* ]]; then echo "time to first ping: $p none ${r#none }"
    else echo "time to first ping: $p ${r%% *} ms (${r#* })"; fi
done
for n in "${NODES[@]}"; do alive "$n" || echo "  agent $n is not running (log: $(tail -n1 "$tmp/$n.log"))"; done
check "every agent is still running" bash -c 'for p; do kill -0 "$p" || exit 1; done' _ "${AGPID[@]}"
for n in S A B D; do check "$n runs the kernel data plane" grep -q "data plane kernel" "$tmp/$n.log"; done
check "C runs the userspace data plane" grep -q "data plane userspace" "$tmp/C.log"

# ---------------------------------------------------------------- 2. pings, both directions
ping_to() {  # NS ADDRESS FILE: FILE exists when a ping was answered within BACK_LIMIT s
    local end=$(( $(now_ms) + BACK_LIMIT * 1000 )) left
    while left=$(( (end - $(now_ms)) / 1000 )); ((left > 0)); do
        ip netns exec "$1" ping -q -c1 -i0.5 -W1 -w "$left" "$2" >/dev/null 2>&1 && { echo ok >"$3"; return; }
        nap 0.5   # ping gave up at once (no peer or route yet) or at the deadline
    done
}
# Reverse pings get a window too: under TCG on a loaded host, SWIM probes time
# out now and then; a member declared failed for a moment loses its peers and
# relay allocations, rebuilt (with new relay ports) once it refutes.
BACK_LIMIT=20
phase "pings back, each within $BACK_LIMIT s"
for p in "${PAIRS[@]}"; do x=${p%-*} y=${p#*-}; helper ping_to "${NS[$y]}" "${V4[$x]}" "$tmp/back.$p"; done
wait_bg
for p in "${PAIRS[@]}"; do
    x=${p%-*} y=${p#*-} r=$(cat "$tmp/first.$p")
    if [[ $r == none* ]]; then how="no answer: ${r#none (}"; how=${how%)}; else how="first answer after ${r%% *} ms, ${r#* }"; fi
    check "ping $x -> $y over mesh IPv4 within $((PING_LIMIT_MS / 1000)) s ($how)" bash -c '[[ $1 != none* ]]' _ "$r"
    check "ping $y -> $x over mesh IPv4 within $BACK_LIMIT s" test -e "$tmp/back.$p"
done

# ---------------------------------------------------------------- 3. paths in the data planes
path_checks=(
    "A B ${WAN[B]}:51820 direct: punched between two kernels behind endpoint-independent NATs (router address, kernel port)"
    "B A ${WAN[A]}:51820 direct: punched between two kernels behind endpoint-independent NATs (router address, kernel port)"
    "A C $S_IP:* relayed through S (kernel behind EIM, userspace behind EDM)"
    "C D $S_IP:* relayed through S (two endpoint-dependent NATs)"
    "D C $S_IP:* relayed through S (two endpoint-dependent NATs)"
    "A S $S_IP:51820 S's kernel port"
)
phase "paths and status"
all_paths() { for c in "${path_checks[@]}"; do read -r x y pat _ <<<"$c"; want_path "$x" "$y" "$pat" || return 1; done; }
# Paths may still be settling (a relayed pair upgraded to direct): allow a few seconds.
for _ in $(seq 25); do all_paths && break; sleep 0.4; done
for c in "${path_checks[@]}"; do
    read -r x y pat why <<<"$c"
    ep=$(endpoint "$x" "$y")
    check "wg endpoints: at $x, $y's endpoint is $pat: $why (is ${ep:-none})" want_path "$x" "$y" "$pat"
done
wgA=$(ip netns exec "${NS[A]}" wg show "${IFACE[A]}" 2>&1)
kaB=$(awk -v k="${KEY[B]}" '/^peer: / { p = ($2 == k) } p && /persistent keepalive:/ { sub(/^ +/, ""); print }' <<<"$wgA")
check "wg show at A: B has 'persistent keepalive: every 25 seconds' (is '${kaB:-none}')" test "$kaB" = "persistent keepalive: every 25 seconds"

# ---------------------------------------------------------------- 4. status
declare -A ST
for n in A C D; do ST[$n]=$("$AGENT" status --runtime-dir "$tmp/run$n" 2>&1); done
natA=$(grep '^nat:' <<<"${ST[A]}"); natD=$(grep '^nat:' <<<"${ST[D]}")
echo "  A: $natA"; echo "  D: $natD"
check "status of A: 'nat:        public ${WAN[A]}:51821, mapping endpoint-independent'" \
    test "$natA" = "nat:        public ${WAN[A]}:51821, mapping endpoint-independent"
check "status of D: mapping endpoint-dependent" grep -Eq "^nat: +public ${WAN[D]//./\\.}:[0-9]+, mapping endpoint-dependent\$" <<<"$natD"
spath() {  # NODE MEMBER: the PATH column of MEMBER in NODE's status
    awk -v m="$2" '$1 == "NAME" { t = 1; next } t && $1 == m { for (i = 1; i <= NF; i++) if ($i == "direct" || $i == "trying" || $i == "relayed") { print ($i == "relayed" ? "relayed via " $(i+2) : $i); exit } }' <<<"${ST[$1]}"
}
check "status of A: PATH of B is direct (is '$(spath A B)')" test "$(spath A B)" = direct
check "status of A: PATH of C is relayed via S (is '$(spath A C)')" test "$(spath A C)" = "relayed via S"
check "status of D: PATH of C is relayed via S (is '$(spath D C)')" test "$(spath D C)" = "relayed via S"

# ---------------------------------------------------------------- diagnostics
if ((FAILS)); then
    names=(); for n in "${NODES[@]}"; do names+=(-e "s|${KEY[$n]}|peer $n|"); done
    for n in "${NODES[@]}"; do
        echo "--- wg show at $n:"
        { ip netns exec "${NS[$n]}" wg show "${IFACE[$n]}" 2>&1 || true; } | grep -E '^(peer|  (endpoint|latest handshake|transfer|persistent))' | sed "${names[@]}" -e 's/^/    /' || true
    done
    for n in A C D; do echo "--- status of $n:"; sed 's/^/    /' <<<"${ST[$n]}"; done
    echo "--- UDP sockets in S:"; ip netns exec "${NS[S]}" ss -Huan 2>&1 | sed 's/^/    /' || true
    for h in "${HOMES[@]}"; do
        echo "--- conntrack on r$h (udp):"
        { ip netns exec "${ROUTER[$h]}" conntrack -L -p udp 2>/dev/null || true; } | sed 's/^/    /' || true
    done
    for n in "${NODES[@]}"; do
        if grep -q 'Program crashed' "$tmp/$n.log"; then   # a backtrace would fill the tail
            echo "--- log of $n: it crashed:"
            awk '/^\*\*\* Signal/ { exit } { print }' "$tmp/$n.log" | tail -n 15 | sed 's/^/    /'
            grep -A8 '^\*\*\* Program crashed\|crashed:$' "$tmp/$n.log" | sed 's/^/    /'
        else
            echo "--- log of $n (last 25 lines):"; tail -n 25 "$tmp/$n.log" | sed 's/^/    /'
        fi
    done
    echo "--- coturn (last 5 lines):"; tail -n 5 "$tmp/coturn.log" | sed 's/^/    /'
fi
# An optional argument: a directory (shared with vm.sh --rw) that gets the logs.
if [[ -n ${1:-} && -d $1 ]]; then
    cp "$tmp"/*.log "$1"/ 2>/dev/null
    for n in "${NODES[@]}"; do "$AGENT" status --runtime-dir "$tmp/run$n" >"$1/status.$n" 2>&1; done
fi
echo "guest-nat-kernel: elapsed $(( ($(now_ms) - start_ms) / 1000 )) s"
echo "$PASSES passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
