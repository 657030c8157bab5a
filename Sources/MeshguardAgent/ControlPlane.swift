// The control plane's UDP transport. In userspace mode it shares the
// engine's port (the engine hands over every datagram that is not WireGuard);
// in kernel mode the kernel owns the WireGuard socket, so the control plane
// has a socket of its own.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshLinux
import MeshSystem
import MeshUserspace
import Synchronization

protocol ControlTransport: AnyObject {
    /// Becomes readable when datagrams are waiting.
    var fileDescriptor: Int32 { get }
    func receiveAll() -> [([UInt8], Endpoint)]
    func send(_ bytes: [UInt8], to: Endpoint)
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
}

/// Userspace mode: the engine's shared port.
final class EngineControlTransport: ControlTransport, @unchecked Sendable {
    // The engine's UDP thread appends; the daemon thread drains. `inbox` is the only shared state.
    private let engine: UserspaceEngine
    final class Inbox: Sendable { let queue = Mutex<[([UInt8], Endpoint)]>([]) }
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
            if added { w.signal() }
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
}

/// The local IPv4 address the kernel would use to reach `target`, or the first
/// non-loopback IPv4 address that is up and outside `excluding` (the mesh
/// prefix: a mesh address is no way to reach the mesh): what this node advertises.
func localAddress(toward target: Endpoint?, excluding: IPPrefix) -> IPAddress? {
    if let t = target, case .v4(let a) = t.address {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if fd >= 0 {
            defer { close(fd) }
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = t.port.bigEndian
            sin.sin_addr.s_addr = a.value.bigEndian
            let ok = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            var local = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            if ok, withUnsafeMutablePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }) == 0 {
                return .v4(IPv4Address(UInt32(bigEndian: local.sin_addr.s_addr)))
            }
        }
    }
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return nil }
    defer { freeifaddrs(first) }
    var p: UnsafeMutablePointer<ifaddrs>? = first
    while let i = p {
        if let sa = i.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET),
           i.pointee.ifa_flags & UInt32(IFF_UP) != 0, i.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0 {
            let sin = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in.self)
            let a = IPAddress.v4(IPv4Address(UInt32(bigEndian: sin.sin_addr.s_addr)))
            if !excluding.contains(a) { return a }
        }
        p = i.pointee.ifa_next
    }
    return nil
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
