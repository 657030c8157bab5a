#!/usr/bin/env bash
# A gossip mesh of kernel-mode and userspace-mode agents in a QEMU VM with
# Debian's stock kernel (Tests/VM/vm.sh, Tests/VM/guest-mesh-mixed.sh). The
# guest script prints "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
out=$("$ROOT/Tests/VM/vm.sh" --timeout 900 "$ROOT/Tests/VM/guest-mesh-mixed.sh" 2>&1); rc=$?
echo "$out"
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1)
if [[ -z $last ]]; then echo "0 passed, 1 failed"; exit 1; fi
echo "$last"
[[ $rc -eq 0 ]]
