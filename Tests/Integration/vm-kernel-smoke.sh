#!/usr/bin/env bash
# In-kernel WireGuard smoke test in a QEMU VM (the host kernel has no
# wireguard module): runs Tests/VM/kernel-smoke.sh through Tests/VM/vm.sh and
# relays its result, plus two host-side checks (the VM's exit status, and a
# file the guest wrote through a --rw share). Run as root.
# Last line: "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d /tmp/mg-vm-smoke.XXXXXX)
log=$out/vm.log
mkdir "$out/share"
trap 'rm -rf "$out"' EXIT

"$ROOT/Tests/VM/vm.sh" --timeout "${MESHGUARD_VM_TIMEOUT:-300}" --rw "$out/share" \
    "$ROOT/Tests/VM/kernel-smoke.sh" "$out/share" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)
p=$(awk '{print $1}' <<<"$summary"); f=$(awk '{print $3}' <<<"$summary")
p=${p:-0}; f=${f:-0}
if [[ -z $summary ]]; then
    echo "  FAIL: the guest script reported no result (vm.sh exited $rc)"; f=$((f + 1))
elif [[ $rc -ne 0 && $f -eq 0 ]] || [[ $rc -eq 0 && $f -ne 0 ]]; then
    echo "  FAIL: vm.sh exited $rc but the guest reported $f failures"; f=$((f + 1))
else
    echo "  ok: vm.sh exit status $rc matches the guest's result"; p=$((p + 1))
fi
guest_kernel=$(cat "$out/share/uname-r" 2>/dev/null)
if [[ -n $guest_kernel && $guest_kernel != "$(uname -r)" ]]; then
    echo "  ok: the guest ($guest_kernel) wrote to the host through --rw"; p=$((p + 1))
else
    echo "  FAIL: no guest kernel release in the --rw share (got '${guest_kernel}')"; f=$((f + 1))
fi
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
