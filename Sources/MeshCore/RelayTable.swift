// The relay's forwarding table, sans-IO. A relay gives each relayed pair of
// members two UDP ports, one per side (like a TURN allocation, but for
// exactly two known members): member A sends its WireGuard datagrams for B to
// port a, the relay forwards them to B from port b, and back. WireGuard's
// kernel and userspace sockets both work this way unchanged: the relay is
// just the peer's endpoint.
//
// The relay forwards WireGuard ciphertext only: a datagram that does not look
// like a WireGuard message (type 1-4 and three zero bytes) is dropped, and it
// holds no keys, so it can neither read nor forge what it carries.
// A side's address is learned from the first datagram arriving on its port
// ("latching", as NATs change ports per destination), but only from the IP
// address that member's control messages come from; anything else is dropped
// and counted. Allocations end when no one has asked for them for
// `idleTimeout`. The I/O adapter binds the ports (RelayForwarder).
import MeshBase
import MeshProtocol

public struct RelayTable: Sendable {
    public struct Side: Sendable, Equatable {
        public let member: Bytes32
        /// The port this member sends to.
        public let port: UInt16
        /// Datagrams are accepted on `port` from this address only.
        public var address: IPAddress
        /// Where this member's datagrams come from (learned), and where its peer's go.
        public var latched: Endpoint?
    }

    public struct Allocation: Sendable, Equatable {
        public var low: Side
        public var high: Side
        public var requestedAt: Instant
        public var forwardedPackets: UInt64 = 0
        public var forwardedBytes: UInt64 = 0
    }

    public enum Drop: String, Sendable, CaseIterable {
        case notWireGuard = "not_wireguard"
        case wrongSource = "wrong_source"
        case peerNotLatched = "peer_not_latched"
        case unknownPort = "unknown_port"
    }

    /// Most pairs relayed at once.
    public let capacity: Int
    public let idleTimeout: Duration
    public private(set) var allocations: [Allocation] = []
    public private(set) var drops: [Drop: UInt64] = [:]

    public init(capacity: Int = 256, idleTimeout: Duration = .seconds(90)) {
        self.capacity = capacity
        self.idleTimeout = idleTimeout
    }

    private func index(_ a: Bytes32, _ b: Bytes32) -> Int? {
        let (lo, hi) = a < b ? (a, b) : (b, a)
        return allocations.firstIndex { $0.low.member == lo && $0.high.member == hi }
    }

    /// The ports for the pair (`requester`, `peer`): (the requester's, the
    /// peer's). An existing allocation is refreshed (and its addresses
    /// updated); a new one takes two ports from `openPorts` (nil: none free).
    public mutating func request(_ requester: Bytes32, at requesterAddress: IPAddress, peer: Bytes32, at peerAddress: IPAddress,
                                 now: Instant, openPorts: () -> (UInt16, UInt16)?) -> Result<(UInt16, UInt16), NATMessage.RefusalReason> {
        guard requester != peer else { return .failure(.unknownPeer) }
        let requesterIsLow = requester < peer
        if let i = index(requester, peer) {
            allocations[i].requestedAt = now
            func refresh(_ s: inout Side, _ address: IPAddress) {
                if s.address != address { s.address = address; s.latched = nil }
            }
            if requesterIsLow {
                refresh(&allocations[i].low, requesterAddress); refresh(&allocations[i].high, peerAddress)
                return .success((allocations[i].low.port, allocations[i].high.port))
            }
            refresh(&allocations[i].high, requesterAddress); refresh(&allocations[i].low, peerAddress)
            return .success((allocations[i].high.port, allocations[i].low.port))
        }
        guard allocations.count < capacity, let (p1, p2) = openPorts() else { return .failure(.full) }
        let r = Side(member: requester, port: p1, address: requesterAddress)
        let p = Side(member: peer, port: p2, address: peerAddress)
        allocations.append(Allocation(low: requesterIsLow ? r : p, high: requesterIsLow ? p : r, requestedAt: now))
        return .success((p1, p2))
    }

    /// A datagram that arrived on relay port `port` from `source`: the port to
    /// send it from and where to, or nil (dropped and counted).
    public mutating func forward(_ datagram: UnsafeRawBufferPointer, port: UInt16, from source: Endpoint) -> (port: UInt16, to: Endpoint)? {
        guard let i = allocations.firstIndex(where: { $0.low.port == port || $0.high.port == port }) else {
            drops[.unknownPort, default: 0] &+= 1
            return nil
        }
        guard datagram.count >= 4, (1...4).contains(datagram[0]), datagram[1] == 0, datagram[2] == 0, datagram[3] == 0 else {
            drops[.notWireGuard, default: 0] &+= 1
            return nil
        }
        let fromLow = allocations[i].low.port == port
        var a = allocations[i]
        var me = fromLow ? a.low : a.high
        let other = fromLow ? a.high : a.low
        guard source.address == me.address else {
            drops[.wrongSource, default: 0] &+= 1
            return nil
        }
        me.latched = source
        if fromLow { a.low = me } else { a.high = me }
        guard let to = other.latched else {
            allocations[i] = a
            drops[.peerNotLatched, default: 0] &+= 1
            return nil
        }
        a.forwardedPackets &+= 1
        a.forwardedBytes &+= UInt64(datagram.count)
        allocations[i] = a
        return (other.port, to)
    }

    /// Ends allocations no one asked for within `idleTimeout`; returns their ports (to close).
    public mutating func expire(now: Instant) -> [UInt16] {
        var closed: [UInt16] = []
        allocations.removeAll { a in
            guard now - a.requestedAt >= idleTimeout else { return false }
            closed += [a.low.port, a.high.port]
            return true
        }
        return closed
    }

    /// Ends every allocation involving `member` (it left or was revoked); returns their ports.
    public mutating func remove(member: Bytes32) -> [UInt16] {
        var closed: [UInt16] = []
        allocations.removeAll { a in
            guard a.low.member == member || a.high.member == member else { return false }
            closed += [a.low.port, a.high.port]
            return true
        }
        return closed
    }

    /// Every port in use.
    public var ports: [UInt16] { allocations.flatMap { [$0.low.port, $0.high.port] } }
}
