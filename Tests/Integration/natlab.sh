# The NAT lab's topology (sourced by nat-lab.sh on the host and by
# Tests/VM/guest-nat-kernel.sh in the VM): an "internet" bridge, a public
# node, and homes behind nftables NAT routers that all use 192.168.1.2.
#
#   ns $PUB:  bridge br0 = 198.51.100.0/24, with the addresses given
#   ns ${NS[S]}: $S_IP (no NAT)
#   ns ${NS[h]}: 192.168.1.2/24 ── lan 192.168.1.1 │ ${ROUTER[h]} │ wan ${WAN[h]} ── br0
#
# ${NAT[h]} is eim (`masquerade`: Linux keeps the source port when it is free,
# so the mapping is endpoint-independent), edm (`masquerade fully-random`: a
# new port per destination) or edm-pmp (edm, and the caller runs a NAT-PMP/PCP
# server on the router: natlab_pmp_rules, natlab_miniupnpd_conf). Every router
# drops unsolicited inbound traffic (`ct state new,invalid` from wan), as real
# CPE does: without it, a punch that arrives before the home has sent anything
# is answered by ICMP and confirms a conntrack entry that makes the NAT remap
# the home's own flow, so punching fails. Chain names must not be `fwd` (an nft keyword), and nft
# spells `fully-random` (iptables: `random-fully`).
#
# The caller defines netns NAME (create it, lo up) and the variables above.

# uplink NS IFNAME PORT ADDR: a veth from NS (named IFNAME there) to the bridge
# (named PORT in pub). Both ends are created inside their namespaces, so the
# names never clash with a concurrent run in the root namespace.
uplink() {
    ip link add "$2" netns "$1" type veth peer name "$3" netns "$PUB"
    ip -n "$PUB" link set "$3" master br0 up
    ip -n "$1" addr add "$4/24" dev "$2"
    ip -n "$1" link set "$2" up
}

# natlab_build "PUB-ADDRESS...": builds it all; non-zero if a router's ruleset is refused.
natlab_build() {
    local a h r n masq
    netns "$PUB"
    ip -n "$PUB" link add br0 type bridge
    ip -n "$PUB" link set br0 up
    for a in $1; do ip -n "$PUB" addr add "$a/24" dev br0; done
    netns "${NS[S]}"
    uplink "${NS[S]}" eth0 pS "$S_IP"
    for h in "${HOMES[@]}"; do
        r=${ROUTER[$h]} n=${NS[$h]}
        netns "$r"; netns "$n"
        uplink "$r" wan "p$h" "${WAN[$h]}"
        ip link add lan netns "$r" type veth peer name eth0 netns "$n"
        ip -n "$r" addr add 192.168.1.1/24 dev lan; ip -n "$r" link set lan up
        ip -n "$n" addr add 192.168.1.2/24 dev eth0; ip -n "$n" link set eth0 up
        ip -n "$n" route add default via 192.168.1.1
        ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
        if [[ ${NAT[$h]} == edm-pmp ]]; then natlab_pmp_rules "$r" || return 1; continue; fi
        masq=masquerade; [[ ${NAT[$h]} == edm ]] && masq="masquerade fully-random"
        ip netns exec "$r" nft -f - <<NFT || { echo "  FAIL: the nft ruleset of $r was refused"; return 1; }
table ip natlab {
  chain natpost { type nat hook postrouting priority srcnat; policy accept; oifname "wan" $masq; }
  chain natinput { type filter hook input priority filter; policy accept; iifname "wan" ct state new,invalid drop; }
  chain natforward { type filter hook forward priority filter; policy accept; iifname "wan" ct state new,invalid drop; }
}
NFT
    done
}

# natlab_pmp_rules ROUTER: the ruleset of an edm-pmp router. One inet table
# (miniupnpd-nftables 2.3.1 adds its rules with family inet, to the table and
# chains named in its config; it creates none itself, and Debian's nft_init.sh
# is broken: it sources the iptables helpers of the miniupnpd package). Three
# differences from an edm router, all needed by miniupnpd:
# - prerouting/postrouting jump to miniupnpd's chains (its DNAT per mapping);
# - forward accepts what was DNATed (`ct status dnat`, as real CPE does) before
#   the drop of unsolicited inbound;
# - the router's own traffic is not NATed (`ip saddr 192.168.1.0/24`) and input
#   jumps to miniupnpd's filter chain before the drop. 198.51.100.0/24 is a
#   reserved range (TEST-NET-2): miniupnpd refuses it as its external address
#   and learns it with its STUN test instead (ext_perform_stun), which needs
#   its four probe ports to keep their numbers and to hear the STUN server's
#   other address and port. miniupnpd opens those ports in its filter chain
#   ("stun test" rules) during the test only; its per-mapping filter rules
#   land there too but never match in input (they match the LAN address).
natlab_pmp_rules() {
    ip netns exec "$1" nft -f - <<NFT || { echo "  FAIL: the nft ruleset of $1 was refused"; return 1; }
table inet natlab {
  chain natpre { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }
  chain natpost { type nat hook postrouting priority srcnat; policy accept; jump postrouting_miniupnpd; oifname "wan" ip saddr 192.168.1.0/24 masquerade fully-random; }
  chain natinput { type filter hook input priority filter; policy accept; iifname "wan" jump miniupnpd; iifname "wan" ct state new,invalid drop; }
  chain natforward { type filter hook forward priority filter; policy accept; iifname "wan" ct status dnat accept; iifname "wan" ct state new,invalid drop; }
  chain miniupnpd { }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
NFT
}

# natlab_miniupnpd_conf STUN-HOST STUN-PORT LEASE-FILE: the config of miniupnpd
# on an edm-pmp router, run there in the foreground by the caller:
#   ip netns exec ROUTER miniupnpd -d -f CONF -P PIDFILE
# NAT-PMP and PCP (enable_natpmp enables both in 2.3.1; there is no
# enable_pcp_pmp yet), no UPnP; the LAN may map its own ports 1024-65535.
natlab_miniupnpd_conf() {
    cat <<CONF
ext_ifname=wan
ext_perform_stun=yes
ext_stun_host=$1
ext_stun_port=$2
listening_ip=lan
ipv6_disable=yes
enable_natpmp=yes
enable_upnp=no
secure_mode=yes
system_uptime=no
lease_file=$3
upnp_table_name=natlab
upnp_nat_table_name=natlab
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 192.168.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
}

# endpoint X Y: Y's WireGuard endpoint in X's data plane (NS, IFACE, KEY by node).
endpoint() {
    { ip netns exec "${NS[$1]}" wg show "${IFACE[$1]}" endpoints 2>/dev/null || true; } | awk -v k="${KEY[$2]}" '$1 == k {print $2}'
}

# path_of X Y: how X reaches Y, from its data plane: direct (a router's or S's
# own address), relayed via S (a relay port of S), or what it found.
path_of() {
    local ep; ep=$(endpoint "$1" "$2")
    case $ep in
        "" | "(none)") echo "no endpoint" ;;
        "$S_IP":*) [[ $2 == S ]] && echo "direct" || echo "relayed via S" ;;
        198.51.100.1[1-9]:*) echo "direct" ;;
        *) echo "endpoint $ep" ;;
    esac
}

# want_path X Y PATTERN: Y's endpoint at X matches the glob PATTERN (any port: 198.51.100.3:*).
want_path() {
    local ep; ep=$(endpoint "$1" "$2")
    # shellcheck disable=SC2053 # PATTERN is a glob on purpose
    [[ $ep == $3 ]]
}
