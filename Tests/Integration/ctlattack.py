#!/usr/bin/env python3
"""Control-plane attacks for Tests/Integration/control-attacks.sh.

  ctlattack.py capture IFACE SECONDS OUT   save control-plane envelopes seen on IFACE
                                           (UDP, payload starting "MG") as OUT/<source ip>/<n>
  ctlattack.py attack TARGET:PORT DIR      from a UDP socket on port 51821: replays of
                                           DIR/trusted/*, truncations, bit flips, oversized
                                           envelopes naming a trusted sender, and a flood
                                           of DIR/untrusted/* (genuine, signed by a key the
                                           target does not trust); prints one line per
                                           attack "NAME SENT" and "replies N" (datagrams
                                           that came back: there should be none)

Sends are paced (PPS, default 20000) so that what is measured is the agent's
verdict, not the socket buffer's. Needs root for capture (AF_PACKET).
"""
import glob
import os
import random
import socket
import struct
import sys
import time


def capture(iface: str, seconds: float, out: str) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.2)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        try:
            frame = s.recv(65535)
        except socket.timeout:
            continue
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17:
            continue
        src = socket.inet_ntoa(ip[12:16])
        udp = ip[ihl:]
        payload = udp[8:struct.unpack("!H", udp[4:6])[0]]
        if payload[:2] != b"MG":
            continue
        os.makedirs(os.path.join(out, src), exist_ok=True)
        with open(os.path.join(out, src, str(n)), "wb") as f:
            f.write(payload)
        n += 1
    print(f"captured {n}")
    return 0


def attack(target: str, d: str) -> int:
    host, _, port = target.rpartition(":")
    dest = (host, int(port))
    pps = int(os.environ.get("PPS", "20000"))
    trusted = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(d, "trusted", "*")))]
    untrusted = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(d, "untrusted", "*")))]
    if not trusted or not untrusted:
        print("ctlattack: nothing captured to attack with", file=sys.stderr)
        return 2
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 51821))
    s.setblocking(False)
    rng = random.Random(7)
    replies = 0

    def send(datagrams):
        nonlocal replies
        start, sent = time.monotonic(), 0
        for b in datagrams:
            while sent > (time.monotonic() - start) * pps:
                time.sleep(0.0005)
            s.sendto(b, dest)
            sent += 1
            try:
                while True:
                    s.recv(65535)
                    replies += 1
            except BlockingIOError:
                pass
        return sent

    def replays():
        for _ in range(200):
            yield from trusted

    def truncations():
        for b in trusted:
            yield from (b[:n] for n in range(len(b)))

    def flips():
        for _ in range(5000):
            b = bytearray(rng.choice(trusted))
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
            yield bytes(b)

    def oversized():
        head = trusted[0][:36]   # "MG", version, kind, a trusted sender's key
        for i in range(100):
            size = rng.choice([1115, 4000, 60000])
            yield head + struct.pack("!QQH", 1 << 60, i, min(size, 65535)) + bytes(size) + bytes(64)

    def untrusted_flood():
        for _ in range(20000 // len(untrusted) + 1):
            yield from untrusted

    def junk():
        for _ in range(2000):
            yield b"MG" + rng.randbytes(rng.randrange(0, 1400))

    for name, gen in [("replayed", replays()), ("truncated", truncations()), ("bit-flipped", flips()),
                      ("oversized", oversized()), ("untrusted", untrusted_flood()), ("junk", junk())]:
        print(f"{name} {send(gen)}", flush=True)
    time.sleep(1)
    try:
        while True:
            s.recv(65535)
            replies += 1
    except BlockingIOError:
        pass
    print(f"replies {replies}")
    return 0


def main() -> int:
    a = sys.argv[1:]
    try:
        if len(a) == 4 and a[0] == "capture":
            return capture(a[1], float(a[2]), a[3])
        if len(a) == 3 and a[0] == "attack":
            return attack(a[1], a[2])
    except (OSError, ValueError) as e:
        print(f"ctlattack: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
