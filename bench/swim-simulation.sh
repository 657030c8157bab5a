#!/usr/bin/env bash
# bench/swim-simulation.sh [ARGS...]: the SWIM simulation benchmark (issue 5,
# item 10). Builds bench/swim (a package of its own on top of the root
# package's MeshSWIMSimulation library) in release and runs it: for N = 100,
# 1,000, 5,000 and 10,000 nodes, our `.lan` preset beside memberlist's LAN
# defaults (`.memberlistLAN`) in the same run, on MeshTestKit.SWIMSimulator
# (virtual time, one seed):
#   join      one node joins a converged mesh of N-1: time until every member holds it alive;
#   failure   one node killed: time until every member holds it dead;
#   loss      10 % packet loss: false suspicions per member per hour, false deaths;
#   bytes     per member per second, at rest and during join and failure.
# Progress goes to stderr, the tables to stdout (Markdown). ARGS go to the
# benchmark: --sizes 100,1000 --seed 1 --loss 100:600,1000:120,5000:60
# (loss-run seconds per size; none at 10,000 by default) --detection no
# (loss runs only). Every node holds N - 1 member records of about 90 bytes:
# 10,000 nodes take 10 GB; a size that would not fit is skipped, with a note.
#   bench/swim-simulation.sh                                              # 100 to 10,000: 16 min, 9.7 GiB
#   bench/swim-simulation.sh --sizes 10000 --detection no --loss 10000:60 # loss at 10,000: 29 min, 20.9 GiB
set -euo pipefail
DIR=$(cd "$(dirname "$0")/swim" && pwd)
(cd "$DIR" && swift build -c release --product SWIMBench 2>&1 | tail -1) >&2
exec "$DIR/.build/release/SWIMBench" "$@"
