// Two engines in two network namespaces joined by a veth, with the offloads
// on and forced off: bulk TCP both ways over IPv4 and IPv6 must arrive
// intact, and with offload the TSO, GSO and coalescing paths must have run.
// Run as root (namespaces, TUN). Each engine's TUN device and UDP socket are
// created with the creating thread switched into its namespace (setns(2)
// affects only the calling thread); the engine's threads then use them from
// anywhere.
//
//   ns A (mgua<pid>)                               ns B (mgub<pid>)
//   veth 192.0.2.1/24 ──────────── veth ────────── 192.0.2.2/24
//   TUN 10.77.0.1 fd77::1  (engine A)   (engine B)  TUN 10.77.0.2 fd77::2
//         TCP server :5201  ◄────── 4 MiB each way ──────►  TCP client
import Foundation
import MeshBase
import MeshCrypto
import MeshLinux
import MeshUserspace
import MeshWireGuard
import Testing

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

@discardableResult
func ip(_ args: String...) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
    p.arguments = args
    let err = Pipe()
    p.standardError = err
    p.standardOutput = Pipe()
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw TestFailure("ip \(args.joined(separator: " ")): \(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
    }
    return ""
}

/// setns(2), which Glibc's Swift module does not declare (it is _GNU_SOURCE only).
private let setnsFunction: @convention(c) (Int32, Int32) -> Int32 = {
    unsafeBitCast(dlsym(nil, "setns")!, to: (@convention(c) (Int32, Int32) -> Int32).self)
}()
private let cloneNewNet: Int32 = 0x4000_0000

/// Runs `body` with the calling thread in network namespace `name`
/// (/var/run/netns/name), then moves it back.
func inNamespace<T>(_ name: String, _ body: () throws -> T) throws -> T {
    let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
    let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
    defer { close(home); close(target) }
    guard home >= 0, target >= 0, setnsFunction(target, cloneNewNet) == 0 else { throw TestFailure("setns \(name): errno \(errno)") }
    defer { precondition(setnsFunction(home, cloneNewNet) == 0, "cannot return to the test's network namespace") }
    return try body()
}

/// Byte i of the stream sent in `direction`.
func streamByte(_ i: Int, _ direction: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 7 &+ i >> 9 &+ direction) }

/// A nonblocking TCP socket of `family`.
func tcpSocket(_ family: Int32) throws -> Int32 {
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    return fd
}

/// A socket address for `address` and `port`, as raw bytes.
func socketAddress(_ address: IPAddress, port: UInt16) -> [UInt8] {
    switch address {
    case .v4(let a):
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = a.value.bigEndian
        return withUnsafeBytes(of: &sa) { Array($0) }
    case .v6(let a):
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: a.bytes) }
        return withUnsafeBytes(of: &sa) { Array($0) }
    }
}

@Suite(.serialized) struct EngineOffloadTests {
    static let pid = getpid()

