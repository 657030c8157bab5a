#!/usr/bin/env bash
# The Debian package, end to end: build it, lint it, install it into a clean
# Debian 12 root with apt (Depends resolved from the archive), check what it
# put where, then boot that root with its own systemd 252 and run the
# packaged unit there (its sandbox, Type=notify, watchdog, reload, stop),
# reinstall, and purge.
#
#   scripts/build-deb ──► dist/meshguard-agent_<v>_<arch>.deb ──► lintian (no errors)
#   /var/cache/meshguard-deb/bookworm-minbase-systemd-v1.tar.gz   (debootstrap, made once)
#     └─► $tmp/root ── apt-get install ./deb ── files, modes, postinst's identity
#           └─► systemd-nspawn -b: PID 1 is the root's systemd, network namespace mgdeb-$RUN
#                 lo + eth0 192.0.2.1/24 (veth) ── meshguard-agent.service (userspace: mg0 on /dev/net/tun)
#
# Without systemd-nspawn (or where a container cannot boot) the agent runs
# instead in a namespace laid out like the unit's sandbox by hand (read-only
# root, private /dev with only the TUN device, only CAP_NET_ADMIN, no new
# privileges); MG_DEB_SANDBOX=manual forces that path. DEB=path reuses a
# package instead of building one.
source "$(dirname "$0")/lib.sh"
need dpkg-deb lintian debootstrap ip unshare nsenter setpriv systemd-analyze man

CACHE_DIR=/var/cache/meshguard-deb
CACHE=$CACHE_DIR/bookworm-minbase-systemd-v1.tar.gz
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NS=mgdeb-$RUN
tmp=$(mktemp -d /tmp/mg-deb.XXXXXX)
R=$tmp/root
t_start=$(date +%s)
trap 'cleanup; grep -q " $tmp/" /proc/self/mountinfo || rm -rf "$tmp"' EXIT

# in_root CMD...: CMD in the root (chroot, with /dev and /proc), a clean environment.
in_root() {
    unshare -m --propagation private sh -c 'r=$1; shift
        mount --rbind /dev "$r/dev" && mount -t proc proc "$r/proc" || exit 97
        exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"' \
        sh "$R" "$@"
}
mode_of() { stat -c '%a %U:%G' "$R$1" 2>/dev/null; }
# refute WHAT CMD...: ok when CMD fails.
refute() { local what=$1; shift; if "$@" >/dev/null 2>&1; then bad "$what"; else ok "$what"; fi; }

# --- the package ---------------------------------------------------------
if [[ -n ${DEB:-} ]]; then
    deb=$DEB
else
    t0=$(date +%s)
    "$ROOT/scripts/build-deb" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; echo "FAIL: scripts/build-deb"; exit 1; }
    deb=$ROOT/$(sed -n 's/^build-deb: \(dist\/[^ ]*\.deb\).*/\1/p' "$tmp/build.log")
    echo "  (scripts/build-deb: $(($(date +%s) - t0)) s)"
fi
version=$(dpkg-deb -f "$deb" Version); arch=$(dpkg-deb -f "$deb" Architecture)
check "scripts/build-deb left dist/meshguard-agent_${version}_${arch}.deb" test "$(basename "$deb")" = "meshguard-agent_${version}_${arch}.deb"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libnl-3-200 libnl-genl-3-200 libnl-route-3-200 libsodium23 adduser; do
    check "Depends names $lib" grep -q "\(^\|, \)$lib\( \|,\|$\)" <<<"$depends"
done
lrc=0; lintian --pedantic --info "$deb" >"$tmp/lintian.log" 2>&1 || lrc=$?
check "lintian: no errors (exit $lrc)" test "$lrc" -eq 0 -a "$(grep -c '^E:' "$tmp/lintian.log")" -eq 0
grep -E '^(E|W):' "$tmp/lintian.log" | sed 's/^/    lintian: /' || true
check "the conffile is only comments: every key is commented out" \
    bash -c "dpkg-deb --fsys-tarfile '$deb' | tar -xO ./etc/meshguard/meshguard-agent.toml | grep -v '^[[:space:]]*\(#\|\$\)' | (! grep -q .)"

