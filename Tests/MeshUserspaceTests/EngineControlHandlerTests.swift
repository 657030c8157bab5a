// The control handler (every non-WireGuard datagram on the port) must run at
// the same stack depth however many datagrams came before. It once did not:
// the closure sat bare in a generic `Locked`, and each fetch wrote it back
// wrapped in two more reabstraction thunks, so each delivery went through a
// longer chain (memory, CPU and stack growing for ever; found by
// Tests/Integration/mesh-soak.sh as RSS growing ~1 KB/s per agent).
// Run as root (a network namespace, TUN).
import Foundation
import MeshBase
import MeshCrypto
import MeshUserspace
import MeshWireGuard
import Testing

@Suite(.serialized) struct EngineControlHandlerTests {
    final class Depths: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [UInt] = []
        func append(_ v: UInt) { lock.lock(); values.append(v); lock.unlock() }
        var all: [UInt] { lock.lock(); defer { lock.unlock() }; return values }
    }

    @Test func theControlHandlerRunsAtTheSameStackDepthEveryTime() throws {
        let ns = "mguh\(getpid())", port: UInt16 = 51893
        defer { _ = try? ip("netns", "del", ns) }
        try ip("netns", "add", ns)
        try ip("-n", ns, "link", "set", "lo", "up")
        let (engine, sender) = try inNamespace(ns) { () throws -> (UserspaceEngine, Int32) in
            var c = EngineConfiguration(interfaceName: ns)
            c.uapiDirectory = nil
            let e = try UserspaceEngine(c)
            try e.apply(DeviceConfiguration(privateKey: X25519.PrivateKey.generate().secret, listenPort: port, peers: []))
            let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { throw TestFailure("socket: errno \(errno)") }
            return (e, s)
        }
        defer { engine.stop(); close(sender) }
        let depths = Depths()
        engine.setControlHandler { _, _ in
            var marker = 0
            depths.append(withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) })
        }
        try engine.start()
        let to = socketAddress(.v4(IPv4Address(127, 0, 0, 1)), port: port)
        let deliveries = 200
        for i in 1...deliveries {
            // One datagram at a time, each its own receive batch (one handler fetch each).
            let sent = to.withUnsafeBytes { a in
                Array("not wireguard \(i)".utf8).withUnsafeBytes { b in
                    sendto(sender, b.baseAddress, b.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count))
                }
            }
            #expect(sent > 0)
            let deadline = Date().addingTimeInterval(5)
            while depths.all.count < i && Date() < deadline { usleep(200) }
        }
        let d = depths.all
        #expect(d.count == deliveries)
        let spread = (d.max() ?? 0) - (d.min() ?? 0)
        #expect(spread < 1024, "after \(d.count) deliveries the handler ran \(spread) bytes deeper on the stack")
    }
}
