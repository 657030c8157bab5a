# The NAT lab's topology (sourced by nat-lab.sh on the host and by
# Tests/VM/guest-nat-kernel.sh in the VM): an "internet" bridge, a public
# node, and homes behind nftables NAT routers that all use 192.168.1.2.
#
#   ns $PUB:  bridge br0 = 198.51.100.0/24, with the addresses given
#   ns ${NS[S]}: $S_IP (no NAT)
#   ns ${NS[h]}: 192.168.1.2/24 ── lan 192.168.1.1 │ ${ROUTER[h]} │ wan ${WAN[h]} ── br0
#
# ${NAT[h]} is eim (`masquerade`: Linux keeps the source port when it is free,
# so the mapping is endpoint-independent) or edm (`masquerade fully-random`: a
# new port per destination). Every router drops unsolicited inbound traffic
# (`ct state new,invalid` from wan), as real CPE does: without it, a punch
# that arrives before the home has sent anything is answered by ICMP and
# confirms a conntrack entry that makes the NAT remap the home's own flow, so
# punching fails. Chain names must not be `fwd` (an nft keyword), and nft
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
