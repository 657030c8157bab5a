#!/usr/bin/env bash
# Files under stress (issue 8, item 6): a full disk during keygen and trust,
# keygen killed with SIGKILL at random moments, stale temporary files of a
# killed writer, a group/other-writable trust file, symlinks in the
# configuration directory. Never a corrupt key, always a one-line error, and
# nothing half-written left behind.
source "$(dirname "$0")/lib.sh"
need mount umount dd
[[ -x $AGENT ]] || { echo "FAIL: $AGENT not built"; exit 1; }
tmp=$(mktemp -d); FULL=$tmp/full
trap 'umount "$FULL" 2>/dev/null || true; cleanup; rm -rf "$tmp"' EXIT
mkdir -p "$FULL"
oneline() { [[ $(wc -l <"$1") -eq 1 ]] && grep -q '^meshguard-agent: error: ' "$1"; }
leftovers() { find "$1" -name '.*.tmp-*' 2>/dev/null | grep -q .; }

# 1. A full disk (a 16 KiB tmpfs, filled so 4 KiB, 1 KiB or nothing is left).
for free in 4 1 0; do
    mount -t tmpfs -o size=16k tmpfs "$FULL"
    dd if=/dev/zero of="$FULL/fill" bs=1k count=$((16 - free)) 2>/dev/null || true
    rc=0; "$AGENT" keygen --config-dir "$FULL/cfg" >/dev/null 2>"$tmp/err" || rc=$?
    check "full disk ($free KiB free): keygen fails with one line (exit $rc)" bash -c "[[ $rc -eq 1 ]] && $(declare -f oneline); oneline $tmp/err"
    check "full disk ($free KiB free): no identity file and no temporary file is left" \
        bash -c "! ls -A '$FULL/cfg' 2>/dev/null | grep -q ."
    rm -f "$FULL/fill"
    check "full disk ($free KiB free): once there is room, keygen works" \
        bash -c "'$AGENT' keygen --config-dir '$FULL/cfg' >/dev/null && '$AGENT' show-identity --config-dir '$FULL/cfg' >/dev/null"
    umount "$FULL"
done
"$AGENT" keygen --config-dir "$tmp/peer" >/dev/null
"$AGENT" export --config-dir "$tmp/peer" >"$tmp/peer.pub"
mount -t tmpfs -o size=16k tmpfs "$FULL"
"$AGENT" keygen --config-dir "$FULL/cfg" >/dev/null
mkdir -p "$FULL/cfg/authorized_keys"
dd if=/dev/zero of="$FULL/fill" bs=1k count=16 2>/dev/null || true
rc=0; "$AGENT" trust "$tmp/peer.pub" --name peer --config-dir "$FULL/cfg" >/dev/null 2>"$tmp/err" || rc=$?
check "full disk: trust fails with one line (exit $rc)" bash -c "[[ $rc -eq 1 ]] && $(declare -f oneline); oneline $tmp/err"
check "full disk: nothing half-written in authorized_keys/" bash -c "! ls -A '$FULL/cfg/authorized_keys' | grep -q ."
check "full disk: the identity is intact" "$AGENT" show-identity --config-dir "$FULL/cfg"
umount "$FULL"

# 2. keygen killed with SIGKILL at random moments: any identity.key there is whole.
made=0 broken=0 litter=0
for i in $(seq 100); do
    d=$tmp/kill$i
    "$AGENT" keygen --config-dir "$d" >/dev/null 2>&1 & p=$!
    sleep "0.0$((RANDOM % 6))$((RANDOM % 10))"; kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
    if [[ -e $d/identity.key ]]; then
        made=$((made + 1))
        "$AGENT" show-identity --config-dir "$d" >/dev/null 2>&1 || broken=$((broken + 1))
    fi
    leftovers "$d" && litter=$((litter + 1))
done
echo "  keygen killed 100 times: $made identities written, $broken unreadable, $litter with a temporary file left by the killed writer"
check "kill -9 during keygen: never a corrupt identity.key ($broken of $made)" test "$broken" -eq 0
after=0
for i in $(seq 100); do
    "$AGENT" keygen --force --config-dir "$tmp/kill$i" >/dev/null 2>&1
    leftovers "$tmp/kill$i" && after=$((after + 1))
done
check "the next write removes what a killed writer left ($litter before, $after after)" test "$after" -eq 0
# What a writer killed between its write and its rename leaves: a dot-file the agent ignores.
"$AGENT" keygen --config-dir "$tmp/stale" >/dev/null
mkdir -p "$tmp/stale/authorized_keys"
echo "half a key" >"$tmp/stale/.identity.key.tmp-dead"
echo "half a key" >"$tmp/stale/authorized_keys/.peer.pub.tmp-dead"
check "a stale temporary file of a killed writer changes nothing (identity, trust)" bash -c \
    "'$AGENT' show-identity --config-dir '$tmp/stale' >/dev/null && '$AGENT' trusted --config-dir '$tmp/stale' 2>&1 | grep -qi 'no trusted peers'"

# 3. Permissions: a readable secret is refused; a trust file others can write is skipped.
"$AGENT" keygen --config-dir "$tmp/perm" >/dev/null
chmod 0644 "$tmp/perm/identity.key"
rc=0; "$AGENT" show-identity --config-dir "$tmp/perm" >/dev/null 2>"$tmp/err" || rc=$?
check "identity.key readable by others: refused with one line that says how to fix it" \
    bash -c "[[ $rc -ne 0 ]] && $(declare -f oneline); oneline $tmp/err && grep -q 'chmod' $tmp/err"
chmod 0600 "$tmp/perm/identity.key"
"$AGENT" trust "$tmp/peer.pub" --name peer --config-dir "$tmp/perm" >/dev/null
chmod 0666 "$tmp/perm/authorized_keys/peer.pub"
out=$("$AGENT" trusted --config-dir "$tmp/perm" 2>&1)
check "a trust file writable by others is not trusted, with a warning naming the fix" \
    bash -c "grep -qi 'no trusted peers' <<<'$out' && grep -q 'writable by group or others (mode 666): fix with chmod go-w' <<<'$out'"
chmod 0600 "$tmp/perm/authorized_keys/peer.pub"
check "... and trusted again once fixed" bash -c "'$AGENT' trusted --config-dir '$tmp/perm' | grep -q '^peer '"

# 4. Symlinks: keygen --force replaces a symlinked identity.key, never writing through it.
"$AGENT" keygen --config-dir "$tmp/link" >/dev/null
echo "not yours" >"$tmp/victim"; chmod 0600 "$tmp/victim"
rm "$tmp/link/identity.key"; ln -s "$tmp/victim" "$tmp/link/identity.key"
"$AGENT" keygen --force --config-dir "$tmp/link" >/dev/null 2>&1 || true
check "keygen --force on a symlinked identity.key leaves the link's target untouched" grep -qx "not yours" "$tmp/victim"
check "... and writes a regular 0600 file in its place" \
    bash -c "[[ -f '$tmp/link/identity.key' && ! -L '$tmp/link/identity.key' && \$(stat -c %a '$tmp/link/identity.key') == 600 ]]"
echo "$PASSES passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
