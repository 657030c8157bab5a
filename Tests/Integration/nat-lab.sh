#!/usr/bin/env bash
# NAT lab: six agents (userspace mode) on an emulated internet, five of them
# in homes behind NAT routers that all use the same private subnet, one of
# them (S) public: the seed and the relay. Checks what the agent learns from
# STUN (netcheck), that forged or broken STUN answers are refused, how long
# each pair takes to its first ping, and which path each pair ends up on:
# punched directly through two endpoint-independent NATs, relayed through S
# when an endpoint-dependent NAT is in the way, direct to a home whose router
# forwards a port it asked for with NAT-PMP.
#
#   ns pub: bridge br0 = the internet 198.51.100.0/24
#           coturn STUN on 198.51.100.1 and .2, port 3478 (RFC 5780: also :3479)
#           a fake, hostile STUN server on 198.51.100.4:3478
#   ns S:   198.51.100.3                               (no NAT: seed and relay)
#   ns hX:  192.168.1.2/24 ── lan 192.168.1.1 │ rX │ wan 198.51.100.1N ── br0
#           A (.11), B (.12): endpoint-independent NAT (nft masquerade)
#           C (.13), D (.14): endpoint-dependent NAT   (nft masquerade fully-random)
#           E (.15): endpoint-dependent NAT too, and rE runs miniupnpd (Debian's
#             miniupnpd-nftables): NAT-PMP/PCP on 192.168.1.1:5351, which
#             learns its external address by STUN (coturn, 198.51.100.1)
#           every router drops unsolicited inbound (ct state new,invalid on wan),
#           as real CPE does; without that, Linux conntrack breaks hole punching.
#           rE accepts what it DNATs (a NAT-PMP mapping) before that drop.
#
# The lab's own plumbing is checked first, without the agent: a plain python3
# STUN client sees the expected mappings, a python3 hole punch works between
# hA and hB and fails between hC and hD, S is reachable from every home and
# no router lets unsolicited traffic in; a python3 NAT-PMP client in hE gets
# rE's external address and a mapping of UDP 51821 that S (a stranger to hE)
# can reach, and after deleting it S no longer can.
#
# Benchmark: NAT_LAB_RUNS=N (default 1) restarts the six agents N times and
# prints the median and maximum time to first ping per kind of pair.
# NAT_LAB_PING_LIMIT=S (default 60) is how long a pair may take to its first ping.
source "$(dirname "$0")/lib.sh"
need ip wg ping python3 nft turnserver conntrack timeout miniupnpd
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }
RUNS=${NAT_LAB_RUNS:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "FAIL: NAT_LAB_RUNS must be a positive integer, not '$RUNS'"; exit 1; }
[[ ${NAT_LAB_PING_LIMIT:-60} =~ ^[1-9][0-9]*$ ]] || { echo "FAIL: NAT_LAB_PING_LIMIT must be a positive number of seconds"; exit 1; }
PING_LIMIT_MS=$(( ${NAT_LAB_PING_LIMIT:-60} * 1000 ))   # how long a pair may take to its first ping
start_ms=$(date +%s%3N)
now_ms() { date +%s%3N; }
tmp=$(mktemp -d /tmp/mg-natlab.XXXXXX)
# NAT_LAB_KEEP=DIR keeps the agents' logs (all runs) in DIR; NAT_LAB_LOG_LEVEL=debug makes them verbose.
trap '[[ -n ${NAT_LAB_KEEP:-} ]] && mkdir -p "$NAT_LAB_KEEP" && cp "$tmp"/*.log "$NAT_LAB_KEEP"/ 2>/dev/null; cleanup; rm -rf "$tmp"' EXIT

PUB=mgnat-pub-$RUN
declare -A NS=([S]=mgnat-S-$RUN) ROUTER=() WAN=([A]=198.51.100.11 [B]=198.51.100.12 [C]=198.51.100.13 [D]=198.51.100.14 [E]=198.51.100.15)
declare -A NAT=([A]=eim [B]=eim [C]=edm [D]=edm [E]=edm-pmp)
HOMES=(A B C D E)
NODES=(S A B C D E)
S_IP=198.51.100.3
STUN1=198.51.100.1:3478 STUN2=198.51.100.2:3478
FAKE=198.51.100.4:3478
for h in "${HOMES[@]}"; do NS[$h]=mgnat-h$h-$RUN; ROUTER[$h]=mgnat-r$h-$RUN; done

# ---------------------------------------------------------------- topology (natlab.sh)
source "$(dirname "$0")/natlab.sh"
natlab_build "198.51.100.1 198.51.100.2 198.51.100.4"

# ---------------------------------------------------------------- helpers (python3)
cat > "$tmp/stunlab.py" <<'PY'
# stunlab.py map LPORT SERVER...          mapped address per server, one socket
# stunlab.py punch NAME PEER LPORT RDV STUNSERVER   rendezvous by file, then punch
# stunlab.py fake IP PORT ALTPORT LOG     a hostile STUN server (see below)
# stunlab.py natpmp LPORT addr            NAT-PMP (RFC 6886) to the gateway 192.168.1.1:5351
# stunlab.py natpmp LPORT map IPORT LIFE  from local port LPORT (LIFE 0: delete)
# stunlab.py listen LPORT SECONDS READY   the first probe datagram to LPORT
# stunlab.py send ADDR COUNT              COUNT probe datagrams, from a fresh port
import os, socket, struct, sys, time, zlib
COOKIE = 0x2112A442
def addr(s): h, p = s.rsplit(":", 1); return (h, int(p))
def fingerprint(m):
    m = bytearray(m); m[2:4] = struct.pack("!H", len(m) - 20 + 8)
    return bytes(m) + struct.pack("!HHI", 0x8028, 4, (zlib.crc32(bytes(m)) ^ 0x5354554E) & 0xFFFFFFFF)
