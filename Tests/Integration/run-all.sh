#!/usr/bin/env bash
# Runs every integration test (Tests/Integration/*-*.sh but this one) as root and prints
# one closing line: "integration: N passed, N failed".
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "integration: NOT RUN — these tests need root (network namespaces, TUN). Run as root: $0" >&2
    exit 1
fi
total_pass=0; total_fail=0
for t in "$dir"/*-*.sh; do
    [[ $(basename "$t") == run-all.sh ]] && continue
    echo "### $(basename "$t")"
    out=$(timeout 600 "$t" 2>&1); rc=$?
    echo "$out"
    p=$(grep -Eo '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1 | awk '{print $1}')
    f=$(grep -Eo '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1 | awk '{print $3}')
    total_pass=$((total_pass + ${p:-0})); total_fail=$((total_fail + ${f:-0}))
    if [[ $rc -ne 0 && ${f:-0} -eq 0 ]]; then total_fail=$((total_fail + 1)); echo "  FAIL: $(basename "$t") exited $rc"; fi
done
echo "integration: $total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 ]]
