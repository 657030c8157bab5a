#!/usr/bin/env bash
# bench/nat-first-ping.sh [RUNS]: time from the start of the agents to the
# first ping, per kind of NAT pair (issue 7), in the namespace NAT lab of
# Tests/Integration/nat-lab.sh (coturn, endpoint-independent and -dependent
# nftables routers, a public seed and relay), with the release build. Each run
# restarts the five agents on fresh NAT tables; pings are retried every
# ~200 ms. Prints every run and the median and maximum per kind of pair:
# EIM-EIM (punched), EDM-EDM and EIM-EDM (relayed), home-S (public member).
# Run as root.
set -euo pipefail
RUNS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && swift build -c release --product meshguard-agent >/dev/null)
AGENT=$ROOT/.build/release/meshguard-agent NAT_LAB_RUNS=$RUNS exec "$ROOT/Tests/Integration/nat-lab.sh"