def request(txid): return fingerprint(struct.pack("!HHI", 0x0001, 0, COOKIE) + txid)
def success(txid, ip, port):
    xa = struct.pack("!BBH", 0, 1, port ^ 0x2112) + struct.pack("!I", struct.unpack("!I", socket.inet_aton(ip))[0] ^ COOKIE)
    body = struct.pack("!HH", 0x0020, len(xa)) + xa
    return fingerprint(struct.pack("!HHI", 0x0101, len(body), COOKIE) + txid + body)
def mapped(data, txid):
    if len(data) < 20 or data[8:20] != txid: return None
    i = 20
    while i + 4 <= len(data):
        t, l = struct.unpack("!HH", data[i:i+4]); v = data[i+4:i+4+l]
        if t == 0x0020:
            port = struct.unpack("!H", v[2:4])[0] ^ 0x2112
            ip = struct.unpack("!I", v[4:8])[0] ^ COOKIE
            return socket.inet_ntoa(struct.pack("!I", ip)), port
        i += 4 + l + ((4 - l % 4) % 4)
    return None
def stun(s, server):
    txid = os.urandom(12)
    for _ in range(10):
        s.sendto(request(txid), server)
        end = time.time() + 0.3
        while time.time() < end:
            try: data, src = s.recvfrom(2048)
            except socket.timeout: break
            m = mapped(data, txid) if src == server else None
            if m: return m
    return None
cmd = sys.argv[1]
if cmd == "map":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[2]))); s.settimeout(0.3)
    ok = True
    for srv in sys.argv[3:]:
        m = stun(s, addr(srv))
        print(f"{srv} {m[0]}:{m[1]}" if m else f"{srv} none"); ok = ok and m is not None
    sys.exit(0 if ok else 1)
if cmd == "punch":
    name, peer, lport, rdv, srv = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], addr(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", lport)); s.settimeout(0.2)
    m = stun(s, srv)
    if not m: print(f"{name}: no STUN answer"); sys.exit(2)
    open(f"{rdv}/{name}.tmp", "w").write(f"{m[0]} {m[1]}"); os.rename(f"{rdv}/{name}.tmp", f"{rdv}/{name}")
    deadline = time.time() + 10
    while not os.path.exists(f"{rdv}/{peer}"):
        if time.time() > deadline: print(f"{name}: no rendezvous"); sys.exit(2)
        time.sleep(0.05)
    pip, pport = open(f"{rdv}/{peer}").read().split(); paddr = (pip, int(pport))
    got = None; heard = 0; end = time.time() + 5
    while time.time() < end:
        s.sendto(f"punch from {name}".encode(), paddr)
        try:
            data, src = s.recvfrom(2048)
            if data.startswith(b"punch from"):
                got = got or (data.decode(), src); heard += 1
                if heard > 5: break   # keep sending a little so the peer hears us too
        except (socket.timeout, ConnectionRefusedError):
            pass
    print(f"{name} (mapped {m[0]}:{m[1]}) -> {pip}:{pport}: " + (f"OK, got '{got[0]}' from {got[1][0]}:{got[1][1]}" if got else "nothing received"))
    sys.exit(0 if got else 1)
if cmd == "fake":
    # Every Binding request gets four answers, none of which a client may take:
    # (a) garbage, (b) a well-formed success for another transaction, (c) the
    # right answer cut short, (d) the right answer, well-formed with a correct
    # FINGERPRINT, but from another source port (a spoofed source).
    ip, port, alt, log = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, port))
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind((ip, alt))
    n = 0
    while True:
        data, src = s.recvfrom(2048)
        if len(data) < 20 or data[0] & 0xC0 or struct.unpack("!I", data[4:8])[0] != COOKIE: continue
        txid = data[8:20]; good = success(txid, src[0], src[1]); n += 1
        with open(log, "a") as f: f.write(f"request {n} from {src[0]}:{src[1]}\n")
        s.sendto(b"Garbage, not STUN at all" + os.urandom(16), src)
        s.sendto(success(bytes(b ^ 0x5A for b in txid), src[0], src[1]), src)
        s.sendto(good[:26], src)
        a.sendto(good, src)
if cmd == "natpmp":
    # One request, retransmitted from 250 ms, doubling (RFC 6886 3.1), four times.
    # Prints "external IP epoch N" or "udp IPORT -> EPORT lifetime L"; exit 0 on
    # result 0, 1 on another result code ("result N"), 2 without an answer.
    gw = ("192.168.1.1", 5351)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[2])))
    if sys.argv[3] == "addr":
        op, req = 0, struct.pack("!BB", 0, 0)
    else:
        iport, life = int(sys.argv[4]), int(sys.argv[5])
        op, req = 1, struct.pack("!BBHHHI", 0, 1, 0, iport, iport if life else 0, life)
    wait = 0.25
    for _ in range(4):
        s.sendto(req, gw); end = time.time() + wait; wait *= 2
        while (left := end - time.time()) > 0:
            s.settimeout(left)
            try: d, src = s.recvfrom(64)
            except socket.timeout: break
            if src != gw or len(d) < 12 or d[0] != 0 or d[1] != 128 + op: continue
            rc, epoch = struct.unpack("!HI", d[2:8])
            if rc: print(f"result {rc}"); sys.exit(1)
            if op == 0: print(f"external {socket.inet_ntoa(d[8:12])} epoch {epoch}"); sys.exit(0)
            if len(d) < 16: continue
            i, e, l = struct.unpack("!HHI", d[8:16])
            if i != iport: continue
            print(f"udp {i} -> {e} lifetime {l}"); sys.exit(0)
    print("no answer"); sys.exit(2)
