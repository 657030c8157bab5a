// MeshNodes on an in-memory network with a virtual clock: the mesh forms from
// one seed through authenticated SWIM, only trusted members become peers,
// revocation and failures remove them, forged records are refused.
import Testing
import MeshBase
import MeshCrypto
import MeshIdentity
import MeshProtocol
import MeshSWIM
@testable import MeshCore

final class MeshLab {
    var nodes: [MeshNode] = []
    var endpoints: [Endpoint] = []
    var now: Instant = .seconds(1)
    var down: Set<Int> = []
    var inFlight: [(bytes: [UInt8], from: Int, to: Endpoint)] = []

    /// `count` nodes; `trusted(i, j)` says whether node i trusts node j.
    init(count: Int, trusted: (Int, Int) -> Bool = { _, _ in true }) throws {
        let ids = (0..<count).map { _ in Identity.generate() }
        for i in 0..<count {
            var t = TrustSet()
            for j in 0..<count where j != i && trusted(i, j) { try t.add(name: "n\(j)", key: ids[j].publicKey) }
            let control = Endpoint(.v4(IPv4Address(192, 0, 2, UInt8(i + 1))), port: 51821)
            let wg = Endpoint(.v4(IPv4Address(192, 0, 2, UInt8(i + 1))), port: 51820)
            endpoints.append(control)
            nodes.append(try MeshNode(identity: ids[i], controlEndpoint: control, wireGuardEndpoints: [wg], kernelMode: false,
                                      trust: t, epoch: 1, seed: UInt64(i + 1), now: now))
        }
    }

    func index(of e: Endpoint) -> Int? { endpoints.firstIndex(of: e) }

    func pump() {
        for (i, n) in nodes.enumerated() where !down.contains(i) {
            while let (b, to) = n.pollTransmit() { inFlight.append((b, i, to)) }
        }
        while !inFlight.isEmpty {
            let batch = inFlight; inFlight.removeAll()
            for m in batch {
                guard let j = index(of: m.to), !down.contains(j), !down.contains(m.from) else { continue }
                nodes[j].receive(m.bytes, from: endpoints[m.from], now: now)
                while let (b, to) = nodes[j].pollTransmit() { inFlight.append((b, j, to)) }
            }
        }
    }

    func run(for d: Duration) {
        let end = now + d
        while true {
            let next = nodes.enumerated().filter { !down.contains($0.offset) }.compactMap { $0.element.nextDeadline() }.min()
            guard let t = next, t <= end else { break }
            now = max(now, t)
            for (i, n) in nodes.enumerated() where !down.contains(i) { n.handleTimers(now: now) }
            pump()
        }
        now = end
    }

    func peerKeys(_ i: Int) -> Set<IdentityPublicKey> { Set(nodes[i].peers.map(\.key)) }
    func key(_ i: Int) -> IdentityPublicKey { nodes[i].identity.publicKey }
}

@Suite struct MeshNodeTests {
    @Test func meshFormsFromOneSeedWithWireGuardEndpoints() throws {
        let lab = try MeshLab(count: 5)
        for i in 1..<5 { lab.nodes[i].join(seeds: [lab.endpoints[0]], now: lab.now) }
        lab.run(for: .seconds(10))
        for i in 0..<5 {
            #expect(lab.peerKeys(i) == Set((0..<5).filter { $0 != i }.map(lab.key)), "node \(i)")
            let p = lab.nodes[i].peers.first { $0.key == lab.key((i + 1) % 5) }!
            #expect(p.endpoint == Endpoint(.v4(IPv4Address(192, 0, 2, UInt8((i + 1) % 5 + 1))), port: 51820))
        }
    }

    @Test func anUntrustedNodeIsNeverAPeer() throws {
        // Node 4 has a valid key that nobody trusts (it trusts everyone).
        let lab = try MeshLab(count: 5) { i, j in j != 4 || i == 4 }
        for i in 1..<5 { lab.nodes[i].join(seeds: [lab.endpoints[0]], now: lab.now) }
        lab.run(for: .seconds(20))
        for i in 0..<4 {
            #expect(!lab.peerKeys(i).contains(lab.key(4)))
            #expect(lab.peerKeys(i).count == 3)
            #expect(lab.nodes[i].members.allSatisfy { $0.id != lab.key(4).raw })
        }
        #expect((lab.nodes[0].drops[.untrustedSender] ?? 0) > 0)
    }

    @Test func revocationRemovesAPeerAtOnce() throws {
        let lab = try MeshLab(count: 3)
        for i in 1..<3 { lab.nodes[i].join(seeds: [lab.endpoints[0]], now: lab.now) }
        lab.run(for: .seconds(5))
        #expect(lab.peerKeys(0).contains(lab.key(2)))
        var t = lab.nodes[0].trust
        try t.remove("n2")
        lab.nodes[0].setTrust(t)
        #expect(!lab.peerKeys(0).contains(lab.key(2)))
        lab.run(for: .seconds(30))
        #expect(!lab.peerKeys(0).contains(lab.key(2)))
        #expect(lab.peerKeys(0) == [lab.key(1)])
    }

    @Test func aFailedNodeLeavesEveryPeerList() throws {
        let lab = try MeshLab(count: 4)
        for i in 1..<4 { lab.nodes[i].join(seeds: [lab.endpoints[0]], now: lab.now) }
        lab.run(for: .seconds(5))
        lab.down.insert(3)
        lab.run(for: .seconds(60))
        for i in 0..<3 { #expect(lab.peerKeys(i) == Set((0..<3).filter { $0 != i }.map(lab.key))) }
    }

    /// A trusted member cannot forge another member's record (it cannot sign for that key).
    @Test func forgedRecordsAreRefused() throws {
        let lab = try MeshLab(count: 3)
        for i in 1..<3 { lab.nodes[i].join(seeds: [lab.endpoints[0]], now: lab.now) }
        lab.run(for: .seconds(5))
        let liar = lab.nodes[1].identity
        // A record naming node 2's key is signed by the liar: the signature check fails.
        let fake = MemberRecord(identity: liar, incarnation: 50, controlEndpoint: Endpoint("203.0.113.66:51821")!,
                                wireGuardEndpoints: [Endpoint("203.0.113.66:51820")!])
        var forged = fake.encoded
        forged.replaceSubrange(1..<33, with: lab.key(2).raw.bytes)
        var sealer = EnvelopeSealer(identity: liar, epoch: 99)
        let packet = SWIMPacket(sender: liar.publicKey.raw, message: .gossip,
                                updates: [.alive(member: lab.key(2).raw, incarnation: 50, endpoint: Endpoint("203.0.113.66:51821")!, metadata: forged)])
        lab.nodes[0].receive(try sealer.seal(.swim, payload: SWIMCodec.encode(packet)), from: lab.endpoints[1], now: lab.now)
        #expect((lab.nodes[0].drops[.badSignature] ?? 0) >= 1)
        #expect(lab.nodes[0].peers.first { $0.key == lab.key(2) }?.endpoint == Endpoint("192.0.2.3:51820"))
        // Its own record under someone else's name is refused too.
        let own = SWIMPacket(sender: liar.publicKey.raw, message: .gossip,
                             updates: [.alive(member: lab.key(2).raw, incarnation: 60, endpoint: Endpoint("203.0.113.66:51821")!, metadata: fake.encoded)])
        lab.nodes[0].receive(try sealer.seal(.swim, payload: SWIMCodec.encode(own)), from: lab.endpoints[1], now: lab.now)
        #expect(lab.nodes[0].peers.first { $0.key == lab.key(2) }?.endpoint == Endpoint("192.0.2.3:51820"))
    }
}
