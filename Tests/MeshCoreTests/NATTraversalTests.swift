// MeshNodes behind in-memory NATs, on a virtual clock: members behind
// endpoint-independent NATs find a direct path through a rendezvous; members
// behind endpoint-dependent NATs (or one of each) are relayed by a public
// member, whose RelayTable forwards WireGuard datagrams both ways; direct
// paths win back when they appear.
//
// Every home uses the same private address (192.168.1.2:51821) on purpose.
// A NAT maps outbound datagrams (the same public port toward everyone, or a
// new one per destination) and drops inbound ones unless the inside host has
// sent to exactly that remote address and port (conntrack's filtering, with
// the router's "drop new inbound" firewall).
import Testing
import MeshBase
import MeshIdentity
import MeshProtocol
import MeshSWIM
@testable import MeshCore

final class NATBox {
    enum Kind { case independent, dependent }
    var kind: Kind
    let publicIP: IPAddress
    /// (inside endpoint, remote or nil for independent) -> public port
    private var mappings: [String: UInt16] = [:]
    /// public port -> inside endpoint
    private var inside: [UInt16: Endpoint] = [:]
    /// public port -> remotes it has sent to
    private var allowed: [UInt16: Set<Endpoint>] = [:]
    private var nextPort: UInt16 = 40000
    var dropped = 0
    /// Port mappings (NAT-PMP): public port -> inside endpoint, open to anyone.
    var forwarded: [UInt16: Endpoint] = [:]

    init(_ kind: Kind, _ ip: IPAddress) { self.kind = kind; publicIP = ip }

    func outbound(from e: Endpoint, to remote: Endpoint) -> Endpoint {
        let key = kind == .independent ? "\(e)" : "\(e)>\(remote)"
        let port: UInt16
        if let p = mappings[key] {
            port = p
        } else {
            // Port-preserving when independent and free (Linux masquerade); else a fresh one.
            if kind == .independent, inside[e.port] == nil { port = e.port } else { nextPort += 7; port = nextPort }
            mappings[key] = port
            inside[port] = e
        }
        allowed[port, default: []].insert(remote)
        return Endpoint(publicIP, port: port)
    }

    func inbound(to port: UInt16, from remote: Endpoint) -> Endpoint? {
        if let e = forwarded[port] {
            // Replies to this remote leave from the mapped port (conntrack of the forwarded flow).
            mappings["\(e)>\(remote)"] = port
            return e
        }
        guard let e = inside[port], allowed[port]?.contains(remote) == true else { dropped += 1; return nil }
        return e
    }
}

/// The relay's ports in memory: RelayTable and nothing else.
final class MemoryRelay: RelayServing {
    var table = RelayTable()
    var nextPort: UInt16 = 52000
    func allocate(_ requester: Bytes32, at requesterAddress: IPAddress, peer: Bytes32, at peerAddress: IPAddress,
                  now: Instant) -> Result<(UInt16, UInt16), NATMessage.RefusalReason> {
        table.request(requester, at: requesterAddress, peer: peer, at: peerAddress, now: now) {
            nextPort += 2
            return (nextPort, nextPort + 1)
        }
    }
}

final class NATLab {
    struct Host {
        let node: MeshNode
        let local: Endpoint
        let nat: NATBox?
        var wireGuardInbox: [(bytes: [UInt8], from: Endpoint)] = []
    }
    var hosts: [Host] = []
    var now: Instant = .seconds(86_400 * 3)
    var inFlight: [(bytes: [UInt8], from: Endpoint, to: Endpoint)] = []
    let relay = MemoryRelay()
    static let privateEndpoint = Endpoint(.v4(IPv4Address(192, 168, 1, 2)), port: 51821)