if cmd == "listen":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[2])))
    open(sys.argv[4], "w").close()
    end = time.time() + float(sys.argv[3])
    while (left := end - time.time()) > 0:
        s.settimeout(left)
        try: data, src = s.recvfrom(2048)
        except socket.timeout: break
        if data.startswith(b"probe"): print(f"got '{data.decode()}' from {src[0]}:{src[1]}"); sys.exit(0)
    print(f"nothing in {sys.argv[3]} s"); sys.exit(1)
if cmd == "send":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 0)); port = s.getsockname()[1]
    for i in range(int(sys.argv[3])):
        s.sendto(f"probe {i} from port {port}".encode(), addr(sys.argv[2])); time.sleep(0.05)
    print(f"sent {sys.argv[3]} probes to {sys.argv[2]} from port {port}")
PY
# helper CMD...: a helper job; wait_bg waits for the helpers only (the agents and
# the STUN servers are background jobs too, so a bare `wait` would never return).
BG=()
helper() { "$@" & BG+=($!); }
wait_bg() { for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done; BG=(); }

# ---------------------------------------------------------------- STUN servers
ip netns exec "$PUB" turnserver -n --stun-only --no-cli --no-tls --no-dtls \
    -L 198.51.100.1 -L 198.51.100.2 -p 3478 --log-file=stdout --simple-log \
    --pidfile="$tmp/turnserver.pid" --db="$tmp/turndb" >"$tmp/coturn.log" 2>&1 &
PIDS+=($!)
ip netns exec "$PUB" python3 "$tmp/stunlab.py" fake 198.51.100.4 3478 3479 "$tmp/fake.log" 2>"$tmp/fake.err" &
PIDS+=($!)
listening() { local l; l=$(ip netns exec "$PUB" ss -Huln); for a in "$@"; do grep -qF " $a " <<<"$l" || return 1; done; }
for _ in $(seq 100); do
    listening 198.51.100.1:3478 198.51.100.2:3478 198.51.100.1:3479 198.51.100.2:3479 198.51.100.4:3478 && break
    sleep 0.1
done
check "coturn listens on 198.51.100.1/.2 ports 3478/3479, the fake STUN server on $FAKE" \
    listening 198.51.100.1:3478 198.51.100.2:3478 198.51.100.1:3479 198.51.100.2:3479 198.51.100.4:3478

# ---------------------------------------------------------------- the NAT-PMP server on rE (miniupnpd)
# In the foreground (-d: it logs on stderr too), with its config, pid and lease
# files here. It first runs its STUN test against coturn (natlab.sh says why),
# then opens 192.168.1.1:5351.
PMPLEASES=$tmp/miniupnpd.leases
natlab_miniupnpd_conf "${STUN1%:*}" "${STUN1#*:}" "$PMPLEASES" >"$tmp/miniupnpd.conf"
ip netns exec "${ROUTER[E]}" miniupnpd -d -f "$tmp/miniupnpd.conf" -P "$tmp/miniupnpd.pid" >"$tmp/miniupnpd.log" 2>&1 &
PMPD=$!; PIDS+=($!)
pmp_listening() { ip netns exec "${ROUTER[E]}" ss -Huln | grep -qF " 192.168.1.1:5351 "; }
for _ in $(seq 150); do
    grep -q 'Listening for NAT-PMP/PCP traffic' "$tmp/miniupnpd.log" && break
    kill -0 "$PMPD" 2>/dev/null || break
    sleep 0.1
done
check "rE runs miniupnpd: NAT-PMP/PCP on 192.168.1.1:5351" pmp_listening
check "rE's miniupnpd found ${WAN[E]} by STUN and enabled port forwarding (its STUN test reached it unfiltered)" \
    grep -q 'Port forwarding is now enabled' "$tmp/miniupnpd.log"
