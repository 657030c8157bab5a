// RTNETLINK through libnl-route: the WireGuard link itself, its MTU and state,
// and its addresses. Every operation is idempotent: the agent reconciles
// what it finds (after a crash, the interface is still there) instead of
// assuming a clean slate.
#if canImport(Glibc)
import Glibc
#endif
import CNetlink
import CNetlinkRoute
import MeshBase

public final class RouteNetlink {
    let sock: OpaquePointer

    public init() throws(NetlinkError) {
        guard let s = nl_socket_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "nl_socket_alloc") }
        let rc = nl_connect(s, NETLINK_ROUTE)
        if rc < 0 {
            nl_socket_free(s)
            throw NetlinkError(code: rc, operation: "connect to RTNETLINK")
        }
        sock = s
    }

    deinit { nl_socket_free(sock) }

    public struct Link: Equatable, Sendable {
        public let index: Int32
        public let kind: String?
        public let mtu: UInt32
        public let isUp: Bool
    }

    /// The link named `name`, or nil when there is none.
    public func link(_ name: String) throws(NetlinkError) -> Link? {
        var l: OpaquePointer?
        let rc = rtnl_link_get_kernel(sock, 0, name, &l)
        if rc < 0 {
            let e = NetlinkError(code: rc, operation: "look up link \(name)")
            if e.isNotFound { return nil }
            throw e
        }
        guard let link = l else { return nil }
        defer { rtnl_link_put(link) }
        let kind = rtnl_link_get_type(link).map { String(cString: $0) }
        return Link(index: Int32(rtnl_link_get_ifindex(link)), kind: kind, mtu: rtnl_link_get_mtu(link),
                    isUp: rtnl_link_get_flags(link) & UInt32(IFF_UP) != 0)
    }

    /// Creates a link of kind `kind` (e.g. "wireguard").
    public func createLink(_ name: String, kind: String) throws(NetlinkError) {
        guard let l = rtnl_link_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "rtnl_link_alloc") }
        defer { rtnl_link_put(l) }
        rtnl_link_set_name(l, name)
        var rc = rtnl_link_set_type(l, kind)
        if rc >= 0 { rc = rtnl_link_add(sock, l, NLM_F_CREATE | NLM_F_EXCL) }
        if rc < 0 { throw NetlinkError(code: rc, operation: "create \(kind) link \(name)") }
    }

    public func deleteLink(_ name: String) throws(NetlinkError) {
        guard let l = rtnl_link_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "rtnl_link_alloc") }
        defer { rtnl_link_put(l) }
        rtnl_link_set_name(l, name)
        let rc = rtnl_link_delete(sock, l)
        if rc < 0 { throw NetlinkError(code: rc, operation: "delete link \(name)") }
    }

    /// Sets the MTU and brings the link up or down.
    public func configureLink(_ name: String, mtu: UInt32?, up: Bool?) throws(NetlinkError) {
        var orig: OpaquePointer?
        var rc = rtnl_link_get_kernel(sock, 0, name, &orig)
        guard rc >= 0, let o = orig else { throw NetlinkError(code: rc, operation: "look up link \(name)") }
        defer { rtnl_link_put(o) }
        guard let change = rtnl_link_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "rtnl_link_alloc") }
        defer { rtnl_link_put(change) }
        if let mtu { rtnl_link_set_mtu(change, mtu) }
        if let up {
            if up { rtnl_link_set_flags(change, UInt32(IFF_UP)) } else { rtnl_link_unset_flags(change, UInt32(IFF_UP)) }
        }
        rc = rtnl_link_change(sock, o, change, 0)
        if rc < 0 { throw NetlinkError(code: rc, operation: "configure link \(name)") }
    }

    /// An address on an interface: the address itself and its prefix length.
    public struct InterfaceAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
        public let address: IPAddress
        public let prefixLength: Int
        public init(_ address: IPAddress, prefixLength: Int) { self.address = address; self.prefixLength = prefixLength }
        public var description: String { "\(address)/\(prefixLength)" }
        public static func < (a: Self, b: Self) -> Bool { (a.address, a.prefixLength) < (b.address, b.prefixLength) }
    }

    /// The addresses on the link with this index.
    public func addresses(ifindex: Int32) throws(NetlinkError) -> [InterfaceAddress] {
        var cache: OpaquePointer?
        let rc = rtnl_addr_alloc_cache(sock, &cache)
        guard rc >= 0, let c = cache else { throw NetlinkError(code: rc, operation: "list addresses") }
        defer { nl_cache_free(c) }
        var out: [InterfaceAddress] = []
        var obj = nl_cache_get_first(c)
        while let a = obj {
            if rtnl_addr_get_ifindex(a) == ifindex, let local = rtnl_addr_get_local(a), let address = RouteNetlink.address(local) {
                out.append(InterfaceAddress(address, prefixLength: Int(rtnl_addr_get_prefixlen(a))))
            }
            obj = nl_cache_get_next(a)
        }
        return out.sorted()
    }

    static func address(_ addr: OpaquePointer) -> IPAddress? {
        let n = Int(nl_addr_get_len(addr))
        guard let raw = nl_addr_get_binary_addr(addr) else { return nil }
        let bytes = Array(UnsafeRawBufferPointer(start: raw, count: n))
        switch n {
        case 4: return .v4(IPv4Address(bytes[0], bytes[1], bytes[2], bytes[3]))
        case 16: return IPv6Address(bytes: bytes).map { .v6($0) }
        default: return nil
        }
    }

    /// Adds `address/length` (the address itself, not the masked prefix) to the link.
    public func addAddress(_ address: IPAddress, prefixLength: Int, ifindex: Int32) throws(NetlinkError) {
        try changeAddress(address, prefixLength: prefixLength, ifindex: ifindex, add: true)
    }

    public func removeAddress(_ address: IPAddress, prefixLength: Int, ifindex: Int32) throws(NetlinkError) {
        try changeAddress(address, prefixLength: prefixLength, ifindex: ifindex, add: false)
    }

    private func changeAddress(_ address: IPAddress, prefixLength: Int, ifindex: Int32, add: Bool) throws(NetlinkError) {
        let (family, bytes): (Int32, [UInt8])
        switch address {
        case .v4(let a): (family, bytes) = (AF_INET, a.octets)
        case .v6(let a): (family, bytes) = (AF_INET6, a.bytes)
        }
        guard let a = rtnl_addr_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "rtnl_addr_alloc") }
        defer { rtnl_addr_put(a) }
        guard let local = bytes.withUnsafeBytes({ nl_addr_build(family, $0.baseAddress, $0.count) }) else {
            throw NetlinkError(code: Int32(NLE_NOMEM), operation: "nl_addr_build")
        }
        defer { nl_addr_put(local) }
        nl_addr_set_prefixlen(local, Int32(prefixLength))
        rtnl_addr_set_ifindex(a, ifindex)
        var rc = rtnl_addr_set_local(a, local)
        // Mesh addresses are unique by derivation: skip IPv6 duplicate address detection.
        if family == AF_INET6 { rtnl_addr_set_flags(a, UInt32(IFA_F_NODAD)) }
        if rc >= 0 { rc = add ? rtnl_addr_add(sock, a, NLM_F_REPLACE) : rtnl_addr_delete(sock, a, 0) }
        if rc < 0 { throw NetlinkError(code: rc, operation: "\(add ? "add" : "remove") address \(address)/\(prefixLength)") }
    }

    /// Makes the link carry exactly `wanted` (addresses with prefix lengths): adds what is missing, removes the rest.
    public func reconcileAddresses(_ wanted: [InterfaceAddress], ifindex: Int32) throws(NetlinkError) {
        let have = try addresses(ifindex: ifindex)
        // Remove first: deleting a primary IPv4 address also deletes the
        // secondaries of its subnet (unless promote_secondaries is set).
        for h in have where !wanted.contains(h) {
            // Link-local IPv6 addresses belong to the kernel.
            if case .v6(let a) = h.address, a.high >> 48 == 0xfe80 { continue }
            try removeAddress(h.address, prefixLength: h.prefixLength, ifindex: ifindex)
        }
        for w in wanted where !have.contains(w) {
            try addAddress(w.address, prefixLength: w.prefixLength, ifindex: ifindex)
        }
    }
}