    /// `kinds`: nil is a public host at 198.51.100.(3+i), else a home behind that NAT at 198.51.100.(10+i).
    init(_ kinds: [NATBox.Kind?], stun: Bool = true, kernel: Set<Int> = []) throws {
        let ids = kinds.map { _ in Identity.generate() }
        for (i, kind) in kinds.enumerated() {
            var t = TrustSet()
            for j in kinds.indices where j != i { try t.add(name: "n\(j)", key: ids[j].publicKey) }
            let local: Endpoint, nat: NATBox?
            if let k = kind {
                local = NATLab.privateEndpoint
                nat = NATBox(k, .v4(IPv4Address(198, 51, 100, UInt8(10 + i))))
            } else {
                local = Endpoint(.v4(IPv4Address(198, 51, 100, UInt8(3 + i))), port: 51821)
                nat = nil
            }
            let wireGuard = kernel.contains(i) ? Endpoint(local.address, port: 51820) : local
            let node = try MeshNode(identity: ids[i], controlEndpoint: local, wireGuardEndpoints: [wireGuard], kernelMode: kernel.contains(i),
                                    trust: t, epoch: 1, seed: UInt64(i + 1), now: now)
            if nat == nil { node.relayServer = relay }
            hosts.append(Host(node: node, local: local, nat: nat))
            if stun {
                // What STUN would find (the servers are at two public addresses).
                switch kind {
                case nil: node.setNAT(reflexive: local, mapping: .none, now: now)
                case .independent?: node.setNAT(reflexive: Endpoint(nat!.publicIP, port: local.port), mapping: .endpointIndependent, now: now)
                case .dependent?: node.setNAT(reflexive: Endpoint(nat!.publicIP, port: 40007), mapping: .endpointDependent, now: now)
                }
            }
        }
    }

    var relayHost: Host { hosts.first { $0.nat == nil }! }

    /// Sends from host `i` to `to`: through its NAT, across the "internet", through the far NAT or the relay.
    func send(_ bytes: [UInt8], from i: Int, to: Endpoint) {
        let h = hosts[i]
        let source = h.nat?.outbound(from: h.local, to: to) ?? h.local
        inFlight.append((bytes, source, to))
    }

    func deliverAll() {
        var rounds = 0
        while !inFlight.isEmpty && rounds < 1000 {
            rounds += 1
            let batch = inFlight; inFlight.removeAll()
            for d in batch { deliver(d.bytes, from: d.from, to: d.to) }
        }
    }

    private func deliver(_ bytes: [UInt8], from: Endpoint, to: Endpoint) {
        // The relay's ports.
        let r = relayHost
        if to.address == r.local.address, to.port != r.local.port {
            let forwarded = bytes.withUnsafeBytes { relay.table.forward($0, port: to.port, from: from) }
            if let f = forwarded { inFlight.append((bytes, Endpoint(r.local.address, port: f.port), f.to)) }
            return
        }
        for (j, h) in hosts.enumerated() {
            if let nat = h.nat {
                guard nat.publicIP == to.address, let inside = nat.inbound(to: to.port, from: from) else { continue }
                guard inside == h.local else { return }
                receive(j, bytes, from: from)
                return
            } else if h.local == to {
                receive(j, bytes, from: from)
                return
            }
        }
    }

    private func receive(_ j: Int, _ bytes: [UInt8], from: Endpoint) {
        if bytes.first.map({ (1...4).contains($0) }) == true {
            hosts[j].wireGuardInbox.append((bytes, from))
        } else {
            hosts[j].node.receive(bytes, from: from, now: now)
            drain(j)
        }
    }

    private func drain(_ j: Int) {
        while let (b, to) = hosts[j].node.pollTransmit() { send(b, from: j, to: to) }
    }

    func run(for d: Duration) {
        let end = now + d
        while true {
            for j in hosts.indices { drain(j) }
            deliverAll()
            guard let t = hosts.compactMap({ $0.node.nextDeadline() }).min(), t <= end else { break }
            now = max(now, t)
            for h in hosts { h.node.handleTimers(now: now) }
        }
        now = end
    }

    func start() {
        let seed = relayHost.local
        for h in hosts where h.nat != nil { h.node.join(seeds: [seed], now: now) }
    }

    func key(_ i: Int) -> IdentityPublicKey { hosts[i].node.identity.publicKey }
    func peer(_ i: Int, _ j: Int) -> MeshPeerState? { hosts[i].node.peers.first { $0.key == key(j) } }
    func path(_ i: Int, _ j: Int) -> PathKind { hosts[i].node.path(to: key(j).raw) }