# --- a clean Debian 12 root ----------------------------------------------
if [[ ! -s $CACHE ]]; then
    echo "  (preparing $CACHE: debootstrap bookworm minbase + systemd from $MIRROR)"
    t0=$(date +%s)
    if ! debootstrap --variant=minbase --include=systemd bookworm "$tmp/prep" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
        tail -5 "$tmp/debootstrap.log"
        echo "FAIL: debootstrap could not build a Debian 12 root from $MIRROR (set DEBIAN_MIRROR to a reachable mirror)"
        exit 1
    fi
    cp /etc/resolv.conf "$tmp/prep/etc/resolv.conf"
    # Apt's lists and the package's dependencies, downloaded but not
    # installed: later runs resolve Depends from the archive without a network.
    deps=$(sed 's/([^)]*)//g; s/|/,/g; s/,/ /g' <<<"$depends")
    R=$tmp/prep in_root sh -c "apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends $deps" >/dev/null
    mkdir -p "$CACHE_DIR"
    tar -C "$tmp/prep" -czf "$CACHE.tmp" . && mv "$CACHE.tmp" "$CACHE"
    rm -rf "$tmp/prep"
    echo "  (root prepared and cached in $(($(date +%s) - t0)) s)"
fi
mkdir "$R" && tar -C "$R" -xzf "$CACHE"
check "the root is a clean Debian 12 without the package's libraries" \
    bash -c "grep -q '^12' '$R/etc/debian_version' && ! compgen -G '$R/usr/lib/*/libsodium.so.23' && ! test -e '$R/etc/meshguard'"

# --- install ---------------------------------------------------------------
cp "$deb" "$R/tmp/"
in_root apt-get install -y --no-install-recommends "/tmp/$(basename "$deb")" >"$tmp/install.log" 2>&1
check "apt-get install ./$(basename "$deb") resolves Depends and configures the package" \
    grep -q "^Setting up meshguard-agent ($version)" "$tmp/install.log"
check "dependencies came from the archive (libsodium23, libnl-route-3-200, adduser)" \
    in_root dpkg-query -W libsodium23 libnl-route-3-200 adduser
check "binary /usr/bin/meshguard-agent 755 root:root" test "$(mode_of /usr/bin/meshguard-agent)" = "755 root:root"
check "unit /lib/systemd/system/meshguard-agent.service 644" test "$(mode_of /lib/systemd/system/meshguard-agent.service)" = "644 root:root"
check "conffile /etc/meshguard/meshguard-agent.toml 644, registered as a conffile" \
    bash -c "test '$(mode_of /etc/meshguard/meshguard-agent.toml)' = '644 root:root' && grep -q '/etc/meshguard/meshguard-agent.toml' '$R/var/lib/dpkg/info/meshguard-agent.conffiles'"
check "man page meshguard-agent(8), rendered without warnings" \
    bash -c "test '$(mode_of /usr/share/man/man8/meshguard-agent.8.gz)' = '644 root:root' && test -z \"\$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l -Tutf8 '$R/usr/share/man/man8/meshguard-agent.8.gz' 2>&1 >/dev/null)\""
check "bash completion installed and loads (complete -F for meshguard-agent)" \
    bash -c "source '$R/usr/share/bash-completion/completions/meshguard-agent' && complete -p meshguard-agent"