# pmp_rules: rE's mappings, as miniupnpd keeps them: its DNAT chain and its lease file
# (lines PROTO:EPORT:IADDR:IPORT:EXPIRY:DESCRIPTION).
pmp_rules() { ip netns exec "${ROUTER[E]}" nft list chain inet natlab prerouting_miniupnpd; cat "$PMPLEASES" 2>/dev/null || true; }
pmp_mapped() {  # [RULES-FILE]: rE maps a UDP port to 192.168.1.2:51821 (DNAT and lease)
    local r; if (($#)); then r=$(cat "$1"); else r=$(pmp_rules 2>&1); fi
    grep -q 'dnat ip to 192.168.1.2:51821$' <<<"$r" && grep -q '^UDP:[0-9]*:192.168.1.2:51821:' <<<"$r"
}
# shellcheck disable=SC2120 # check passes the file
pmp_unmapped() {  # [RULES-FILE]: neither a DNAT nor a lease for 192.168.1.2:51821
    local r; if (($#)); then r=$(cat "$1"); else r=$(pmp_rules 2>&1); fi
    ! grep -q '192.168.1.2:51821' <<<"$r"
}

# ---------------------------------------------------------------- the lab itself, without the agent
# NAT-PMP from hE, by hand: the external address, a mapping of 51821 (lifetime
# 60 s), then its deletion; S (which never sent anything to hE) probes rE's wan
# address before, during and after, from a fresh port each time: a flow that
# is already through the DNAT survives the deletion (conntrack), a new one not.
pmp_probe() {  # NAME PORT: hE listens on 51821, S sends to rE's PORT; result in $tmp/pmp.NAME
    local l
    ip netns exec "${NS[E]}" python3 "$tmp/stunlab.py" listen 51821 1.5 "$tmp/pmp.$1.ready" >"$tmp/pmp.$1" 2>&1 & l=$!
    for _ in $(seq 40); do [[ -e $tmp/pmp.$1.ready ]] && break; sleep 0.05; done
    ip netns exec "${NS[S]}" python3 "$tmp/stunlab.py" send "${WAN[E]}:$2" 10 >"$tmp/pmp.$1.sent" 2>&1 || true
    wait "$l" || true
}
natpmp() { ip netns exec "${NS[E]}" python3 "$tmp/stunlab.py" natpmp 51821 "$@"; }
pmp_lab() {
    local ext
    pmp_probe before 51821
    natpmp addr >"$tmp/pmp.addr" 2>&1 || true
    natpmp map 51821 60 >"$tmp/pmp.map" 2>&1 || true
    ext=$(awk '$1 == "udp" && $2 == 51821 && $4 > 0 {print $4}' "$tmp/pmp.map")
    pmp_rules >"$tmp/pmp.rules.mapped" 2>&1 || true
    [[ -n $ext ]] && pmp_probe during "$ext"
    natpmp map 51821 0 >"$tmp/pmp.unmap" 2>&1 || true
    pmp_rules >"$tmp/pmp.rules.unmapped" 2>&1 || true
    [[ -n $ext ]] && pmp_probe after "$ext"
    echo "$ext" >"$tmp/pmp.ext"
}

echo "lab:"
for n in S A C E; do helper ip netns exec "${NS[$n]}" python3 "$tmp/stunlab.py" map 42000 "$STUN1" "$STUN2" >"$tmp/map.$n" 2>&1; done
helper pmp_lab
rdv1=$(mktemp -d "$tmp/rdv.XXXX") rdv2=$(mktemp -d "$tmp/rdv.XXXX")
ip netns exec "${NS[A]}" python3 "$tmp/stunlab.py" punch A B 41000 "$rdv1" "$STUN1" >"$tmp/punch.A" 2>&1 & pa=$!
ip netns exec "${NS[B]}" python3 "$tmp/stunlab.py" punch B A 41000 "$rdv1" "$STUN1" >"$tmp/punch.B" 2>&1 & pb=$!
ip netns exec "${NS[C]}" python3 "$tmp/stunlab.py" punch C D 41000 "$rdv2" "$STUN1" >"$tmp/punch.C" 2>&1 & pc=$!
ip netns exec "${NS[D]}" python3 "$tmp/stunlab.py" punch D C 41000 "$rdv2" "$STUN1" >"$tmp/punch.D" 2>&1 & pd=$!
for h in "${HOMES[@]}"; do helper bash -c 'ip netns exec "$1" ping -c1 -W2 "$2" >/dev/null 2>&1 && echo ok >"$3"' _ "${NS[$h]}" "$S_IP" "$tmp/reach.$h"; done
# Unsolicited inbound: S pings a router's wan address.
helper bash -c 'ip netns exec "$1" ping -c1 -W1 "$2" >/dev/null 2>&1 && echo leak >"$3"' _ "${NS[S]}" "${WAN[A]}" "$tmp/leak.ping"
rpa=0 rpb=0 rpc=0 rpd=0
wait $pa || rpa=$?; wait $pb || rpb=$?; wait $pc || rpc=$?; wait $pd || rpd=$?
wait_bg
sed 's/^/    stun from S: /' "$tmp/map.S"; sed 's/^/    stun from hA: /' "$tmp/map.A"; sed 's/^/    stun from hC: /' "$tmp/map.C"
sed 's/^/    stun from hE: /' "$tmp/map.E"
cat "$tmp"/punch.? | sed 's/^/    punch: /'
pmp_ext=$(cat "$tmp/pmp.ext" 2>/dev/null || true)
for f in addr map unmap; do sed "s/^/    NAT-PMP from hE, $f: /" "$tmp/pmp.$f" 2>/dev/null || true; done
for f in before during after; do
    [[ -e $tmp/pmp.$f ]] && echo "    S -> ${WAN[E]}:${pmp_ext:-51821} $f the mapping: $(cat "$tmp/pmp.$f.sent" 2>/dev/null); hE: $(cat "$tmp/pmp.$f")"
done
mapped_port() { awk -v s="$2" '$1 == s {print $2}' "$tmp/map.$1"; }
check "lab: S is not behind NAT (STUN sees 198.51.100.3:42000 from both servers)" \
    test "$(mapped_port S "$STUN1") $(mapped_port S "$STUN2")" = "198.51.100.3:42000 198.51.100.3:42000"
check "lab: hA's NAT maps endpoint-independently, keeping the port (${WAN[A]}:42000 from both servers)" \
    test "$(mapped_port A "$STUN1") $(mapped_port A "$STUN2")" = "${WAN[A]}:42000 ${WAN[A]}:42000"
check "lab: hC's NAT maps endpoint-dependently (a different public port per server)" \
    bash -c '[[ $1 == '"${WAN[C]}"':* && $2 == '"${WAN[C]}"':* && $1 != "$2" ]]' _ "$(mapped_port C "$STUN1")" "$(mapped_port C "$STUN2")"
check "lab: a plain UDP hole punch works between hA and hB (both endpoint-independent)" test "$rpa$rpb" = 00
check "lab: a plain UDP hole punch fails between hC and hD (both endpoint-dependent)" test "$rpc$rpd" = 11
check "lab: S is reachable from every home" test "$(cat "$tmp"/reach.? 2>/dev/null | wc -l)" -eq "${#HOMES[@]}"
check "lab: routers drop unsolicited inbound traffic (S cannot ping rA's wan address)" test ! -e "$tmp/leak.ping"
check "lab: hE's NAT maps endpoint-dependently (a different public port per server)" \
    bash -c '[[ $1 == '"${WAN[E]}"':* && $2 == '"${WAN[E]}"':* && $1 != "$2" ]]' _ "$(mapped_port E "$STUN1")" "$(mapped_port E "$STUN2")"
check "lab: without a mapping, S's datagrams to ${WAN[E]}:51821 do not reach hE (rE drops unsolicited inbound)" \
    grep -q '^nothing' "$tmp/pmp.before"
check "lab: NAT-PMP from hE: rE's external address is ${WAN[E]}" grep -Eq "^external ${WAN[E]//./\\.} epoch" "$tmp/pmp.addr"
check "lab: NAT-PMP from hE: UDP 51821 is mapped (to ${WAN[E]}:${pmp_ext:-none}, lifetime 60 s)" \
    grep -Eq '^udp 51821 -> [1-9][0-9]* lifetime [1-9]' "$tmp/pmp.map"
check "lab: rE's miniupnpd holds the mapping: a DNAT to 192.168.1.2:51821 and a lease" pmp_mapped "$tmp/pmp.rules.mapped"
check "lab: through the mapping, S (a stranger to hE) reaches hE's port 51821 from its own address" \
    grep -q "^got 'probe .* from $S_IP:" "$tmp/pmp.during"
check "lab: NAT-PMP from hE: deleting the mapping (lifetime 0) is acknowledged" grep -Eq '^udp 51821 -> [0-9]+ lifetime 0$' "$tmp/pmp.unmap"
check "lab: after the deletion, rE has neither the DNAT nor the lease" pmp_unmapped "$tmp/pmp.rules.unmapped"
check "lab: after the deletion, S's datagrams (a new flow) no longer reach hE" grep -q '^nothing' "$tmp/pmp.after"

# ---------------------------------------------------------------- identities: everyone trusts everyone
for n in "${NODES[@]}"; do
    "$AGENT" keygen --config-dir "$tmp/$n" >/dev/null
    "$AGENT" export --config-dir "$tmp/$n" >"$tmp/$n.pub"
done
for n in "${NODES[@]}"; do for m in "${NODES[@]}"; do
    [[ $n != "$m" ]] && "$AGENT" trust "$tmp/$m.pub" --name "$m" --config-dir "$tmp/$n" >/dev/null
done; done
declare -A V4 V6 KEY IFACE
for n in "${NODES[@]}"; do
    id=$("$AGENT" show-identity --config-dir "$tmp/$n")
    V4[$n]=$(awk '/mesh ipv4/ {print $3}' <<<"$id")
    V6[$n]=$(awk '/mesh ipv6/ {print $3}' <<<"$id")
    KEY[$n]=$(awk '/wireguard/ {print $2}' <<<"$id")
    IFACE[$n]=$(echo "mgn$n$RUN" | cut -c1-15)   # UAPI sockets are global: one name per node
done

# ---------------------------------------------------------------- 1. netcheck, before any agent runs
netcheck() {  # NODE SERVER...: output in $tmp/netcheck.NODE.out, exit status in .rc
    local n=$1 rc=0; shift
    local args=(); for s in "$@"; do args+=(--stun-server "$s"); done
    ip netns exec "${NS[$n]}" timeout 30 "$AGENT" netcheck "${args[@]}" --port 40000 >"$tmp/netcheck.$n.out" 2>&1 || rc=$?
    echo "$rc" >"$tmp/netcheck.$n.rc"
}
for n in S A C; do helper netcheck "$n" "$STUN1" "$STUN2"; done
wait_bg
for n in S A C; do echo "netcheck in ${NS[$n]} (exit $(cat "$tmp/netcheck.$n.rc")):"; sed 's/^/    /' "$tmp/netcheck.$n.out"; done
check "netcheck in hA: mapping:   endpoint-independent" grep -Eq '^mapping: +endpoint-independent( |$)' "$tmp/netcheck.A.out"
check "netcheck in hA: public:    ${WAN[A]}:40000" grep -Eq "^public: +${WAN[A]//./\\.}:40000\$" "$tmp/netcheck.A.out"
check "netcheck in hC: mapping:   endpoint-dependent" grep -Eq '^mapping: +endpoint-dependent( |$)' "$tmp/netcheck.C.out"
check "netcheck in S: mapping:   none" grep -Eq '^mapping: +none( |$)' "$tmp/netcheck.S.out"
check "netcheck exits 0 in hA, hC and S (a STUN server answered)" \
    test "$(cat "$tmp/netcheck.A.rc")$(cat "$tmp/netcheck.C.rc")$(cat "$tmp/netcheck.S.rc")" = 000

# ---------------------------------------------------------------- 2. forged and broken STUN answers
rc=0
ip netns exec "${NS[S]}" timeout 30 "$AGENT" netcheck --stun-server "$FAKE" >"$tmp/netcheck.fake.out" 2>&1 || rc=$?
echo "netcheck against the fake STUN server $FAKE from S (exit $rc; $(cat "$tmp/fake.log" 2>/dev/null | wc -l) requests seen):"
sed 's/^/    /' "$tmp/netcheck.fake.out"
check "fake STUN: netcheck's requests reached the fake server" test -s "$tmp/fake.log"
check "fake STUN: no answer taken (garbage, other transaction, truncated, spoofed source port)" \
    grep -Eq "^stun: +${FAKE//./\\.} -> no answer" "$tmp/netcheck.fake.out"
check "fake STUN: the refused answers are counted on a dropped: line" grep -Eq '^dropped: +[1-9][0-9]* STUN answers' "$tmp/netcheck.fake.out"
check "fake STUN: netcheck exits 1, not by a signal (exit $rc)" test "$rc" -eq 1

# ---------------------------------------------------------------- agents
declare -A AGPID
start_agents() {  # $1 = run number
    # Each run starts with empty NAT tables: no mapping left over from the lab checks or the last run.
    for r in "${ROUTER[@]}"; do ip netns exec "$r" conntrack -F >/dev/null 2>&1 || true; done
    T0=$(now_ms)
    for n in "${NODES[@]}"; do
        # S also asks the hostile STUN server: its answers must change nothing.
        local extra=(--stun-server "$FAKE"); [[ $n != S ]] && extra=(--seed "$S_IP:51821")
        echo "=== run $1" >>"$tmp/$n.log"
        ip netns exec "${NS[$n]}" "$AGENT" up --userspace --log-level "${NAT_LAB_LOG_LEVEL:-info}" --interface "${IFACE[$n]}" --config-dir "$tmp/$n" \
            --runtime-dir "$tmp/run$n" --stun-server "$STUN1" --stun-server "$STUN2" "${extra[@]}" >>"$tmp/$n.log" 2>&1 &
        AGPID[$n]=$!; PIDS+=($!)
    done
}
stop_agents() {
    for n in "${NODES[@]}"; do kill -TERM "${AGPID[$n]}" 2>/dev/null || true; done
    for n in "${NODES[@]}"; do wait "${AGPID[$n]}" 2>/dev/null || true; done
}
alive() { kill -0 "${AGPID[$1]}" 2>/dev/null; }
PAIRS=(A-B C-D A-C B-D A-D B-C A-S B-S C-S D-S E-S E-A E-C E-D)
kind() {  # E's router maps E's port with NAT-PMP: PMP-*
    case $1 in
        A-B) echo "EIM-EIM" ;; C-D) echo "EDM-EDM" ;; E-S) echo "PMP-S" ;; E-A) echo "PMP-EIM" ;; E-*) echo "PMP-EDM" ;;
        *-S) echo "home-S" ;; *) echo "EIM-EDM" ;;
    esac
}
# first_ping RUN X Y T0: poll X -> Y's mesh IPv4 until it answers; "MS PATH" or "none WHY" in a file.
first_ping() {
    local x=$2 y=$3 t0=$4 out="$tmp/first.$1.$2-$3" t
    while :; do
        t=$(now_ms)
        if ! alive "$x" || ! alive "$y"; then
            alive "$x" && echo "none (agent $y exited)" >"$out" || echo "none (agent $x exited)" >"$out"; return
        fi
        if ((t - t0 >= PING_LIMIT_MS)); then echo "none (no ping within $((PING_LIMIT_MS / 1000)) s)" >"$out"; return; fi
        if ip netns exec "${NS[$x]}" ping -c1 -W0.2 "${V4[$y]}" >/dev/null 2>&1; then
            t=$(now_ms); echo "$((t - t0)) $(path_of "$x" "$y")" >"$out"; return
        fi
        (( $(now_ms) - t < 100 )) && sleep 0.1   # failed at once (no route yet): do not spin
    done
}
measure() {  # $1 = run number: start the agents, time every pair to its first ping
    start_agents "$1"
    for p in "${PAIRS[@]}"; do helper first_ping "$1" "${p%-*}" "${p#*-}" "$T0"; done
    wait_bg
    ((RUNS > 1)) && echo "run $1 of $RUNS (times from the start of the agents):"
    for p in "${PAIRS[@]}"; do
        local r; r=$(cat "$tmp/first.$1.$p")
        if [[ $r == none* ]]; then echo "time to first ping: $p none ${r#none }"
        else echo "time to first ping: $p ${r%% *} ms (${r#* })"; fi
    done
}

