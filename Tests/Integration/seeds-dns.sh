#!/usr/bin/env bash
# Seed discovery through DNS, in a network namespace whose resolver is a tiny
# DNS server (python3) on 127.0.0.1 (ip netns exec bind-mounts
# /etc/netns/<ns>/resolv.conf over /etc/resolv.conf):
#   _meshguard._udp.mesh.test  SRV  10 5 51821 seed1.mesh.test.
#                              TXT  "seed=192.0.2.20:51822"
#   seed1.mesh.test            A    192.0.2.10
source "$(dirname "$0")/lib.sh"
need ip python3
NS=mgdns-$RUN
netns "$NS"
mkdir -p "/etc/netns/$NS"
trap 'cleanup; rm -rf "/etc/netns/$NS"' EXIT
echo "nameserver 127.0.0.1" > "/etc/netns/$NS/resolv.conf"
echo "options timeout:1 attempts:1" >> "/etc/netns/$NS/resolv.conf"
ip netns exec "$NS" python3 - <<'PY' &
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 53))
def name(n): return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".") if l) + b"\0"
while True:
    q, addr = s.recvfrom(512)
    i = 12; labels = []
    while q[i]: labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]
    qname = ".".join(labels).lower(); qtype = struct.unpack(">H", q[i+1:i+3])[0]; qend = i + 5
    answers = []
    if qname == "_meshguard._udp.mesh.test" and qtype == 33:
        answers.append((33, struct.pack(">HHH", 10, 5, 51821) + name("seed1.mesh.test")))
    if qname == "_meshguard._udp.mesh.test" and qtype == 16:
        t = b"seed=192.0.2.20:51822"; answers.append((16, bytes([len(t)]) + t))
    if qname == "seed1.mesh.test" and qtype == 1:
        answers.append((1, bytes([192, 0, 2, 10])))
    rcode = 0 if qname.endswith("mesh.test") else 3
    r = q[:2] + struct.pack(">HHHHH", 0x8180 | rcode, 1, len(answers), 0, 0) + q[12:qend]
    for t, rd in answers: r += b"\xc0\x0c" + struct.pack(">HHIH", t, 1, 60, len(rd)) + rd
    s.sendto(r, addr)
PY
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$NS" ss -uln | grep -q 127.0.0.1:53 && break; sleep 0.1; done
out=$(ip netns exec "$NS" "$AGENT" debug resolve-seeds dns:mesh.test 2>"/tmp/mg-it-$RUN-dns.err")
check "SRV target resolved to its A record with the SRV port" grep -qx "192.0.2.10:51821" <<<"$out"
check "TXT seed=... entries are seeds too" grep -qx "192.0.2.20:51822" <<<"$out"
check "a name seed resolves through the same resolver" grep -qx "192.0.2.10:7" <<<"$(ip netns exec "$NS" "$AGENT" debug resolve-seeds seed1.mesh.test:7)"
err=$(ip netns exec "$NS" "$AGENT" debug resolve-seeds dns:nothing.example 2>&1 >/dev/null)
check "a domain without seeds is reported" grep -q "no seeds found in DNS at _meshguard._udp.nothing.example" <<<"$err"
summary