check "zsh completion installed (#compdef meshguard-agent)" grep -q '^#compdef meshguard-agent' "$R/usr/share/zsh/vendor-completions/_meshguard-agent"
check "postinst created the identity: identity.key 600 root:root" test "$(mode_of /etc/meshguard/identity.key)" = "600 root:root"
check "postinst created the meshguard system group" in_root getent group meshguard
check "postinst enabled the unit (multi-user.target.wants)" test -L "$R/etc/systemd/system/multi-user.target.wants/meshguard-agent.service"
check "meshguard-agent --version in the root says $version" test "$(in_root meshguard-agent --version)" = "$version"
MANPATH=$R/usr/share/man systemd-analyze verify --root="$R" /lib/systemd/system/meshguard-agent.service >"$tmp/verify.log" 2>&1
check "systemd-analyze verify of the installed unit: clean" test ! -s "$tmp/verify.log"
sed 's/^/    verify: /' "$tmp/verify.log"
score=$(in_root systemd-analyze security --offline=true /lib/systemd/system/meshguard-agent.service 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
check "systemd-analyze security --offline: exposure $score (at most 2.5)" awk -v s="$score" 'BEGIN {exit !(s != "" && s <= 2.5)}'

key_sum=$(sha256sum <"$R/etc/meshguard/identity.key")
echo "# a local change" >>"$R/etc/meshguard/meshguard-agent.toml"
in_root apt-get install -y --reinstall --no-install-recommends "/tmp/$(basename "$deb")" >"$tmp/reinstall.log" 2>&1
check "reinstall: configured again" grep -q "^Setting up meshguard-agent ($version)" "$tmp/reinstall.log"
check "reinstall: the identity is not replaced" test "$(sha256sum <"$R/etc/meshguard/identity.key")" = "$key_sum"
check "reinstall: the local change to the conffile is kept" grep -q '^# a local change' "$R/etc/meshguard/meshguard-agent.toml"
sed -i '/^# a local change$/d' "$R/etc/meshguard/meshguard-agent.toml"

# --- run the packaged unit -------------------------------------------------
ip netns add "$NS"; NETNS+=("$NS")
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth1
ip -n "$NS" addr add 192.0.2.1/24 dev eth0
ip -n "$NS" link set eth0 up; ip -n "$NS" link set eth1 up

# The checks below are for the userspace engine; where the kernel has
# WireGuard, auto mode would pick it, so the configuration file asks.
if ip -n "$NS" link add wgprobe type wireguard 2>/dev/null; then
    ip -n "$NS" link del wgprobe
    echo 'mode = "userspace"' >>"$R/etc/meshguard/meshguard-agent.toml"
    echo "  (this kernel has WireGuard: meshguard-agent.toml sets mode = \"userspace\")"
fi
mkdir -p "$R/home/someone" && echo private >"$R/home/someone/secret"   # ProtectHome= must hide it
booted=
if [[ ${MG_DEB_SANDBOX:-systemd} == systemd ]] && command -v systemd-nspawn >/dev/null; then
    # CAP_NET_ADMIN: nspawn keeps it only with a network of its own making.
    systemd-nspawn -q -D "$R" --keep-unit --register=no --network-namespace-path="/run/netns/$NS" \
        --capability=CAP_NET_ADMIN --console=read-only -b >"$tmp/boot.log" 2>&1 &
    NSPAWN=$!; PIDS+=("$NSPAWN")
    LEADER=
    for _ in $(seq 100); do
        for p in $(pgrep -P "$NSPAWN"); do [[ $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]] && LEADER=$p; done
        [[ -n $LEADER ]] && break; sleep 0.1
    done
    in_ct() { nsenter -t "$LEADER" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
    if [[ -n $LEADER ]]; then
        for _ in $(seq 300); do
            state=$(in_ct systemctl is-active meshguard-agent 2>/dev/null) || true
            [[ $state == active || $state == failed ]] && break; sleep 0.1
        done
        [[ -n ${state:-} ]] && booted=yes
    fi
    if [[ -z $booted ]]; then
        echo "  (no container could boot here; falling back to a hand-made sandbox)"
        tail -5 "$tmp/boot.log"
        kill "$NSPAWN" 2>/dev/null || true; wait "$NSPAWN" 2>/dev/null || true
    fi
fi

if [[ -n $booted ]]; then
    echo "  (the root booted with its own systemd: $(in_ct systemctl --version | head -1))"
    show() { in_ct systemctl show -p "$1" --value meshguard-agent; }
    check "systemd: the unit is enabled at boot, active (running) once READY=1" \
        test "$(show ActiveState)/$(show SubState)/$(show NRestarts)" = "active/running/0"
    check "systemd: status line from the agent ($(show StatusText))" test -n "$(show StatusText)"
    [[ $(show ActiveState) == active ]] || in_ct journalctl -u meshguard-agent --no-pager -o cat | tail -5 | sed 's/^/    journal: /'
    pid=$(show MainPID)
    st=$(in_ct cat "/proc/$pid/status" 2>/dev/null) || true
    check "sandbox: the only capability is CAP_NET_ADMIN (bounding and effective)" \
        bash -c "grep -q '^CapBnd:[[:space:]]*0000000000001000$' <<<'$st' && grep -q '^CapEff:[[:space:]]*0000000000001000$' <<<'$st'"
    check "sandbox: no new privileges, seccomp filter on" bash -c "grep -q '^NoNewPrivs:[[:space:]]*1' <<<'$st' && grep -q '^Seccomp:[[:space:]]*2' <<<'$st'"
    in_svc() { in_ct nsenter -t "$pid" -m "$@"; }
    rofs=$(in_svc touch /etc/meshguard/probe 2>&1; in_svc touch /usr/probe 2>&1) || true
    check "sandbox: /usr and /etc/meshguard are read-only" test "$(grep -c 'Read-only file system' <<<"$rofs" || true)" -eq 2
    check "sandbox: /run/meshguard is writable" in_svc touch /run/meshguard/probe
    check "sandbox: a private /dev with /dev/net/tun" in_svc test -c /dev/net/tun
    devs=$(in_svc ls /dev)
    refute "sandbox: ... and no disks or memory devices ($(wc -w <<<"$devs") entries)" grep -qE '^(vd|sd|nvme|mem$|kmsg$)' <<<"$devs"
    check "sandbox: /home is hidden (a file the container sees there is not visible)" \
        test "$(in_ct test -e /home/someone/secret && echo seen)/$(in_svc test -e /home/someone/secret 2>/dev/null && echo seen)" = "seen/"
    check "userspace mode: mg0 is up in the container's network namespace" ip -n "$NS" link show mg0 up
    check "userspace mode: the UAPI socket for wg(8) is in /run/wireguard" in_ct test -S /run/wireguard/mg0.sock
    status=$(in_ct meshguard-agent status 2>&1) || true
    check "meshguard-agent status answers: userspace mode" grep -q '^mode: *userspace' <<<"$status"
    check "control socket: /run/meshguard 750 root:meshguard, socket 660 root:meshguard" \
        test "$(in_ct stat -c '%a %U:%G' /run/meshguard /run/meshguard/control.sock | tr '\n' ' ')" = "750 root:meshguard 660 root:meshguard "
    gid=$(in_ct getent group meshguard | cut -d: -f3)
    check "a member of the meshguard group may ask for status" \
        in_ct setpriv --reuid 65534 --regid 65534 --groups "$gid" meshguard-agent status
    denied=$(in_ct setpriv --reuid 65534 --regid 65534 --clear-groups meshguard-agent status 2>&1) || true
    check "anyone else may not (a permission error)" grep -qi 'permission' <<<"$denied"
    wd0=$(show WatchdogTimestampMonotonic)
    for _ in $(seq 200); do [[ $(show WatchdogTimestampMonotonic) != "$wd0" ]] && break; sleep 0.1; done
    check "watchdog (WatchdogSec=$(show WatchdogUSec)) is fed" test "$(show WatchdogTimestampMonotonic)" != "$wd0"
    reloaded=$(in_ct systemctl reload meshguard-agent && echo yes) || true
    check "systemctl reload (SIGHUP): same process, still active" test "$reloaded/$(show MainPID)/$(show ActiveState)" = "yes/$pid/active"
    t0=$(date +%s%N)
    in_ct systemctl stop meshguard-agent || true
    check "systemctl stop: clean exit in $((($(date +%s%N) - t0) / 1000000)) ms (status 0, not failed)" \
        test "$(show ActiveState)/$(show ExecMainStatus)" = "inactive/0"
    refute "systemctl stop: mg0 is removed" ip -n "$NS" link show mg0
    refute "systemctl stop: /run/meshguard is removed" in_ct test -e /run/meshguard
    in_ct journalctl _SYSTEMD_UNIT=meshguard-agent.service _COMM=meshguard-agent --no-pager -o cat >"$tmp/journal.log" 2>&1 || true
    nlog=$(grep -c . "$tmp/journal.log") || true
    nerr=$(grep -ci 'error' "$tmp/journal.log") || true
    check "journal: the agent's own log ($nlog lines) has no errors and ends with its clean stop" \
        test "$nerr" -eq 0 -a "$(tail -1 "$tmp/journal.log")" = "stopped; interface mg0 removed"
    [[ $nerr -eq 0 ]] || tail -8 "$tmp/journal.log" | sed 's/^/    journal: /'
    in_ct systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 200); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    refute "the container powers off" kill -0 "$NSPAWN"
else
    # The unit's sandbox by hand: the root read-only, /run and /tmp private
    # tmpfs with /run/meshguard 0750, a private /dev with null, zero,
    # random, urandom and net/tun, /home and /root hidden, /proc
    # hidepid=invisible,subset=pid in a PID namespace; then setpriv: only
    # CAP_NET_ADMIN in the bounding set, none inheritable, no new privileges,
    # and the meshguard group, as SupplementaryGroups= gives.
    echo "  (no systemd here: the unit's sandbox by hand, setpriv with CAP_NET_ADMIN only)"
    gid=$(in_root getent group meshguard | cut -d: -f3)
    ip netns exec "$NS" unshare -m -p -f --propagation private sh -ec 'r=$1; gid=$2
        mount --bind "$r" "$r"
        mount -t proc -o hidepid=invisible,subset=pid proc "$r/proc"
        mount -t tmpfs -o mode=0755 tmpfs "$r/run"; mkdir -m 0750 "$r/run/meshguard"; mkdir -m 0755 "$r/run/wireguard"
        mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
        mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
        for d in null zero random urandom; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
        mkdir "$r/dev/net"; touch "$r/dev/net/tun"; mount --bind /dev/net/tun "$r/dev/net/tun"
        mount -o remount,ro,bind "$r/dev"
        mount -t tmpfs -o ro,mode=0755 tmpfs "$r/home"; mount -t tmpfs -o ro,mode=0700 tmpfs "$r/root"
        mount -o remount,ro,bind "$r"
        exec chroot "$r" /usr/bin/setpriv --groups "$gid" --inh-caps=-all --bounding-set=-all,+net_admin --no-new-privs \
            /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/meshguard-agent up --config-dir /etc/meshguard --runtime-dir /run/meshguard' \
        sh "$R" "$gid" 2>"$tmp/agent.log" &
    SANDBOX=$!; PIDS+=("$SANDBOX")
    apid=
    for _ in $(seq 100); do apid=$(pgrep -P "$SANDBOX" -x meshguard-agent) && break; sleep 0.05; done
    for _ in $(seq 100); do ip -n "$NS" link show mg0 up >/dev/null 2>&1 && break; sleep 0.05; done
    check "sandbox: the only capability is CAP_NET_ADMIN" grep -q '^CapBnd:[[:space:]]*0000000000001000$' "/proc/$apid/status"
    check "sandbox: no new privileges" grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$apid/status"
    check "userspace mode: mg0 is up in the network namespace" ip -n "$NS" link show mg0 up
    # -p as well: the Swift runtime reads its arguments from /proc/self/cmdline,
    # which resolves only inside the PID namespace that /proc belongs to.
    status=
    for _ in $(seq 50); do status=$(nsenter -t "$apid" -m -p -r /usr/bin/meshguard-agent status 2>&1) && break; sleep 0.1; done
    check "meshguard-agent status answers: userspace mode" grep -q '^mode: *userspace' <<<"$status"
    grep -q '^mode' <<<"$status" || echo "    status: $status"
    [[ -n $apid ]] && kill -TERM "$apid"
    rc=0; wait "$SANDBOX" || rc=$?
    check "SIGTERM: clean exit (status 0)" test "$rc" -eq 0
    refute "SIGTERM: mg0 is removed" ip -n "$NS" link show mg0
    sed 's/^/    agent: /' "$tmp/agent.log" | grep -i error || true
fi

# --- purge -----------------------------------------------------------------
in_root apt-get purge -y meshguard-agent >"$tmp/purge.log" 2>&1
check "apt-get purge succeeds" grep -q "Purging configuration files for meshguard-agent" "$tmp/purge.log"
check "purge: nothing is left under /etc/meshguard (identity, trust, config)" test ! -e "$R/etc/meshguard"
check "purge: no identity.key anywhere in the root" test -z "$(find "$R" -xdev -name identity.key 2>/dev/null)"
refute "purge: the meshguard group is gone" grep -q '^meshguard:' "$R/etc/group" "$R/etc/gshadow"
check "purge: the unit's enablement symlink is gone" test ! -e "$R/etc/systemd/system/multi-user.target.wants/meshguard-agent.service"
left=$(in_root dpkg-query -W -f='${Status}' meshguard-agent 2>/dev/null) || true
check "purge: none of the package's files remain, dpkg forgets it" \
    test ! -e "$R/usr/bin/meshguard-agent" -a ! -e "$R/lib/systemd/system/meshguard-agent.service" -a ! -e "$R/usr/lib/tmpfiles.d/meshguard-agent.conf" -a "${left:-gone}" != "install ok installed"
echo "  (took $(($(date +%s) - t_start)) s)"
summary