    /// A WireGuard-looking datagram from `i` to its data plane's endpoint for `j`; true when `j` got it.
    func wireGuard(from i: Int, to j: Int) -> Bool {
        guard let e = peer(i, j)?.endpoint else { return false }
        let before = hosts[j].wireGuardInbox.count
        send([4, 0, 0, 0] + Array(repeating: UInt8(i), count: 28), from: i, to: e)
        deliverAll()
        return hosts[j].wireGuardInbox.count > before
    }
}

@Suite struct NATTraversalTests {
    static let relayIP = IPAddress.v4(IPv4Address(198, 51, 100, 3))

    @Test func twoEndpointIndependentNATsConnectDirectlyThroughARendezvous() throws {
        let lab = try NATLab([nil, .independent, .independent])
        lab.start()
        lab.run(for: .seconds(10))
        // Each sees the other at its router's public address (port preserved).
        #expect(lab.peer(1, 2)?.endpoint == Endpoint(.v4(IPv4Address(198, 51, 100, 12)), port: 51821))
        #expect(lab.peer(2, 1)?.endpoint == Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 51821))
        #expect(lab.path(1, 2) == .direct && lab.path(2, 1) == .direct)
        #expect(lab.peer(1, 2)?.persistentKeepalive == MeshNode.natKeepalive)
        #expect(lab.peer(1, 2)?.routed == true)
        // WireGuard datagrams pass both NATs both ways.
        #expect(lab.wireGuard(from: 1, to: 2) && lab.wireGuard(from: 2, to: 1))
        #expect(lab.relay.table.allocations.isEmpty)
        // The public member reaches both homes at their routers.
        #expect(lab.peer(0, 1)?.endpoint?.address == .v4(IPv4Address(198, 51, 100, 11)))
    }

    @Test func withoutSTUNTheRendezvousStillFindsThePublicAddresses() throws {
        let lab = try NATLab([nil, .independent, .independent], stun: false)
        lab.start()
        lab.run(for: .seconds(10))
        #expect(lab.path(1, 2) == .direct && lab.path(2, 1) == .direct)
        #expect(lab.peer(1, 2)?.endpoint == Endpoint(.v4(IPv4Address(198, 51, 100, 12)), port: 51821))
        #expect(lab.hosts[1].node.natCounters.introductionsReceived > 0)
        #expect(lab.wireGuard(from: 1, to: 2) && lab.wireGuard(from: 2, to: 1))
    }

    @Test(arguments: [(NATBox.Kind.dependent, NATBox.Kind.dependent), (.independent, .dependent), (.dependent, .independent)])
    func withoutADirectPathThePairIsRelayed(_ a: NATBox.Kind, _ b: NATBox.Kind) throws {
        let lab = try NATLab([nil, a, b])
        lab.start()
        lab.run(for: .seconds(10))
        #expect(lab.path(1, 2) == .relayed(via: lab.key(0).raw))
        #expect(lab.path(2, 1) == .relayed(via: lab.key(0).raw))
        let e12 = try #require(lab.peer(1, 2)?.endpoint), e21 = try #require(lab.peer(2, 1)?.endpoint)
        #expect(e12.address == NATTraversalTests.relayIP && e21.address == NATTraversalTests.relayIP && e12.port != e21.port)
        #expect(lab.peer(1, 2)?.persistentKeepalive == MeshNode.natKeepalive)
        #expect(lab.relay.table.allocations.count == 1)
        // Each side's first datagram latches it at the relay (and opens its NAT toward the relay port); then both ways pass.
        _ = lab.wireGuard(from: 1, to: 2)
        #expect(lab.wireGuard(from: 2, to: 1))
        #expect(lab.wireGuard(from: 1, to: 2))
        #expect(lab.relay.table.allocations[0].forwardedPackets >= 2)
        // Still relayed (refreshed) a minute later.
        lab.run(for: .seconds(60))
        #expect(lab.path(1, 2) == .relayed(via: lab.key(0).raw) && lab.wireGuard(from: 1, to: 2) && lab.wireGuard(from: 2, to: 1))
    }

