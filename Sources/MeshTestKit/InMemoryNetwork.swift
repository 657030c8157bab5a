// MeshTestKit: in-memory twins for testing the protocol cores without
// sockets, TUN devices or real time. Shipped as a library so that every
// test target (and later the simulators) uses the same network.
//
//   Node     a WireGuardDevice with an endpoint and mesh addresses, and the
//            IP packets it delivered to its (imaginary) TUN device
//   Network  datagrams in flight between nodes, a virtual clock, a filter
//            that drops or captures datagrams, and a log of everything sent
import MeshBase
import MeshCrypto
import MeshWireGuard

/// An IPv4 UDP packet from `src` to `dst` with `payload` (checksums zero: the device does not check them).
public func ipv4Packet(src: IPv4Address, dst: IPv4Address, payload: [UInt8]) -> [UInt8] {
    let total = 20 + 8 + payload.count
    var p: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, 64, 17, 0, 0]
    p += src.octets + dst.octets
    p += [0x30, 0x39, 0x30, 0x39, UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xff), 0, 0]
    return p + payload
}

public func ipv6Packet(src: IPv6Address, dst: IPv6Address, payload: [UInt8]) -> [UInt8] {
    let plen = 8 + payload.count
    var p: [UInt8] = [0x60, 0, 0, 0, UInt8(plen >> 8), UInt8(plen & 0xff), 17, 64]
    p += src.bytes + dst.bytes
    p += [0x30, 0x39, 0x30, 0x39, UInt8(plen >> 8), UInt8(plen & 0xff), 0, 0]
    return p + payload
}

/// A node: a device, its endpoint and mesh addresses, and what it delivered to its "TUN".
public final class Node {
    public let device: WireGuardDevice
    public let key = X25519.PrivateKey.generate()
    public let endpoint: Endpoint
    public let ipv4: IPv4Address
    public let ipv6: IPv6Address
    public var delivered: [[UInt8]] = []
    public var lastResults: [IncomingResult] = []

    public init(_ n: UInt8, seed: UInt64, options: DeviceOptions = DeviceOptions()) {
        device = WireGuardDevice(options: options, seed: seed)
        endpoint = Endpoint(.v4(IPv4Address(192, 0, 2, n)), port: 51820)
        ipv4 = IPv4Address(10, 0, 0, n)
        ipv6 = IPv6Address(high: 0xfd00_0000_0000_0000, low: UInt64(n))
        device.apply(DeviceConfiguration(privateKey: key.secret, listenPort: 51820), now: .zero)
        device.setWallClock(WallTime(seconds: 1_800_000_000, nanoseconds: 0), at: .zero)
    }

    public var publicKey: Bytes32 { key.publicKey }

    public func peer(with other: Node, keepalive: UInt16? = nil, psk: Bytes32? = nil, endpoint: Bool = true) -> PeerConfiguration {
        PeerConfiguration(publicKey: other.publicKey, presharedKey: psk, endpoint: endpoint ? other.endpoint : nil,
                          persistentKeepaliveInterval: keepalive,
                          allowedIPs: [.host(.v4(other.ipv4)), .host(.v6(other.ipv6))])
    }
}

/// The in-memory network: datagrams in flight, delivered in order; a filter can drop or capture them.
public final class Network {
    public var nodes: [Node] = []
    public var now: Instant = .seconds(1)
    public var inFlight: [(Transmit, from: Endpoint)] = []
    public var filter: (Transmit, Endpoint) -> Bool = { _, _ in true }
    public var log: [(Transmit, from: Endpoint)] = []

    public init(_ nodes: Node...) { self.nodes = nodes }

    public func node(at e: Endpoint) -> Node? { nodes.first { $0.endpoint == e } }

    public func collect() {
        for n in nodes {
            while let t = n.device.pollTransmit() { inFlight.append((t, n.endpoint)); log.append((t, n.endpoint)) }
        }
    }

    /// Sends an IP packet from `node` as if read from its TUN device.
    @discardableResult
    public func send(_ packet: [UInt8], from node: Node) -> OutgoingResult {
        let headroom = 16
        var buf = [UInt8](repeating: 0, count: headroom + packet.count + 64)
        var offset = headroom, length = packet.count
        let r = buf.withUnsafeMutableBytes { b -> OutgoingResult in
            b.baseAddress!.advanced(by: headroom).copyMemory(from: packet, byteCount: packet.count)
            return node.device.encrypt(b, offset: &offset, length: &length, now: now)
        }
        if case .send(let to) = r {
            let t = Transmit(bytes: Array(buf[offset..<(offset + length)]), endpoint: to)
            inFlight.append((t, node.endpoint)); log.append((t, node.endpoint))
        }
        collect()
        return r
    }

    /// Hands one datagram to its destination.
    @discardableResult
    public func deliver(_ bytes: [UInt8], from: Endpoint, to node: Node) -> IncomingResult {
        var buf = bytes
        var offset = 0, length = bytes.count
        let r = buf.withUnsafeMutableBytes { node.device.receive($0, offset: &offset, length: &length, from: from, now: now) }
        node.lastResults.append(r)
        if r == .deliver { node.delivered.append(Array(buf[offset..<(offset + length)])) }
        collect()
        return r
    }

    /// Delivers everything in flight (and what that produces) until quiet.
    public func run(maxRounds: Int = 100) {
        collect()
        var rounds = 0
        while !inFlight.isEmpty && rounds < maxRounds {
            let batch = inFlight
            inFlight.removeAll()
            for (t, from) in batch where filter(t, from) {
                if let dst = node(at: t.endpoint) { deliver(t.bytes, from: from, to: dst) }
            }
            rounds += 1
        }
    }

    /// Advances the virtual clock to `t`, firing timers on the way, and runs the network.
    public func advance(to t: Instant) {
        while true {
            let due = nodes.compactMap { $0.device.nextDeadline() }.filter { $0 <= t }.min()
            guard let d = due else { break }
            now = max(now, d)
            for n in nodes { n.device.handleTimers(now: now) }
            run()
        }
        now = t
        for n in nodes { n.device.handleTimers(now: now) }
        run()
    }

    public func advance(by d: Duration) { advance(to: now + d) }
}

