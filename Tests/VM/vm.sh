#!/usr/bin/env bash
# Tests/VM/vm.sh: run a guest script as root inside a throwaway QEMU VM that
# boots Debian's stock kernel (which has in-kernel WireGuard; the host kernel
# does not) with the host's / shared read-only over 9p, so host binaries
# (wg, ip, our Swift build products) run unchanged against the guest kernel.
#
# Usage: Tests/VM/vm.sh [--timeout S] [--rw DIR]... GUEST_SCRIPT [ARGS...]
#
#   GUEST_SCRIPT  a file on the host; it runs in the guest at the same path,
#                 as root, cwd = the repository root, with ARGS, under its
#                 shebang if executable (else under bash). Its environment is
#                 clean: PATH, HOME=/tmp, LANG, MESHGUARD_IN_VM=1, plus every
#                 MESHGUARD_* variable of the caller.
#   --timeout S   wall-clock limit for the whole VM run (default 300); on
#                 expiry qemu is killed and vm.sh exits 124.
#   --rw DIR      share DIR read-write at the same path (for test output).
#                 Repeatable. Everything else of the host is read-only, and
#                 /tmp, /run (= /var/run) are empty tmpfs in the guest.
#
# Exit status: the guest script's, 124 on timeout, 125 if the VM could not be
# prepared or did not report a status (one "FAIL: ..." line says why).
# Environment: MESHGUARD_VM_CACHE (default /var/cache/meshguard-vm) holds the
# kernel and the initramfs; MESHGUARD_VM_MODULES adds kernel modules;
# MESHGUARD_VM_SMP / MESHGUARD_VM_MEM override -smp 2 / -m 1024.
# See Tests/VM/README.md.
set -euo pipefail
shopt -s extglob

# Bump to force an initramfs rebuild when the way it is built changes.
readonly FORMAT=1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CACHE=${MESHGUARD_VM_CACHE:-/var/cache/meshguard-vm}
SMP=${MESHGUARD_VM_SMP:-2}
MEM=${MESHGUARD_VM_MEM:-1024}
TIMEOUT=300
RW=()

# Loaded at boot, in this order, each after its modinfo dependencies.
# crc32c_generic must precede nf_tables (libcrc32c needs a crc32c provider).
BOOT_MODULES="virtio_pci virtio_rng 9pnet_virtio 9p veth tun wireguard
              crc32c_generic nf_tables ${MESHGUARD_VM_MODULES:-}"
# Also in the initramfs, loaded on demand (modprobe, or the kernel's autoload
# through the initramfs's busybox modprobe), to keep the boot short.
MORE_MODULES="bridge sch_netem dummy macvlan ipvlan nft_ct nft_nat nft_masq
              nft_chain_nat nft_reject_inet nft_fib_inet nft_limit nft_log
              nf_conntrack_netlink"
PKGS=(qemu-system-x86 busybox-static cpio kmod wireguard-tools iproute2 iputils-ping)

say() { echo "vm: $*" >&2; }
die() { echo "FAIL: $*" >&2; exit 125; }
now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
usage() { sed -n '7,25s/^# \{0,1\}//p' "$0"; }

while (($#)); do
    case $1 in
        --timeout) [[ ${2:-} =~ ^[0-9]+$ && $2 -gt 0 ]] || die "--timeout needs a number of seconds"
                   TIMEOUT=$2; shift 2 ;;
        --rw) [[ -d ${2:-} ]] || die "--rw ${2:-}: not a directory"
              RW+=("$(realpath -e -- "$2")"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1 (see $0 --help)" ;;
        *) break ;;
    esac