    /// Members behind endpoint-dependent NATs reach one another only through the
    /// public member: SWIM probes them through it at once (no direct ping that
    /// cannot arrive, no relays that cannot reach them), so no one is suspected.
    @Test func membersNoOneReachesDirectlyAreNeverSuspected() throws {
        let lab = try NATLab([nil] + Array(repeating: NATBox.Kind.dependent, count: 6))
        lab.start()
        lab.run(for: .seconds(10))
        for h in lab.hosts { _ = h.node.takeEvents() }
        lab.run(for: .seconds(120))
        var suspicions = 0, deaths = 0
        for h in lab.hosts {
            for e in h.node.takeEvents() {
                if case .suspect = e { suspicions += 1 }
                if case .dead = e { deaths += 1 }
            }
        }
        #expect(suspicions == 0 && deaths == 0)
        for i in 1..<7 { for j in 1..<7 where i != j { #expect(lab.path(i, j) == .relayed(via: lab.key(0).raw), "\(i)-\(j)") } }
        #expect(lab.relay.table.allocations.count == 15)
    }

    /// A member whose router forwards its port (NAT-PMP) is reachable from
    /// anyone at the mapped endpoint, even behind an endpoint-dependent NAT:
    /// no relay for it, even from another endpoint-dependent NAT.
    @Test func aPortMappedMemberIsReachedDirectlyEvenFromEndpointDependentNATs() throws {
        let lab = try NATLab([nil, .dependent, .dependent])
        let mapped = Endpoint(.v4(IPv4Address(198, 51, 100, 12)), port: 45000)
        lab.hosts[2].nat!.forwarded[45000] = NATLab.privateEndpoint
        lab.hosts[2].node.setPortMapping(control: mapped, wireGuard: nil, now: lab.now)
        let record = lab.hosts[2].node.currentRecord
        #expect(record.controlEndpoint == mapped && record.wireGuardEndpoints.first == mapped && record.flags & RecordFlags.portMapped != 0)
        lab.start()
        lab.run(for: .seconds(10))
        #expect(lab.path(1, 2) == .direct && lab.path(2, 1) == .direct)
        #expect(lab.peer(1, 2)?.endpoint == mapped)
        #expect(lab.relay.table.allocations.isEmpty)
        #expect(lab.wireGuard(from: 1, to: 2) && lab.wireGuard(from: 2, to: 1))
        // The mapping goes away (the router forgot it): relayed again.
        lab.hosts[2].nat!.forwarded = [:]
        lab.hosts[2].node.setPortMapping(control: nil, wireGuard: nil, now: lab.now)
        #expect(lab.hosts[2].node.currentRecord.flags & RecordFlags.portMapped == 0)
    }

    @Test func theDirectPathWinsBackWhenItAppears() throws {
        let lab = try NATLab([nil, .dependent, .dependent])
        lab.start()
        lab.run(for: .seconds(10))
        #expect(lab.path(1, 2) == .relayed(via: lab.key(0).raw))
        // The routers change to endpoint-independent mapping; STUN notices.
        for i in [1, 2] {
            lab.hosts[i].nat!.kind = .independent
            lab.hosts[i].node.setNAT(reflexive: Endpoint(lab.hosts[i].nat!.publicIP, port: 51821), mapping: .endpointIndependent, now: lab.now)
        }
        lab.run(for: .seconds(40))
        #expect(lab.path(1, 2) == .direct && lab.path(2, 1) == .direct)
        #expect(lab.peer(1, 2)?.endpoint?.address == .v4(IPv4Address(198, 51, 100, 12)))
        #expect(lab.hosts[1].node.natCounters.directAfterRelay + lab.hosts[2].node.natCounters.directAfterRelay > 0)
        #expect(lab.wireGuard(from: 1, to: 2) && lab.wireGuard(from: 2, to: 1))
    }

    /// Kernel mode: STUN cannot ask from the kernel's WireGuard socket. A
    /// public member that sees it (from its handshakes) says where, and the
    /// member advertises that; others then send WireGuard there.
    @Test func aPublicMemberTellsAKernelModeMemberWhereItsWireGuardSocketIsSeen() throws {
        let lab = try NATLab([nil, .independent, .independent], kernel: [1, 2])
        lab.start()
        lab.run(for: .seconds(10))
        let a = lab.hosts[1].node
        // The guess: the public address at the kernel's port.
        #expect(a.currentRecord.wireGuardEndpoints.first == Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 51820))
        #expect(lab.peer(2, 1)?.endpoint == Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 51820))
        // The NAT maps the kernel's socket to another port; S's data plane sees it.
        let seen = Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 40500)
        lab.hosts[0].node.observeWireGuard(of: lab.key(1).raw, at: seen, now: lab.now)
        lab.run(for: .seconds(5))
        #expect(a.observedWireGuard == seen && a.currentRecord.wireGuardEndpoints.first == seen)
        #expect(lab.peer(2, 1)?.endpoint == seen)
        #expect(lab.hosts[0].node.natCounters.observationsSent == 1)
        // Said once: the same observation again is not resent (and is not news to A any more).
        lab.hosts[0].node.observeWireGuard(of: lab.key(1).raw, at: seen, now: lab.now)
        #expect(lab.hosts[0].node.natCounters.observationsSent == 1)
        // A member that is not public cannot tell A where it is seen.
        let before = a.drops[.badValue] ?? 0
        a.handleNAT(.observedWireGuard(endpoint: Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 1)), from: lab.key(2).raw,
                    at: Endpoint(.v4(IPv4Address(198, 51, 100, 12)), port: 51821), now: lab.now)
        #expect(a.observedWireGuard == seen && (a.drops[.badValue] ?? 0) == before + 1)
    }

