#!/usr/bin/env bash
# bench/kernel-apply.sh: time for meshguard-agent to apply 1,000 and 10,000
# peers to an in-kernel WireGuard device, against `wg setconf` with the same
# configuration in the same VM run, and the time of a one-peer change on the
# 10,000-peer device. Runs in the QEMU VM of Tests/VM (software emulation:
# absolute times are slow; compare the ratio). Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && swift build -c release --product meshguard-agent >/dev/null)
exec "$ROOT/Tests/VM/vm.sh" --timeout 1200 "$ROOT/bench/guest-kernel-apply.sh" "$@"