done
(($#)) || { usage >&2; die "no guest script given"; }
[[ -f $1 ]] || die "guest script $1: no such file"
SCRIPT=$(realpath -e -- "$1"); shift
[[ $(id -u) -eq 0 ]] || die "must run as root (apt, the cache in $CACHE, 9p export of /)"

# One preparer at a time (apt, download, initramfs); released before boot.
mkdir -p "$CACHE"
exec {lockfd}>"$CACHE/lock"
flock -w 900 "$lockfd" || die "could not lock $CACHE/lock within 900s"
APTLOG=$CACHE/apt.log   # the last apt command's output, kept for diagnosis

# ----------------------------------------------------------------- packages
apt_updated=
apt_update() {
    [[ -n $apt_updated ]] && return 0
    apt_updated=1
    apt-get update -qq >"$APTLOG" 2>&1 || die "apt-get update failed: $(grep -v '^W:' "$APTLOG" | tail -n1)"
}
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    t=$(now)
    apt_update
    # --no-install-recommends: wireguard-tools recommends a whole linux-image.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "${missing[@]}" >"$APTLOG" 2>&1 \
        || { tail -n5 "$APTLOG" >&2; die "apt-get install ${missing[*]} failed: $(tail -n1 "$APTLOG")"; }
    say "installed ${missing[*]} in $(since "$t")s"
fi

# ------------------------------------------------------------------- kernel
# extract_vmlinux BZIMAGE OUT: the ELF inside, if it has a PVH entry note
# (Xen note type 18, XEN_ELFNOTE_PHYS32_ENTRY).
extract_vmlinux() {
    local off magic cmd
    command -v readelf >/dev/null || return 1
    for magic in '\xfd7zXZ\x00:xz -dc' '\x1f\x8b\x08:gzip -dc' '\x28\xb5\x2f\xfd:zstd -qdc'; do
        cmd=${magic#*:}
        for off in $(LC_ALL=C grep -obUaP "${magic%%:*}" "$1" | cut -d: -f1); do
            tail -c +$((off + 1)) "$1" | $cmd > "$2" 2>/dev/null
            [[ $(head -c4 "$2" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] || continue
            LC_ALL=C readelf -n "$2" 2>/dev/null | grep -Eq 'Xen[[:space:]]+0x[0-9a-f]+[[:space:]]+(Unknown note type: \(0x00000012\)|XEN_ELFNOTE_PHYS32_ENTRY)' && return 0
            return 1
        done
    done
    return 1
}
# The kernel package linux-image-amd64 depends on and its version, e.g.
# "linux-image-6.1.0-56-amd64 6.1.192-2". apt-cache takes ~0.5 s per call
# here (no pkgcache.bin), so the answer is cached until the apt lists change.
kernel_pkg() {
    local stamp s pkg ver dep
    stamp=$(stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null | md5sum | cut -c1-16)
    if read -r s pkg ver 2>/dev/null < "$CACHE/kernel-pkg" && [[ $s == "$stamp" && -n $ver ]]; then
        echo "$pkg $ver"; return 0
    fi
    dep=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null | awk '/^Depends:/ { print; exit }')
    pkg=$(grep -o 'linux-image-[0-9][^ ,]*' <<<"$dep" | head -n1)
    [[ -n $pkg ]] || return 1
    ver=$(sed -n "s/.*$pkg (= \([^)]*\)).*/\1/p" <<<"$dep")
    [[ -n $ver ]] || ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
    [[ -n $ver ]] || return 1
    echo "$stamp $pkg $ver" > "$CACHE/kernel-pkg"
    echo "$pkg $ver"
}
if ! kpkg=$(kernel_pkg); then
    apt_update
    kpkg=$(kernel_pkg) || kpkg=
fi
if [[ -n $kpkg ]]; then
    read -r KPKG KVER <<<"$kpkg"
    KDIR=$CACHE/kernel-${KPKG}_$KVER
elif KDIR=$(ls -d "$CACHE"/kernel-*/ 2>/dev/null | sort -V | tail -n1) && [[ -f $KDIR/done ]]; then
    KDIR=${KDIR%/}; say "apt does not know linux-image-amd64; using the cached ${KDIR##*/}"
else
    die "cannot resolve the kernel package: apt-cache depends linux-image-amd64 gives no linux-image-<version>-amd64"
fi
if [[ ! -f $KDIR/done ]]; then
    t=$(now); rm -rf "$KDIR"
    dl=$(mktemp -d "$CACHE/download.XXXXXX"); chmod 755 "$dl"
    if ! (cd "$dl" && apt-get download "$KPKG=$KVER") >"$APTLOG" 2>&1; then
        # The lists may be stale and the mirror may have dropped that version.
        err=$(grep -v '^W:' "$APTLOG" | tail -n1)
        apt_update
        kpkg=$(kernel_pkg) || { rm -rf "$dl"; die "kernel package download failed: $err"; }
        read -r KPKG KVER <<<"$kpkg"; KDIR=$CACHE/kernel-${KPKG}_$KVER
        (cd "$dl" && apt-get download "$KPKG=$KVER") >"$APTLOG" 2>&1 \
            || { rm -rf "$dl"; die "kernel package download failed: $(grep -v '^W:' "$APTLOG" | tail -n1)"; }
    fi
    deb=$(ls "$dl"/*.deb)
    mkdir -p "$dl/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dl/x" --wildcards './boot/vmlinuz-*' \
        || { rm -rf "$dl"; die "kernel package $deb: no /boot/vmlinuz-* in it"; }
    vmlinuz=$(ls "$dl"/x/boot/vmlinuz-*)
    mv "$vmlinuz" "$dl/vmlinuz"; echo "${vmlinuz##*/vmlinuz-}" > "$dl/kernel-release"
    mv "$deb" "$dl/kernel.deb"; rm -rf "$dl/x"; touch "$dl/done"
    mv -T "$dl" "$KDIR"
    say "downloaded $KPKG $KVER ($(du -m "$KDIR/kernel.deb" | cut -f1) MB) in $(since "$t")s"
    # Drop other kernels and their initramfs images.
    for old in "$CACHE"/kernel-*; do [[ $old == "$KDIR" ]] || rm -rf "$old"; done
fi
KV=$(<"$KDIR/kernel-release")
# Boot the uncompressed vmlinux through its PVH entry when it has one: this
# skips SeaBIOS's real-mode loader and the in-guest decompression, about 2 s
# under TCG. The bzImage stays as the fallback.
if [[ ! -f $KDIR/vmlinux && ! -f $KDIR/vmlinux.none ]]; then
    t=$(now)
    if extract_vmlinux "$KDIR/vmlinuz" "$KDIR/vmlinux.tmp"; then
        mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"; say "extracted the PVH-bootable vmlinux in $(since "$t")s"
    else
        rm -f "$KDIR/vmlinux.tmp"; touch "$KDIR/vmlinux.none"; say "no PVH entry in the kernel (or no readelf); booting the bzImage"
    fi
fi
VMLINUZ=$KDIR/vmlinuz
[[ -f $KDIR/vmlinux ]] && VMLINUZ=$KDIR/vmlinux

# ---------------------------------------------------------------- initramfs
# PID 1 of the guest (busybox sh). Loads the modules, mounts the host root
# read-only at /host with writable tmpfs on /tmp and /run, mounts the shares
# listed by the host in the control share (/ctl), chroots and runs the guest
# script through the host-written runner, reports its status and powers off.
# Lines starting with MGVM- are read by the host.
read -r -d '' INIT <<'EOF' || true
#!/bin/sh
export PATH=/bin
fail() { echo "MGVM-FAIL $*"; poweroff -f; }
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev \
    || fail "mounting proc, sys, dev failed"
read -r t_init _ < /proc/uptime
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
stty -onlcr 2>/dev/null
echo /bin/modprobe > /proc/sys/kernel/modprobe
kv=$(uname -r)
while read -r m; do
    n=${m##*/}; n=${n%.ko}; n=${n//-/_}
    [ -d "/sys/module/$n" ] || insmod "/lib/modules/$kv/$m" || echo "vm: note: insmod $n failed"
done < /etc/modules.boot
read -r t_mods _ < /proc/uptime
ip link set lo up
hostname meshguard-vm
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$o,ro,cache=loose" hostroot /host || fail "cannot mount the host root over 9p"
mount -t 9p -o "$o" mgvmctl /ctl || fail "cannot mount the control share"
for d in proc sys dev; do mount --rbind "/$d" "/host/$d" || fail "cannot bind /$d into /host"; done
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "cannot mount tmpfs on /host/tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run || fail "cannot mount tmpfs on /host/run"
[ -L /host/var/run ] || mount --bind /host/run /host/var/run
if [ -d /host/lib/modules ]; then
    mount --bind /lib/modules /host/lib/modules
else
    # A host without /lib/modules (no kmod yet): keep the guest's modules
    # where a modprobe wrapper (set up by the runner) finds them.
    mkdir -p /host/run/meshguard-vm-modules/lib/modules
    mount --bind /lib/modules /host/run/meshguard-vm-modules/lib/modules
fi
while read -r tag mode path; do
    [ -n "$tag" ] || continue
    mkdir -p "/host$path" 2>/dev/null
    mount -t 9p -o "$o,$mode" "$tag" "/host$path" || fail "cannot mount the share $path"
done < /ctl/shares
mkdir -p /host/run/meshguard-vm && mount --bind /ctl /host/run/meshguard-vm || fail "cannot bind the control share"
read -r t_ready _ < /proc/uptime
echo "MGVM-READY $t_init $t_mods $t_ready"
chroot /host /bin/bash /run/meshguard-vm/runner </dev/null
rc=$?
echo "$rc" > /ctl/rc
echo "MGVM-EXIT $rc"
sync
poweroff -f
EOF

[[ -x /bin/busybox ]] || die "/bin/busybox missing (package busybox-static)"
KEY=$( { echo "$FORMAT $KDIR $KV"; echo $BOOT_MODULES; echo $MORE_MODULES; echo "$INIT"; sha256sum /bin/busybox; } | sha256sum | cut -c1-16)
INITRD=$CACHE/initramfs-$KV-$KEY.cpio.gz
if [[ ! -f $INITRD ]]; then
    t=$(now)
    b=$(mktemp -d "$CACHE/build.XXXXXX")
    trap 'rm -rf "$b"' EXIT
    dpkg-deb -x "$KDIR/kernel.deb" "$b/deb" || die "cannot unpack $KDIR/kernel.deb"
    src=$b/deb/lib/modules/$KV
    [[ -d $src ]] || die "kernel package has no lib/modules/$KV"
    ird=$b/root
    mkdir -p "$ird"/{bin,proc,sys,dev,tmp,run,host,ctl,etc,lib/modules/"$KV"}
    ln -s bin "$ird/sbin"
    cp /bin/busybox "$ird/bin/busybox"
    for a in $(/bin/busybox --list); do [[ -e $ird/bin/$a ]] || ln -s busybox "$ird/bin/$a"; done
    printf '%s\n' "$INIT" > "$ird/init"; chmod 755 "$ird/init"

    declare -A path=() seen=()
    while IFS= read -r f; do n=${f##*/}; n=${n%%.ko*}; path[${n//-/_}]=$f; done \
        < <(find "$src/kernel" -name '*.ko*')
    order=()
    addmod() {
        local m=${1//-/_} d
        [[ -n ${seen[$m]:-} ]] && return 0
        seen[$m]=1
        [[ -n ${path[$m]:-} ]] || { say "module $m: not in the kernel package (built in?)"; return 0; }
        for d in $(modinfo -F depends "${path[$m]}" | tr ',' ' '); do addmod "$d"; done
        order+=("$m")
    }
    for m in $BOOT_MODULES; do addmod "$m"; done
    nboot=${#order[@]}
    for m in $MORE_MODULES; do addmod "$m"; done
    : > "$ird/etc/modules.boot"
    for i in "${!order[@]}"; do
        m=${order[$i]}
        f=${path[$m]}; rel=${f#"$src"/}; rel=${rel%%.ko*}.ko
        mkdir -p "$ird/lib/modules/$KV/${rel%/*}"
        case $f in   # decompress on the host: cheaper than in a TCG guest
            *.ko.xz) xz -dc "$f" ;; *.ko.zst) zstd -qdc "$f" ;; *.ko.gz) gzip -dc "$f" ;; *) cat "$f" ;;
        esac > "$ird/lib/modules/$KV/$rel"
        ((i >= nboot)) || echo "$rel" >> "$ird/etc/modules.boot"
    done
    cp "$src"/modules.{order,builtin,builtin.modinfo} "$ird/lib/modules/$KV/" 2>/dev/null || true
    depmod -b "$ird" "$KV" || die "depmod for the initramfs failed"
    (cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet | gzip -1) \
        > "$INITRD.tmp" || die "cannot write $INITRD"
    mv "$INITRD.tmp" "$INITRD"
    rm -rf "$b"; trap - EXIT
    say "built the initramfs ($nboot of ${#order[@]} modules loaded at boot, $(du -k "$INITRD" | cut -f1) KiB) in $(since "$t")s"
fi
touch "$INITRD"   # in use: images of other kernels, or unused for 7 days, go
find "$CACHE" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -path "$INITRD" \
    \( ! -name "initramfs-$KV-*" -o -mtime +7 \) -delete
rm -rf "$CACHE"/build.* "$CACHE"/download.*   # leftovers of killed runs (we hold the lock)
exec {lockfd}>&-

# --------------------------------------------------------------- this run
RUN=$(mktemp -d /tmp/meshguard-vm.XXXXXX)
tpid=
cleanup() {
    local q
    [[ -n $tpid ]] && kill "$tpid" 2>/dev/null
    if q=$(cat "$RUN/qemu.pid" 2>/dev/null) && [[ -n $q ]] && kill -0 "$q" 2>/dev/null; then
        kill "$q" 2>/dev/null
        for _ in {1..50}; do kill -0 "$q" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$q" 2>/dev/null
    fi
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Host paths the guest would not see (its /tmp and /run are fresh tmpfs):
# the script's directory and the repository are shared read-only if needed.
shares=()   # "mode path"
for d in "${RW[@]}"; do shares+=("rw $d"); done
hidden() {
    local p=$1 s
    case $p/ in /tmp/*|/run/*|/var/run/*|/proc/*|/sys/*|/dev/*) ;; *) return 1 ;; esac
    for s in "${shares[@]}"; do [[ $p/ == "${s#* }"/* ]] && return 1; done
    return 0
}
hidden "$ROOT" && shares+=("ro $ROOT")
hidden "${SCRIPT%/*}" && shares+=("ro ${SCRIPT%/*}")

qargs=(-name meshguard-vm -accel tcg -cpu max -smp "$SMP" -m "$MEM"
       -nographic -no-reboot -net none -pidfile "$RUN/qemu.pid"
       -kernel "$VMLINUZ" -initrd "$INITRD"
       -append "console=ttyS0 quiet loglevel=3 panic=-1 cryptomgr.notests"
       -device virtio-rng-pci
       -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
       -virtfs "local,path=${RUN//,/,,},mount_tag=mgvmctl,security_model=none")
: > "$RUN/shares"
i=0
while IFS= read -r s; do
    [[ -n $s ]] || continue
    mode=${s%% *}; p=${s#* }
    [[ $p != *$'\n'* ]] || die "share path with a newline: $p"
    ro=; [[ $mode == ro ]] && ro=,readonly=on
    qargs+=(-virtfs "local,path=${p//,/,,},mount_tag=mgvm$i,security_model=none,multidevs=remap$ro")
    echo "mgvm$i $mode $p" >> "$RUN/shares"
    i=$((i + 1))
done < <(printf '%s\n' "${shares[@]}" | LC_ALL=C sort -k2)   # parents before children

printf '%s\0' "$SCRIPT" "$@" > "$RUN/argv"
printf '%s' "$ROOT" > "$RUN/cwd"
{
    printf '%s\0' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/tmp LANG=C.UTF-8 TERM=dumb
    env -0 | grep -z '^MESHGUARD_' | grep -zv '^MESHGUARD_IN_VM=' || true
    printf '%s\0' MESHGUARD_IN_VM=1
} > "$RUN/env"
cat > "$RUN/runner" <<'EOF'
# Runs in the guest's chroot (the host's bash): the guest script with its
# argv, cwd and environment as written by vm.sh.
ctl=/run/meshguard-vm
mapfile -d '' -t argv < "$ctl/argv"
mapfile -d '' -t envv < "$ctl/env"
if [[ -d /run/meshguard-vm-modules ]]; then
    mkdir -p /run/meshguard-vm-bin
    printf '#!/bin/sh\nexec /usr/sbin/modprobe -d /run/meshguard-vm-modules "$@"\n' > /run/meshguard-vm-bin/modprobe
    chmod 755 /run/meshguard-vm-bin/modprobe
    envv=("${envv[@]/#PATH=/PATH=/run/meshguard-vm-bin:}")
fi
cd -- "$(<"$ctl/cwd")" || exit 125
[[ -x ${argv[0]} ]] || argv=(/bin/bash "${argv[@]}")
exec /usr/bin/env -i "${envv[@]}" "${argv[@]}"
EOF

# Console filter: live to stdout without \r, terminal escapes and firmware or
# power-off noise; the MGVM- lines of the init become the boot-time line or
# are remembered for the verdict (they may follow text without a newline).
console() {
    local line raw marker ti tm tr t0=$1
    while IFS= read -r raw || [[ -n $raw ]]; do
        line=${raw//$'\r'/}
        line=${line//$'\e'[\[]*([0-9;?])[A-Za-z]/}
        line=${line//$'\e'[c()]?(B)/}
        marker=
        if [[ $line == *MGVM-* ]]; then marker=MGVM-${line#*MGVM-}; line=${line%%MGVM-*}; fi
        case $line in
            "SeaBIOS (version "*|"Booting from ROM"*|\[*\]" reboot: Power down") ;;
            "") [[ -n $raw ]] || echo ;;
            *) printf '%s\n' "$line" ;;
        esac
        case $marker in
            MGVM-READY\ *)
                read -r _ ti tm tr <<<"$marker"
                echo "vm: booted in $(since "$t0")s (kernel $KV; guest uptime: init ${ti}s, modules loaded ${tm}s, ready ${tr}s; TCG -smp $SMP -m $MEM); running ${SCRIPT#"$ROOT"/}"
                touch "$RUN/ready" ;;
            MGVM-FAIL\ *) echo "${marker#MGVM-FAIL }" > "$RUN/fail"; echo "vm: FAIL: ${marker#MGVM-FAIL }" ;;
        esac
    done
}

mkfifo "$RUN/console"
t0=$(now)
console "$t0" < "$RUN/console" &
cpid=$!
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${qargs[@]}" </dev/null >"$RUN/console" 2>&1 &
tpid=$!
set +e
wait "$tpid"; qrc=$?
tpid=
wait "$cpid"
set -e
wall=$(since "$t0")

if [[ -f $RUN/rc ]]; then
    rc=$(<"$RUN/rc")
    [[ $rc =~ ^[0-9]+$ ]] || die "the VM reported a bad status '$rc'"
    [[ $rc -eq 0 ]] || say "guest script exited $rc (VM wall time ${wall}s)"
    exit "$rc"
fi
if [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
    echo "FAIL: VM timed out after ${TIMEOUT}s running ${SCRIPT#"$ROOT"/} (qemu killed)" >&2
    exit 124
fi
if [[ -f $RUN/fail ]]; then die "VM setup failed: $(<"$RUN/fail")"; fi
if [[ ! -f $RUN/ready ]]; then die "VM did not boot (qemu exit status $qrc after ${wall}s; console output above)"; fi
die "VM exited without the guest script's status (qemu exit status $qrc after ${wall}s)"