    @Test func aNodeBehindANATAdvertisesItsPublicEndpointAndNATKind() throws {
        let lab = try NATLab([nil, .independent, .dependent])
        let r1 = lab.hosts[1].node.currentRecord, r0 = lab.hosts[0].node.currentRecord
        #expect(r1.controlEndpoint == Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 51821))
        #expect(r1.wireGuardEndpoints == [r1.controlEndpoint, NATLab.privateEndpoint])
        #expect(RecordFlags.mapping(r1.flags) == .endpointIndependent && r1.flags & RecordFlags.relay == 0)
        #expect(RecordFlags.mapping(lab.hosts[2].node.currentRecord.flags) == .endpointDependent)
        #expect(RecordFlags.mapping(r0.flags) == MeshCore.NATMapping.none && r0.flags & RecordFlags.relay != 0)
        // The record is re-signed for the new incarnation and verifies.
        #expect(try MemberRecord.decode(r1.encoded) == r1)
        #expect(r1.incarnation > 0)
    }

    @Test func onlyARelayGrantsAndOnlyBetweenKnownMembers() throws {
        let lab = try NATLab([nil, .dependent, .dependent])
        lab.start()
        lab.run(for: .seconds(5))
        // A home (no relay) refuses; the relay refuses a pair with a stranger.
        let stranger = Identity.generate().publicKey.raw
        let n1 = lab.hosts[1].node
        n1.handleNAT(.relayRequest(peer: lab.key(2).raw), from: lab.key(0).raw, at: lab.relayHost.local, now: lab.now)
        var sent: [[UInt8]] = []
        while let (b, _) = n1.pollTransmit() { sent.append(b) }
        let refusals = sent.compactMap { b -> NATMessage? in
            var o = EnvelopeOpener()
            guard let e = try? o.open(b, isTrusted: { _ in true }), e.kind == .natTraversal else { return nil }
            return try? NATMessage.decode(e.payload)
        }
        #expect(refusals == [.relayRefusal(peer: lab.key(2).raw, reason: .notARelay)])
        let relayNode = lab.hosts[0].node
        let before = relayNode.natCounters.relayRefusalsSent
        relayNode.handleNAT(.relayRequest(peer: stranger), from: lab.key(1).raw, at: Endpoint(.v4(IPv4Address(198, 51, 100, 11)), port: 40000), now: lab.now)
        #expect(relayNode.natCounters.relayRefusalsSent == before + 1)
        #expect(lab.relay.table.allocations.count == 1)   // only the real pair's
    }
}

@Suite struct RelayTableTests {
    let a = Bytes32([UInt8](repeating: 1, count: 32))!, b = Bytes32([UInt8](repeating: 2, count: 32))!
    let aIP = IPAddress.v4(IPv4Address(198, 51, 100, 11)), bIP = IPAddress.v4(IPv4Address(198, 51, 100, 12))

    func forward(_ t: inout RelayTable, _ bytes: [UInt8], port: UInt16, from: Endpoint) -> (port: UInt16, to: Endpoint)? {
        bytes.withUnsafeBytes { t.forward($0, port: port, from: from) }
    }

