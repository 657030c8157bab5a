#!/usr/bin/env bash
# The NAT lab of nat-lab.sh with kernel-mode agents, in a QEMU VM with Debian's
# stock kernel (Tests/VM/vm.sh, Tests/VM/guest-nat-kernel.sh): hole punching
# between kernels behind endpoint-independent NATs, relaying through a public
# kernel member otherwise. The guest script prints "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
out=$("$ROOT/Tests/VM/vm.sh" --timeout 900 "$ROOT/Tests/VM/guest-nat-kernel.sh" 2>&1); rc=$?
echo "$out"
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1)
if [[ -z $last ]]; then echo "0 passed, 1 failed"; exit 1; fi
echo "$last"
[[ $rc -eq 0 ]]
