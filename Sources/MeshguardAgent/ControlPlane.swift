// The control plane's UDP transport. In userspace mode it shares the
// engine's port (the engine hands over every datagram that is not WireGuard);
// in kernel mode the kernel owns the WireGuard socket, so the control plane
// has a socket of its own.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshIdentity
import MeshLinux
import MeshSystem
import MeshUserspace
import Synchronization

protocol ControlTransport: AnyObject {
    /// Becomes readable when datagrams are waiting.
    var fileDescriptor: Int32 { get }
    func receiveAll() -> [([UInt8], Endpoint)]
    func send(_ bytes: [UInt8], to: Endpoint)
    /// Datagrams dropped before the control plane saw them (a full queue).
    var queueDrops: UInt64 { get }
}

/// Kernel mode: a dual-stack UDP socket of its own.
final class SocketControlTransport: ControlTransport {
    let socket: UDPSocket
    private var buffer = [UInt8](repeating: 0, count: 65536)

    init(port: UInt16) throws {
        socket = try UDPSocket(family: .dualStack, nonBlocking: true)
        try socket.bind(port: port)
    }

    var fileDescriptor: Int32 { socket.fileDescriptor }

    func receiveAll() -> [([UInt8], Endpoint)] {
        var out: [([UInt8], Endpoint)] = []
        while out.count < 1024, let r = buffer.withUnsafeMutableBytes({ try? socket.receive(into: $0) }) ?? nil {
            out.append((Array(buffer[0..<r.length]), r.from))
        }
        return out
    }

    func send(_ bytes: [UInt8], to: Endpoint) { _ = try? socket.send(bytes, to: to) }
    /// What the kernel dropped because the socket's buffer was full (a flood faster than the daemon verifies).
    var queueDrops: UInt64 { socket.kernelDrops ?? 0 }
}

/// Userspace mode: the engine's shared port.
final class EngineControlTransport: ControlTransport, @unchecked Sendable {
    // The engine's UDP thread appends; the daemon thread drains. `inbox` is the only shared state.
    private let engine: UserspaceEngine
    final class Inbox: Sendable {
        let queue = Mutex<[([UInt8], Endpoint)]>([])
        /// Datagrams dropped because the queue was full (a flood faster than the daemon verifies).
        let overflow = Atomic<UInt64>(0)
    }
    private let inbox = Inbox()
    private let wake: WakeupSignal
    static let maxQueued = 4096

    init(engine: UserspaceEngine) throws {
        self.engine = engine
        let w = try WakeupSignal()
        wake = w
        engine.setControlHandler { [inbox] bytes, from in
            let added = inbox.queue.withLock { q -> Bool in
                guard q.count < EngineControlTransport.maxQueued else { return false }
                q.append((bytes, from))
                return true
            }
            if added { w.signal() } else { inbox.overflow.add(1, ordering: .relaxed) }
        }
    }

    var fileDescriptor: Int32 { wake.fileDescriptor }

    func receiveAll() -> [([UInt8], Endpoint)] {
        wake.drain()
        return inbox.queue.withLock { q in
            let all = q
            q.removeAll(keepingCapacity: true)
            return all
        }
    }

    func send(_ bytes: [UInt8], to: Endpoint) { engine.sendControl(bytes, to: to) }
    var queueDrops: UInt64 { inbox.overflow.load(ordering: .relaxed) }
}

/// This host's addresses, as the kernel would use them (no packet is sent).
enum HostAddresses {
    /// The address the kernel sends from toward `target` (a connected UDP
    /// socket's name; nothing is sent), so "no NAT" can be recognised.
    static func source(toward target: Endpoint) -> IPAddress? {
        let family = target.address.isIPv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let connected: Bool = withUnsafeMutableBytes(of: &storage) { raw in
            switch target.address {
            case .v4(let a):
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = target.port.bigEndian
                sin.sin_addr.s_addr = a.value.bigEndian
                raw.storeBytes(of: sin, as: sockaddr_in.self)
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
            case .v6(let a):
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                sin6.sin6_port = target.port.bigEndian
                withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: a.bytes) }
                raw.storeBytes(of: sin6, as: sockaddr_in6.self)
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
            return connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) == 0
        }
        guard connected else { return nil }
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutableBytes(of: &storage) { getsockname(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) == 0 }
        guard named else { return nil }
        return withUnsafeBytes(of: &storage) { address($0.baseAddress!) }
    }

    /// An AF_INET or AF_INET6 socket address's address (IPv4-mapped as IPv4).
    static func address(_ sa: UnsafeRawPointer) -> IPAddress? {
        switch Int32(sa.loadUnaligned(as: sockaddr.self).sa_family) {
        case AF_INET:
            return .v4(IPv4Address(UInt32(bigEndian: sa.loadUnaligned(as: sockaddr_in.self).sin_addr.s_addr)))
        case AF_INET6:
            let sin6 = sa.loadUnaligned(as: sockaddr_in6.self)
            return IPv6Address(bytes: withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }).map { IPAddress.v6($0).unmapped }
        default:
            return nil
        }
    }

    /// This host's addresses that are up, IPv4 first: not loopback, not IPv6
    /// link-local (no use without a scope), not in the mesh's own prefixes (a
    /// mesh address is no way to reach the mesh).
    static func local(ipv6: Bool) -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(first) }
        let mesh4 = IPPrefix(.v4(MeshAddresses.ipv4Prefix), length: MeshAddresses.ipv4PrefixLength)!
        let mesh6 = IPPrefix(.v6(MeshAddresses.ipv6Prefix), length: MeshAddresses.ipv6PrefixLength)!
        let linkLocal = IPPrefix("fe80::/10")!
        var out: [IPAddress] = []
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let i = p {
            p = i.pointee.ifa_next
            guard let sa = i.pointee.ifa_addr, i.pointee.ifa_flags & UInt32(IFF_UP) != 0,
                  i.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0, let a = address(UnsafeRawPointer(sa)) else { continue }
            if a.isLoopback || mesh4.contains(a) || mesh6.contains(a) || linkLocal.contains(a) || (!ipv6 && !a.isIPv4) { continue }
            if !out.contains(a) { out.append(a) }
        }
        return out.filter(\.isIPv4) + out.filter { !$0.isIPv4 }
    }
}

/// The local IPv4 address the kernel would use to reach `target`, or the first
/// non-loopback IPv4 address that is up and outside `excluding` (the mesh
/// prefix: a mesh address is no way to reach the mesh): what this node advertises.
func localAddress(toward target: Endpoint?, excluding: IPPrefix) -> IPAddress? {
    if let t = target, t.address.isIPv4, let a = HostAddresses.source(toward: t) { return a }
    return HostAddresses.local(ipv6: false).first { !excluding.contains($0) }
}

/// The default IPv4 gateway of this network namespace (/proc/net/route), where
/// a home router answers NAT-PMP; nil without one.
func defaultGateway() -> IPAddress? {
    guard let text = try? Files.readText("/proc/net/route") else { return nil }
    for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        // Iface Destination Gateway Flags ...: destination 0, flag RTF_GATEWAY (2).
        guard f.count > 3, f[1] == "00000000", let gw = UInt32(f[2], radix: 16), gw != 0,
              let flags = UInt32(f[3], radix: 16), flags & 2 != 0 else { continue }
        // The kernel prints the address's bytes (network order) as a host-order integer.
        return .v4(IPv4Address(UInt32(bigEndian: gw)))
    }
    return nil
}