# ---------------------------------------------------------------- 3. time to first ping
measure 1
for n in "${NODES[@]}"; do alive "$n" || echo "  agent $n is not running (log: $(grep -v '^===' "$tmp/$n.log" | tail -n1))"; done

# ---------------------------------------------------------------- 4. paths
path_checks=(
    "A B ${WAN[B]}:* direct, punched through two endpoint-independent NATs"
    "B A ${WAN[A]}:* direct, punched through two endpoint-independent NATs"
    "C D $S_IP:* relayed through S (two endpoint-dependent NATs)"
    "D C $S_IP:* relayed through S (two endpoint-dependent NATs)"
    "A C $S_IP:* relayed through S (an endpoint-independent and an endpoint-dependent NAT cannot meet)"
    "A S $S_IP:51821 the seed"
    "B S $S_IP:51821 the seed"
    "C S $S_IP:51821 the seed"
    "D S $S_IP:51821 the seed"
    "E S $S_IP:51821 the seed"
    "C E ${WAN[E]}:* direct: E's port mapping lets anyone in, even from an endpoint-dependent NAT"
    "A E ${WAN[E]}:* direct, through E's port mapping"
)
all_paths() { for c in "${path_checks[@]}"; do read -r x y pat _ <<<"$c"; want_path "$x" "$y" "$pat" || return 1; done; }
# Paths may still be settling (a relayed pair upgraded to direct): allow a few seconds while agents run.
for _ in $(seq 50); do all_paths && break; alive A || alive B || alive C || alive D || alive E || break; sleep 0.2; done
for c in "${path_checks[@]}"; do
    read -r x y pat why <<<"$c"
    ep=$(endpoint "$x" "$y")
    check "path: at $x, $y's endpoint is $pat: $why (is ${ep:-none})" want_path "$x" "$y" "$pat"
