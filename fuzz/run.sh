#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...]: fuzzes every decoder that reads bytes
# from outside with libFuzzer (issue 8), SECONDS per target (default 20),
# starting from the seed corpus in fuzz/corpus/<target> (made with the real
# encoders: MESHGUARD_FUZZ_SEEDS=DIR on the fuzz binary). Prints, per target,
# the executions, the coverage (libFuzzer's cov: edges and ft: features) and
# the corpus it grew to; exits 1 if any input crashed, trapped or hung, with
# the input kept under FUZZ_OUT (default /tmp/meshguard-fuzz) and the command
# that replays it. CI runs it through scripts/test with a short budget; a
# longer hunt: fuzz/run.sh 600.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER=${1:-20}
[[ $SECONDS_PER =~ ^[1-9][0-9]*$ ]] || { echo "fuzz/run.sh: SECONDS must be a positive number, not '$SECONDS_PER'" >&2; exit 2; }
shift || true
OUT=${FUZZ_OUT:-/tmp/meshguard-fuzz}
rm -rf "$OUT"; mkdir -p "$OUT"
(cd "$ROOT/fuzz" && swift build -c debug -Xswiftc -sanitize=fuzzer --scratch-path "$ROOT/.build-fuzz" >"$OUT/build.log" 2>&1) \
    || { tail -20 "$OUT/build.log"; echo "fuzz/run.sh: the fuzz build failed" >&2; exit 1; }
BIN=$ROOT/.build-fuzz/debug/MeshguardFuzz
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
    read -r -a TARGETS <<<"$("$BIN" 2>&1 | sed -n 's/.*one of: //p')"
fi
failed=0
printf '%-10s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for t in "${TARGETS[@]}"; do
    work=$OUT/corpus-$t; mkdir -p "$work"
    [[ -d $ROOT/fuzz/corpus/$t ]] && cp "$ROOT/fuzz/corpus/$t"/* "$work"/ 2>/dev/null || true
    rc=0
    MESHGUARD_FUZZ_TARGET=$t "$BIN" "$work" -max_total_time="$SECONDS_PER" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/$t-" >"$OUT/$t.log" 2>&1 || rc=$?
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$OUT/$t.log" | grep -oE '[0-9]+$' || echo 0)
    last=$(grep -E '^#[0-9]+' "$OUT/$t.log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
    corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
    artifact=$(ls "$OUT/$t-"* 2>/dev/null | head -1 || true)
    if ((rc != 0)) || [[ -n $artifact ]]; then
        failed=1
        printf '%-10s %12s %8s %8s %8s  %s\n' "$t" "${execs:-0}" "$cov" "$ft" "$corp" "FAILED (exit $rc): ${artifact:-see $OUT/$t.log}"
        [[ -n $artifact ]] && echo "  replay: MESHGUARD_FUZZ_TARGET=$t $BIN $artifact"
    else
        printf '%-10s %12s %8s %8s %8s  %s\n' "$t" "$execs" "$cov" "$ft" "$corp" ok
    fi
done
exit $failed