    @Test func forwardsWireGuardBetweenTheTwoLatchedSides() throws {
        var t = RelayTable()
        var next: UInt16 = 100
        let open = { () -> (UInt16, UInt16)? in next += 2; return (next, next + 1) }
        let (pa, pb) = try t.request(a, at: aIP, peer: b, at: bIP, now: .seconds(1), openPorts: open).get()
        // The same pair from the other side: the same allocation, ports swapped.
        let (pb2, pa2) = try t.request(b, at: bIP, peer: a, at: aIP, now: .seconds(2), openPorts: open).get()
        #expect(pa == pa2 && pb == pb2 && t.allocations.count == 1)
        let wg: [UInt8] = [1, 0, 0, 0] + Array(repeating: 9, count: 144)
        let fromA = Endpoint(aIP, port: 40001), fromB = Endpoint(bIP, port: 40002)
        #expect(forward(&t, wg, port: pa, from: fromA) == nil)          // B not latched yet
        #expect(t.drops[.peerNotLatched] == 1)
        let toA = try #require(forward(&t, wg, port: pb, from: fromB))
        #expect(toA.port == pa && toA.to == fromA)
        let toB = try #require(forward(&t, wg, port: pa, from: fromA))
        #expect(toB.port == pb && toB.to == fromB)
        #expect(t.allocations[0].forwardedPackets == 2)
    }

    @Test func dropsWhatIsNotWireGuardOrComesFromElsewhere() throws {
        var t = RelayTable()
        let (pa, _) = try t.request(a, at: aIP, peer: b, at: bIP, now: .seconds(1), openPorts: { (200, 201) }).get()
        // A control-plane envelope, STUN, garbage: not relayed.
        for bytes: [UInt8] in [[0x4d, 0x47, 1, 1], [0, 1, 0, 0] + Array(repeating: 0, count: 16), [5, 0, 0, 0], [1, 0], []] {
            let r1 = forward(&t, bytes, port: pa, from: Endpoint(aIP, port: 1))
            #expect(r1 == nil)
        }
        #expect(t.drops[.notWireGuard] == 5)
        // From an address that is not A's: dropped, and it latches nothing.
        let r2 = forward(&t, [1, 0, 0, 0], port: pa, from: Endpoint(bIP, port: 1))
        #expect(r2 == nil)
        #expect(t.drops[.wrongSource] == 1 && t.allocations[0].low.latched == nil)
        let r3 = forward(&t, [1, 0, 0, 0], port: 999, from: Endpoint(aIP, port: 1))
        #expect(r3 == nil)
        #expect(t.drops[.unknownPort] == 1)
    }

    func refusal(_ r: Result<(UInt16, UInt16), NATMessage.RefusalReason>) -> NATMessage.RefusalReason? {
        if case .failure(let e) = r { return e }
        return nil
    }

    @Test func allocationsExpireAndAreBounded() throws {
        var t = RelayTable(capacity: 1, idleTimeout: .seconds(90))
        _ = try t.request(a, at: aIP, peer: b, at: bIP, now: .seconds(1), openPorts: { (300, 301) }).get()
        let c = Bytes32([UInt8](repeating: 3, count: 32))!
        let r4 = refusal(t.request(a, at: aIP, peer: c, at: bIP, now: .seconds(2), openPorts: { (302, 303) }))
        #expect(r4 == .full)
        let r5 = t.expire(now: .seconds(60))
        #expect(r5.isEmpty)
        _ = try t.request(b, at: bIP, peer: a, at: aIP, now: .seconds(60), openPorts: { nil }).get()   // refreshed
        let r6 = t.expire(now: .seconds(120))
        #expect(r6.isEmpty)
        let closed = t.expire(now: .seconds(151))
        #expect(Set(closed) == [300, 301])
        #expect(t.allocations.isEmpty)
        let r7 = refusal(t.request(a, at: aIP, peer: c, at: bIP, now: .seconds(200), openPorts: { nil }))
        #expect(r7 == .full)
        let r8 = refusal(t.request(a, at: aIP, peer: a, at: aIP, now: .seconds(200), openPorts: { (1, 2) }))
        #expect(r8 == .unknownPeer)
    }
}