done

# ---------------------------------------------------------------- 5. pings, both directions
ping_to() {  # NS ADDRESS FILE: up to 3 tries; FILE exists when one was answered
    for _ in 1 2 3; do
        ip netns exec "$1" ping -c1 -W1 "$2" >/dev/null 2>&1 && { echo ok >"$3"; return; }
        sleep 0.2
    done
}
for p in "${PAIRS[@]}"; do
    x=${p%-*} y=${p#*-}
    helper ping_to "${NS[$y]}" "${V4[$x]}" "$tmp/back.$p"
done
helper ping_to "${NS[A]}" "${V6[B]}" "$tmp/v6.A-B"
helper ping_to "${NS[B]}" "${V6[A]}" "$tmp/v6.B-A"
wait_bg
for p in "${PAIRS[@]}"; do
    x=${p%-*} y=${p#*-} r=$(cat "$tmp/first.1.$p")
    if [[ $r == none* ]]; then how="no answer: ${r#none (}"; how=${how%)}; else how="first answer after ${r%% *} ms, ${r#* }"; fi
    check "ping $x -> $y over mesh IPv4 ($how)" bash -c '[[ $1 != none* ]]' _ "$r"
    check "ping $y -> $x over mesh IPv4" test -e "$tmp/back.$p"
done
check "ping A -> B over mesh IPv6 (${V6[B]})" test -e "$tmp/v6.A-B"
check "ping B -> A over mesh IPv6 (${V6[A]})" test -e "$tmp/v6.B-A"

# ---------------------------------------------------------------- 6. status
st=$("$AGENT" status --runtime-dir "$tmp/runA" 2>&1) && st_rc=0 || st_rc=$?
sed -n '/^members:/p' <<<"$st" | sed 's/^/  A: /'
check "status of A answers" test "$st_rc" -eq 0
check "status of A lists 5 members alive (S, B, C, D, E)" grep -Eq '^members: +5 alive(,|$)' <<<"$st"
# E's port mapping, from E's agent and from rE's miniupnpd.
stE=$("$AGENT" status --runtime-dir "$tmp/runE" 2>&1) || true
grep -E '^(portmap|members):' <<<"$stE" | sed 's/^/  E: /' || true
echo "  rE's mappings: $(pmp_rules 2>&1 | grep -E 'dnat|^[A-Z]+:' | tr -s '\t\n' '  ')"
check "status of E: portmap: ${WAN[E]}:<port> (rE mapped E's port 51821 by NAT-PMP)" grep -Eq "^portmap:.*${WAN[E]//./\\.}:[0-9]" <<<"$stE"
check "rE's miniupnpd maps a UDP port to hE's 51821 while E's agent runs (a DNAT and a lease)" pmp_mapped
pm_port=$(grep -Eo "^portmap:.*${WAN[E]//./\\.}:[0-9]+" <<<"$stE" | head -n1 | sed 's/.*://' || true)
lease_port=$( { cat "$PMPLEASES" 2>/dev/null || true; } | awk -F: '$1 == "UDP" && $3 == "192.168.1.2" && $4 == 51821 {print $2; exit}')
check "E advertises the port rE really maps (status ${pm_port:-none}, lease ${lease_port:-none})" \
    bash -c '[[ -n $1 && $1 == "$2" ]]' _ "$pm_port" "$lease_port"

# ---------------------------------------------------------------- 7. the relay forwards WireGuard only
# From elsewhere on the internet (198.51.100.4), to the relay port S gave A for C:
# a control-plane envelope, STUN, garbage, and a WireGuard-looking datagram from
# an address that is not A's. Nothing is forwarded, each is counted by reason,
# and A and C still reach each other through the relay.
relay_ep=$(endpoint A C)
relay_port=${relay_ep##*:}
drops_before=$("$AGENT" status --json --runtime-dir "$tmp/runS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nat"]["relayDrops"])')
ip netns exec "$PUB" python3 - "$S_IP" "$relay_port" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.51.100.4", 0))
to = (sys.argv[1], int(sys.argv[2]))
for d in [b"MG\x01\x01" + bytes(60), bytes([0, 1, 0, 0]) + bytes([0x21, 0x12, 0xa4, 0x42]) + bytes(12), b"\xff" * 40,
          bytes([1, 0, 0, 0]) + bytes(144), bytes([4, 0, 0, 0]) + bytes(60)]:
    s.sendto(d, to)
PY
sleep 0.5
relay_json=$("$AGENT" status --json --runtime-dir "$tmp/runS")
echo "  relay drops at S before: $drops_before; after: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["nat"]["relayDrops"])' "$relay_json")"
check "relay: datagrams that are not WireGuard are dropped and counted (not_wireguard)" python3 -c '
import json, sys
b = eval(sys.argv[2]); d = json.loads(sys.argv[1])["nat"]["relayDrops"]
assert d.get("not_wireguard", 0) - b.get("not_wireguard", 0) >= 3, d' "$relay_json" "$drops_before"
check "relay: WireGuard from an address that is not the member's is dropped and counted (wrong_source)" python3 -c '
import json, sys
b = eval(sys.argv[2]); d = json.loads(sys.argv[1])["nat"]["relayDrops"]
assert d.get("wrong_source", 0) - b.get("wrong_source", 0) >= 2, d' "$relay_json" "$drops_before"
check "relay: A and C still reach each other through S afterwards" ip netns exec "${NS[A]}" ping -c1 -W2 "${V4[C]}"
# (E's pairs may have been relayed for a moment before E's mapping was known; an
# allocation nobody refreshes ends after 90 s. Which path each pair uses is
# checked above, from the data planes.)
check "relay: S relays the 5 pairs of C or D with A, B or each other" python3 -c '
import json, sys
n = json.loads(sys.argv[1])["nat"]
assert n["offersRelay"] and n["relayedPairs"] >= 5 and n["relayedPackets"] > 0, n' "$relay_json"

echo "  S: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["nat"])' "$relay_json")"
check "hostile STUN: S's agent took none of the fake server's answers (still no NAT at its own address)" python3 -c '
import json, sys
n = json.loads(sys.argv[1])["nat"]
assert n["mapping"] == "none" and n["publicEndpoint"] == sys.argv[2] + ":51821" and n["stunServers"] == 3, n' "$relay_json" "$S_IP"
check "hostile STUN: S's agent counted the refused answers (spoofed source, other transaction, malformed)" python3 -c '
import json, sys
d = json.loads(sys.argv[1])["nat"]["stunDrops"]
assert d.get("unexpected source", 0) >= 1 and d.get("unknown transaction", 0) >= 1 and d.get("malformed", 0) >= 1, d' "$relay_json"

# Diagnostics while the agents still run: each data plane with names for keys,
# S's UDP sockets (the relay's ports), the routers' NAT mappings of 51821.
if ((FAILS)); then
    {
        names=(); for n in "${NODES[@]}"; do names+=(-e "s|${KEY[$n]}|peer $n|"); done
        for n in "${NODES[@]}"; do
            echo "--- wg show at $n:"
            { ip netns exec "${NS[$n]}" wg show "${IFACE[$n]}" 2>&1 || true; } | grep -E '^(peer|  (endpoint|latest handshake|transfer))' | sed "${names[@]}" -e 's/^/    /' || true
        done
        echo "--- UDP sockets in S:"
        ip netns exec "${NS[S]}" ss -Huan 2>&1 | sed 's/^/    /' || true
        for h in "${HOMES[@]}"; do
            echo "--- conntrack on r$h, port 51821:"
            { ip netns exec "${ROUTER[$h]}" conntrack -L -p udp 2>/dev/null || true; } | grep -E 'port=51821' | sed 's/^/    /' || true
        done
        echo "--- rE's ruleset and leases:"
        { ip netns exec "${ROUTER[E]}" nft list table inet natlab 2>&1 || true; cat "$PMPLEASES" 2>/dev/null || true; } | sed 's/^/    /'
    } >"$tmp/diag" 2>&1
fi

# ---------------------------------------------------------------- benchmark runs
for run in $(seq 2 "$RUNS"); do
    stop_agents
    measure "$run"
done
stop_agents
# E's agent deletes its mapping when it stops (NAT-PMP, lifetime 0); the check
# above ("while E's agent runs") says whether there was one.
for _ in $(seq 20); do pmp_unmapped && break; sleep 0.1; done
check "rE's miniupnpd no longer maps a port to hE's 51821 after E's agent stopped (no DNAT, no lease)" pmp_unmapped
if ((RUNS > 1)); then echo "time to first ping over $RUNS runs, per kind of pair:"; fi
for k in EIM-EIM EDM-EDM EIM-EDM home-S PMP-EIM PMP-EDM PMP-S; do
    samples=() failed=0
    for run in $(seq 1 "$RUNS"); do for p in "${PAIRS[@]}"; do
        [[ $(kind "$p") == "$k" ]] || continue
        r=$(cat "$tmp/first.$run.$p"); [[ $r == none* ]] && failed=$((failed + 1)) || samples+=("${r%% *}")
    done; done
    if ((${#samples[@]})); then
        mapfile -t sorted < <(printf '%s\n' "${samples[@]}" | sort -n); c=${#sorted[@]}
        if ((c % 2)); then med=${sorted[c / 2]}; else med=$(( (sorted[c / 2 - 1] + sorted[c / 2]) / 2 )); fi
        printf '  %-8s median %6s ms, max %6s ms (%d pings, %d without a ping)\n' "$k" "$med" "${sorted[c - 1]}" "$c" "$failed"
    else
        printf '  %-8s no ping (%d without a ping)\n' "$k" "$failed"
    fi
done

if ((FAILS)); then
    for n in "${NODES[@]}"; do echo "--- log of $n (last 15 lines):"; tail -n 15 "$tmp/$n.log" | sed 's/^/    /'; done
    echo "--- coturn (last 5 lines):"; tail -n 5 "$tmp/coturn.log" | sed 's/^/    /'
    echo "--- miniupnpd on rE (last 15 lines, without its nft callbacks):"; { grep -v 'table_cb(' "$tmp/miniupnpd.log" || true; } | tail -n 15 | sed 's/^/    /'
    [[ -e $tmp/diag ]] && cat "$tmp/diag"
fi
echo "nat-lab: elapsed $(( ($(now_ms) - start_ms) / 1000 )) s"
summary
