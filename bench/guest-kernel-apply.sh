#!/usr/bin/env bash
# Guest side of bench/kernel-apply.sh (runs in the VM as root). For N peers:
# time `wg setconf` and meshguard-agent's netlink path applying the same
# configuration to a fresh kernel interface, then a one-peer change on the
# N-peer device (the agent's incremental path against its cached state, its
# full reconcile that reads the device back, and wg syncconf for reference).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${AGENT:-$ROOT/.build/release/meshguard-agent}
[[ -x $AGENT ]] || AGENT=$ROOT/.build/debug/meshguard-agent
SIZES=${SIZES:-1000 10000}
modprobe wireguard 2>/dev/null || true
tmp=$(mktemp -d)
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

gen() {  # gen N CHANGED OUT: a wg config with N random peers; CHANGED=1 moves the last peer's endpoint
    python3 - "$1" "$2" "$3" <<'PY'
import base64, os, random, sys
n, changed, out = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
random.seed(n)
lines = ["[Interface]", "PrivateKey = " + base64.b64encode(bytes(random.getrandbits(8) for _ in range(32))).decode(), "ListenPort = 51820", ""]
for i in range(n):
    key = base64.b64encode(bytes(random.getrandbits(8) for _ in range(32))).decode()
    port = 40000 if (changed and i == n - 1) else 51820
    lines += ["[Peer]", "PublicKey = " + key, f"AllowedIPs = 10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32",
              f"Endpoint = 192.0.2.{1 + i % 250}:{port}", ""]
open(out, "w").write("\n".join(lines))
PY
}

echo "kernel $(uname -r); agent $AGENT"
printf '%-8s %14s %14s %8s | %18s %14s %18s %14s\n' peers "wg setconf ms" "agent ms" ratio "1-peer cached ms" "(netlink ms)" "1-peer reread ms" "syncconf ms"
for n in $SIZES; do
    gen "$n" 0 "$tmp/a.conf"; gen "$n" 1 "$tmp/b.conf"
    ip link add wgs type wireguard
    t0=$(now); wg setconf wgs "$tmp/a.conf"; t1=$(now)
    wgms=$(ms "$t0" "$t1")
    t0=$(now); wg syncconf wgs "$tmp/b.conf"; t1=$(now)
    syncms=$(ms "$t0" "$t1")
    ip link del wgs

    ip link add wga type wireguard
    agentms=$("$AGENT" debug kernel-apply wga "$tmp/a.conf" | awk '{print $(NF-1)}')
    count=$(wg show wga peers | wc -l)
    [[ $count -eq $n ]] || { echo "FAIL: agent applied $count of $n peers"; exit 1; }
    line=$("$AGENT" debug kernel-apply wga "$tmp/b.conf" --from "$tmp/a.conf")
    cached=$(awk '{print $(NF-1)}' <<<"$line"); netlink=$(grep -o 'netlink [0-9.]*' <<<"$line" | awk '{print $2}')
    [[ $(wg show wga endpoints | grep -c ':40000') -eq 1 ]] || { echo "FAIL: the one-peer change did not apply"; exit 1; }
    reread=$("$AGENT" debug kernel-apply wga "$tmp/a.conf" --reconcile | awk '{print $(NF-1)}')
    ip link del wga
    ratio=$(python3 -c "print(f'{$agentms/$wgms:.2f}' if $wgms else 'n/a')")
    printf '%-8s %14s %14s %8s | %18s %14s %18s %14s\n' "$n" "$wgms" "$agentms" "$ratio" "$cached" "$netlink" "$reread" "$syncms"
done
echo "1 passed, 0 failed"
