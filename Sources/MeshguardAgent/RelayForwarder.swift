// The relay's I/O: a UDP socket per allocated port and a thread that moves
// datagrams between them as RelayTable (sans-IO, MeshCore) says. The mesh
// loop asks for allocations (MeshNode → RelayServing) and expires them; this
// thread only forwards. Every relayed datagram is WireGuard ciphertext; the
// relay has no keys for it.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshCore
import MeshLinux
import MeshProtocol
import Synchronization

final class RelayForwarder: RelayServing, @unchecked Sendable {
    private struct State {
        var table: RelayTable
        var sockets: [UInt16: UDPSocket] = [:]
        /// Bumped when the set of sockets changes (the thread rebuilds its poller).
        var version: UInt64 = 0
    }
    private let state: Mutex<State>
    private let wake: WakeupSignal
    private let stop: WakeupSignal
    private var thread: pthread_t?

    init(capacity: Int) throws {
        state = Mutex(State(table: RelayTable(capacity: capacity)))
        wake = try WakeupSignal()
        stop = try WakeupSignal()
    }

    func start() {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            let me = Unmanaged<RelayForwarder>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box.toOpaque())
        if rc == 0 { thread = t } else { box.release() }
    }

    func close() {
        stop.signal()
        if let t = thread { pthread_join(t, nil); thread = nil }
        state.withLock { s in
            for (_, sock) in s.sockets { sock.close() }
            s.sockets.removeAll()
        }
    }

    func allocate(_ requester: Bytes32, at requesterAddress: IPAddress, peer: Bytes32, at peerAddress: IPAddress,
                  now: Instant) -> Result<(UInt16, UInt16), NATMessage.RefusalReason> {
        let result = state.withLock { s in
            s.table.request(requester, at: requesterAddress, peer: peer, at: peerAddress, now: now) {
                // Two fresh ephemeral ports.
                guard let a = try? UDPSocket(family: .dualStack, nonBlocking: true),
                      let b = try? UDPSocket(family: .dualStack, nonBlocking: true),
                      let pa = try? a.bind(port: 0), let pb = try? b.bind(port: 0) else { return nil }
                s.sockets[pa] = a
                s.sockets[pb] = b
                s.version &+= 1
                return (pa, pb)
            }
        }
        wake.signal()
        return result
    }

    /// Ends idle allocations (the mesh loop calls this now and then).
    func expire(now: Instant) {
        state.withLock { s in
            let closed = s.table.expire(now: now)
            for p in closed { s.sockets.removeValue(forKey: p)?.close() }
            if !closed.isEmpty { s.version &+= 1 }
        }
        wake.signal()
    }

    var allocations: Int { state.withLock { $0.table.allocations.count } }
    var forwarded: (packets: UInt64, bytes: UInt64) {
        state.withLock { s in s.table.allocations.reduce((0, 0)) { ($0.0 + $1.forwardedPackets, $0.1 + $1.forwardedBytes) } }
    }
    var drops: [RelayTable.Drop: UInt64] { state.withLock { $0.table.drops } }

    private func run() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let (version, sockets) = state.withLock { s in (s.version, s.sockets.map { ($0.key, $0.value) }) }
            let poller = Poller([stop.fileDescriptor, wake.fileDescriptor] + sockets.map { $0.1.fileDescriptor })
            while true {
                guard (try? poller.wait(timeout: .seconds(1))) != nil else { return }
                if poller.isReady(0) { return }
                if poller.isReady(1) { wake.drain() }
                if state.withLock({ $0.version }) != version { break }
                for (i, (port, socket)) in sockets.enumerated() where poller.isReady(i + 2) {
                    for _ in 0..<256 {
                        guard let r = buffer.withUnsafeMutableBytes({ try? socket.receive(into: $0) }) ?? nil else { break }
                        let out = state.withLock { s -> (UDPSocket, Endpoint)? in
                            let decision = buffer.withUnsafeBytes { s.table.forward(UnsafeRawBufferPointer(rebasing: $0[0..<r.length]), port: port, from: r.from) }
                            guard let d = decision, let sock = s.sockets[d.port] else { return nil }
                            return (sock, d.to)
                        }
                        if let (sock, to) = out {
                            _ = buffer.withUnsafeBytes { try? sock.send(UnsafeRawBufferPointer(rebasing: $0[0..<r.length]), to: to) }
                        }
                    }
                }
            }
        }
    }
}