    @Test(arguments: [true, false])
    func bulkTCPBothWaysOverBothFamilies(offload: Bool) throws {
        let nsA = "mgua\(Self.pid)", nsB = "mgub\(Self.pid)"
        defer { _ = try? ip("netns", "del", nsA); _ = try? ip("netns", "del", nsB) }
        try ip("netns", "add", nsA)
        try ip("netns", "add", nsB)
        try ip("link", "add", "mgva\(Self.pid)", "netns", nsA, "type", "veth", "peer", "name", "mgvb\(Self.pid)", "netns", nsB)
        for (ns, dev, address) in [(nsA, "mgva\(Self.pid)", "192.0.2.1/24"), (nsB, "mgvb\(Self.pid)", "192.0.2.2/24")] {
            try ip("-n", ns, "addr", "add", address, "dev", dev)
            try ip("-n", ns, "link", "set", dev, "up")
            try ip("-n", ns, "link", "set", "lo", "up")
        }

        let keyA = X25519.PrivateKey.generate(), keyB = X25519.PrivateKey.generate()
        func engine(_ ns: String, _ name: String, key: X25519.PrivateKey, port: UInt16, peer: Bytes32, peerPort: UInt16,
                    peerOctet: UInt8, tunnel: String) throws -> UserspaceEngine {
            try inNamespace(ns) {
                var c = EngineConfiguration(interfaceName: name)
                c.uapiDirectory = nil
                c.bringUp = true
                c.offload = offload
                let e = try UserspaceEngine(c)
                try e.apply(DeviceConfiguration(privateKey: key.secret, listenPort: port, peers: [
                    PeerConfiguration(publicKey: peer, endpoint: Endpoint(.v4(IPv4Address(192, 0, 2, peerOctet)), port: peerPort),
                                      allowedIPs: [IPPrefix(.v4(IPv4Address(10, 77, 0, peerOctet)), length: 32)!,
                                                   IPPrefix(.v6(IPv6Address("fd77::\(peerOctet)")!), length: 128)!]),
                ]))
                try ip("-n", ns, "addr", "add", "10.77.0.\(tunnel)/24", "dev", e.interfaceName)
                try ip("-n", ns, "addr", "add", "fd77::\(tunnel)/64", "dev", e.interfaceName, "nodad")
                return e
            }
        }
        let a = try engine(nsA, "mgua\(Self.pid)", key: keyA, port: 51820, peer: keyB.publicKey, peerPort: 51821, peerOctet: 2, tunnel: "1")
        let b = try engine(nsB, "mgub\(Self.pid)", key: keyB, port: 51821, peer: keyA.publicKey, peerPort: 51820, peerOctet: 1, tunnel: "2")
        try a.start(); try b.start()
        defer { a.stop(); b.stop() }
        #expect(a.offloadStatistics.tun == offload && b.offloadStatistics.udpSegmentation == offload)

        for server in [IPAddress.v4(IPv4Address(10, 77, 0, 1)), .v6(IPv6Address("fd77::1")!)] {
            try transfer(server: server, nsA: nsA, nsB: nsB, bytes: 4 << 20)
        }
        for e in [a, b] {
            let s = e.offloadStatistics
            if offload {
                #expect(s.superPacketsSplit > 0 && s.segmentsMerged > 0, "\(s)")
            } else {
                #expect(!s.tun && !s.udpSegmentation && s.superPacketsSplit == 0 && s.segmentsMerged == 0, "\(s)")
            }
            let st = e.statistics
            #expect(st.dropped(.decryptionFailed) + st.dropped(.replayedPacket) + st.dropped(.invalidInnerPacket) == 0, "\(st.drops)")
        }
    }

    /// Connects from B to `server`:5201 in A and sends `bytes` each way at once; checks every byte.
    func transfer(server: IPAddress, nsA: String, nsB: String, bytes: Int) throws {
        let family = server.bitWidth == 32 ? AF_INET : AF_INET6
        let address = socketAddress(server, port: 5201)
        let listener = try inNamespace(nsA) { try tcpSocket(family) }
        defer { close(listener) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withUnsafeBytes { bind(listener, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
        guard bound == 0, listen(listener, 1) == 0 else { throw TestFailure("bind/listen \(server): errno \(errno)") }
        let client = try inNamespace(nsB) { try tcpSocket(family) }
        defer { close(client) }
        _ = address.withUnsafeBytes { connect(client, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }

        var accepted: Int32 = -1
        let deadline = MonotonicClock.now() + .seconds(60)
        while accepted < 0 {
            guard MonotonicClock.now() < deadline else { throw TestFailure("no connection to \(server)") }
            _ = try waitReadable([listener], timeout: .milliseconds(100))
            accepted = accept(listener, nil, nil)
        }
        _ = fcntl(accepted, F_SETFL, fcntl(accepted, F_GETFL) | O_NONBLOCK)
        defer { close(accepted) }

        // Ends: 0 = client (sends direction 0, receives 1), 1 = server.
        let fds = [client, accepted]
        var sent = [0, 0], received = [0, 0]
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        var corrupt = false
        while (received[0] < bytes || received[1] < bytes) && MonotonicClock.now() < deadline {
            var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN | POLLOUT), revents: 0) }
            _ = poll(&polls, 2, 100)
            for end in 0..<2 {
                if sent[end] < bytes {
                    let n = min(chunk.count, bytes - sent[end])
                    for i in 0..<n { chunk[i] = streamByte(sent[end] + i, end) }
                    let w = chunk.withUnsafeBytes { send(fds[end], $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                    if w > 0 { sent[end] += w }
                }
                let r = chunk.withUnsafeMutableBytes { recv(fds[end], $0.baseAddress, $0.count, 0) }
                if r > 0 {
                    for i in 0..<r where chunk[i] != streamByte(received[end] + i, 1 - end) { corrupt = true }
                    received[end] += r
                }
            }
        }
        #expect(!corrupt, "bytes over \(server) differ from what was sent")
        #expect(received == [bytes, bytes], "over \(server)")
    }
}
