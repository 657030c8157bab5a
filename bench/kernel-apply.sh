#!/usr/bin/env bash
# bench/kernel-apply.sh: time for meshguard-agent to apply 1,000 and 10,000
# peers to an in-kernel WireGuard device, against `wg setconf` with the same
# configuration in the same VM run, and the time of a one-peer change on the
# 10,000-peer device. Runs in the QEMU VM of Tests/VM (software emulation:
# absolute times are slow; compare the ratio). Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && swift build -c release --product meshguard-agent >/dev/null)
"$ROOT/Tests/VM/vm.sh" --timeout 1200 "$ROOT/bench/guest-kernel-apply.sh" "$@"
# The one-peer change's computation natively (the VM emulates the CPU, ~10x slower):
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed -n '/^gen() {/,/^}/p' "$ROOT/bench/guest-kernel-apply.sh" > "$tmp/gen.sh"; source "$tmp/gen.sh"
gen 10000 0 "$tmp/a.conf"; gen 10000 1 "$tmp/b.conf"
echo "native, 10000 peers, one-peer change: $("$ROOT/.build/release/meshguard-agent" debug kernel-apply none "$tmp/b.conf" --from "$tmp/a.conf" --dry-run)"
