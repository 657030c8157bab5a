// Control-plane attacks (issue 8, item 3) on MeshNodes in the in-memory lab:
// replayed, forged, truncated and oversized datagrams, a trusted member that
// lies about others, an untrusted node flooding pings. Each attack must change
// no state it should not, send nothing back that it should not, and be counted
// by reason (the counters are the metrics' meshguard_control_drops_total).
import Testing
import MeshBase
import MeshCrypto
import MeshIdentity
import MeshProtocol
import MeshSWIM
@testable import MeshCore

@Suite struct ControlPlaneAttackTests {
    /// A formed mesh of `count` nodes.
    func mesh(_ count: Int = 4) throws -> MeshLab {
        let lab = try MeshLab(count: count)
        for i in 1..<count { lab.nodes[i].join(seeds: [lab.endpoints[0]], now: lab.now) }
        lab.run(for: .seconds(5))
        for i in 0..<count { #expect(lab.routedKeys(i).count == count - 1, "node \(i) has a full mesh") }
        return lab
    }

    /// What an attack must not change: members (state, incarnation, endpoint, record) and peers.
    func state(_ n: MeshNode) -> [String] {
        n.members.map { "\($0.id) \($0.incarnation) \($0.state) \($0.endpoint) \($0.metadata.hashValue)" }.sorted()
            + n.peers.map { "\($0.key) \(String(describing: $0.endpoint)) \($0.routed)" }.sorted()
    }

    func drops(_ n: MeshNode) -> UInt64 { n.drops.values.reduce(0, +) }

    /// Seals `updates` (and `message`) as gossip from `who`.
    func sealed(_ who: Identity, epoch: UInt64 = 99, _ message: SWIMMessage = .gossip, _ updates: [GossipUpdate] = []) throws -> [UInt8] {
        var sealer = EnvelopeSealer(identity: who, epoch: epoch)
        return try sealer.seal(.swim, payload: SWIMCodec.encode(SWIMPacket(sender: who.publicKey.raw, message: message, updates: updates)))
    }

    /// Hands `bytes` to node `i` as from `source` and returns what it sends back at once.
    func deliver(_ lab: MeshLab, _ i: Int, _ bytes: [UInt8], from source: Endpoint) -> Int {
        lab.nodes[i].receive(bytes, from: source, now: lab.now)
        var sent = 0
        while lab.nodes[i].pollTransmit() != nil { sent += 1 }
        return sent
    }

    @Test func replayedDatagramsAreDroppedAndChangeNothing() throws {
        let lab = try mesh()
        // A genuine gossip datagram from node 1, delivered once.
        let genuine = try sealed(lab.nodes[1].identity, epoch: 5, .ping(sequence: 7, target: lab.key(0).raw))
        #expect(deliver(lab, 0, genuine, from: lab.endpoints[1]) == 1)   // the ack
        let before = state(lab.nodes[0])
        for _ in 0..<100 { #expect(deliver(lab, 0, genuine, from: lab.endpoints[1]) == 0) }
        // From elsewhere too: the replay window is per sender, not per address.
        #expect(deliver(lab, 0, genuine, from: Endpoint("203.0.113.5:40000")!) == 0)
        #expect(lab.nodes[0].drops[.replayed] == 101)
        #expect(state(lab.nodes[0]) == before)
        // An older epoch of the same sender is a replay too.
        let old = try sealed(lab.nodes[1].identity, epoch: 4, .ping(sequence: 8, target: lab.key(0).raw))
        #expect(deliver(lab, 0, old, from: lab.endpoints[1]) == 0)
        #expect(lab.nodes[0].drops[.replayed] == 102)
    }

    @Test func truncatedAndForgedDatagramsAreDroppedAndChangeNothing() throws {
        let lab = try mesh()
        let victim = lab.nodes[0]
        let genuine = try sealed(lab.nodes[1].identity, epoch: 5, .ping(sequence: 7, target: lab.key(0).raw),
                                 [.suspect(member: lab.key(2).raw, incarnation: 0, from: lab.key(1).raw)])
        let before = state(victim), dropsBefore = drops(victim)
        var attempts: UInt64 = 0
        // Every truncation.
        for n in 0..<genuine.count {
            #expect(deliver(lab, 0, Array(genuine[..<n]), from: lab.endpoints[1]) == 0, "prefix \(n)")
            attempts += 1
        }
        // Every single-bit flip of every byte.
        for i in genuine.indices {
            for bit in 0..<8 {
                var f = genuine
                f[i] ^= UInt8(1) << UInt8(bit)
                #expect(deliver(lab, 0, f, from: lab.endpoints[1]) == 0, "bit \(bit) of byte \(i)")
                attempts += 1
            }
        }
        // Signed by node 1 but naming node 2 as the sender.
        var impostor = genuine
        impostor.replaceSubrange(4..<36, with: lab.key(2).raw.bytes)
        #expect(deliver(lab, 0, impostor, from: lab.endpoints[2]) == 0)
        attempts += 1
        #expect(drops(victim) - dropsBefore == attempts)
        #expect((victim.drops[.badSignature] ?? 0) > 0 && (victim.drops[.truncated] ?? 0) > 0 && (victim.drops[.badMagic] ?? 0) > 0)
        #expect(state(victim) == before)
        // The genuine datagram is still accepted afterwards: the forgeries spent no counter.
        #expect(deliver(lab, 0, genuine, from: lab.endpoints[1]) == 1)
    }

    @Test func oversizedDatagramsAreDropped() throws {
        let lab = try mesh()
        let victim = lab.nodes[0], liar = lab.nodes[1].identity
        let before = state(victim)
        // A correctly signed envelope from a trusted member whose payload is over the limit.
        for size in [Envelope.maxPayload + 1, 4_000, 65_000] {
            var w: [UInt8] = Envelope.magic + [Envelope.version, EnvelopeKind.swim.rawValue] + liar.publicKey.raw.bytes
            w += withUnsafeBytes(of: UInt64(200).bigEndian, Array.init) + withUnsafeBytes(of: UInt64(size).bigEndian, Array.init)
            w += [UInt8(size >> 8 & 0xff), UInt8(size & 0xff)] + [UInt8](repeating: 0x41, count: size)
            w += liar.signingKey.sign(Array("meshguard envelope v1".utf8) + w)
            #expect(deliver(lab, 0, w, from: lab.endpoints[1]) == 0)
        }
        #expect(victim.drops[.tooLarge] == 3)
        // The largest UDP datagram, random.
        var rng = SeededRandom(seed: 3)
        let junk = (0..<65_507).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(deliver(lab, 0, Envelope.magic + junk, from: lab.endpoints[1]) == 0)
        // A SWIM packet within the limit whose counts promise far more than it holds.
        var sealer = EnvelopeSealer(identity: liar, epoch: 300)
        var payload = SWIMCodec.encode(SWIMPacket(sender: liar.publicKey.raw, message: .gossip,
                                                  updates: [.left(member: lab.key(2).raw, incarnation: 0)]))
        if let i = payload.lastIndex(of: 1) { payload[i] = 0xff }
        _ = deliver(lab, 0, try sealer.seal(.swim, payload: payload + [UInt8](repeating: 0, count: 40)), from: lab.endpoints[1])
        #expect(state(victim) == before)
    }

    /// A trusted member says another is dead or has left: here that is only a
    /// suspicion; the member answers its probes, so it stays a peer throughout.
    @Test func aTrustedLiarCannotEvictAMember() throws {
        let lab = try mesh()
        let liar = lab.nodes[1].identity
        let inc = try #require(lab.nodes[0].members.first { $0.id == lab.key(3).raw }).incarnation
        var epoch: UInt64 = 100
        func lie(_ u: GossipUpdate) throws {
            epoch += 1
            _ = deliver(lab, 0, try sealed(liar, epoch: epoch, .gossip, [u]), from: lab.endpoints[1])
            lab.pump()
            #expect(lab.routedKeys(0).contains(lab.key(3)), "\(u): still a routed peer at once")
        }
        try lie(.dead(member: lab.key(3).raw, incarnation: inc, from: liar.publicKey.raw))
        try lie(.left(member: lab.key(3).raw, incarnation: inc))
        try lie(.dead(member: lab.key(3).raw, incarnation: inc, from: lab.key(3).raw))   // "it said so itself"
        // The lies are told on to everyone; the member is probed and answers.
        for _ in 0..<20 {
            lab.run(for: .milliseconds(500))
            for i in [0, 1, 2] { #expect(lab.routedKeys(i).contains(lab.key(3)), "node \(i)") }
        }
        for i in 0..<4 {
            #expect(lab.nodes[i].members.allSatisfy { $0.state.isLive }, "node \(i)")
            #expect(lab.routedKeys(i).count == 3, "node \(i)")
        }
    }

    /// An accusation at an incarnation the accused never signed could never be
    /// refuted (at 2^64-1 the refutation would overflow): dropped and counted.
    @Test func accusationsAtUnsignedIncarnationsAreDropped() throws {
        let lab = try mesh()
        let liar = lab.nodes[1].identity
        let genuine = try #require(lab.nodes[0].members.first { $0.id == lab.key(3).raw })
        let before0 = state(lab.nodes[0]), before3 = state(lab.nodes[3]), own3 = lab.nodes[3].currentRecord.incarnation
        var epoch: UInt64 = 100
        func send(_ to: Int, _ updates: [GossipUpdate]) throws {
            epoch += 1
            _ = deliver(lab, to, try sealed(liar, epoch: epoch, .gossip, updates), from: lab.endpoints[1])
        }
        for i in [genuine.incarnation + 1, genuine.incarnation + 1_000, .max] {
            try send(0, [.suspect(member: lab.key(3).raw, incarnation: i, from: liar.publicKey.raw)])
            try send(0, [.dead(member: lab.key(3).raw, incarnation: i, from: liar.publicKey.raw)])
            try send(0, [.left(member: lab.key(3).raw, incarnation: i)])
            // To the accused itself.
            try send(3, [.suspect(member: lab.key(3).raw, incarnation: i, from: liar.publicKey.raw)])
            try send(3, [.dead(member: lab.key(3).raw, incarnation: i, from: liar.publicKey.raw)])
        }
        #expect(lab.nodes[0].drops[.unsignedIncarnation] == 9)
        #expect(lab.nodes[3].drops[.unsignedIncarnation] == 6)
        #expect(state(lab.nodes[0]) == before0)
        #expect(state(lab.nodes[3]) == before3 && lab.nodes[3].currentRecord.incarnation == own3)
        // In a push-pull, with node 3's genuine record carried along.
        epoch += 1
        let entry = MemberEntry(member: lab.key(3).raw, incarnation: .max, status: .suspect, endpoint: genuine.endpoint, metadata: genuine.metadata)
        let pp = PushPull(exchange: 9, isReply: false, isJoin: false, part: 0, parts: 1, entries: [entry])
        _ = deliver(lab, 0, try sealed(liar, epoch: epoch, .pushPull(pp)), from: lab.endpoints[1])
        #expect(lab.nodes[0].drops[.unsignedIncarnation] == 10)
        #expect(try #require(lab.nodes[0].members.first { $0.id == lab.key(3).raw }).incarnation == genuine.incarnation)
        // An alive about node 3 itself at 2^64-1 with garbage for a record: refused, no refutation.
        epoch += 1
        _ = deliver(lab, 3, try sealed(liar, epoch: epoch, .gossip, [.alive(member: lab.key(3).raw, incarnation: .max, endpoint: lab.endpoints[3], metadata: [1, 2, 3])]),
                    from: lab.endpoints[1])
        #expect(lab.nodes[3].currentRecord.incarnation == own3)
        // An accusation at the current incarnation is refuted as usual.
        lab.run(for: .seconds(10))
        for i in 0..<4 { #expect(lab.routedKeys(i).count == 3, "node \(i)") }
    }

    /// An untrusted node flooding pings gets no answer and leaves no state.
    @Test func anUntrustedPingFloodIsDroppedWithoutAnswer() throws {
        let lab = try mesh()
        let stranger = Identity.generate()
        let before = state(lab.nodes[0])
        var sent = 0
        for s in 0..<5_000 {
            sent += deliver(lab, 0, try sealed(stranger, epoch: UInt64(s + 1), .ping(sequence: UInt32(s), target: lab.key(0).raw)),
                            from: Endpoint("203.0.113.\(s % 250 + 1):51821")!)
        }
        // Join requests (push-pull) from it too.
        let me = MemberEntry(member: stranger.publicKey.raw, incarnation: 1, status: .alive, endpoint: Endpoint("203.0.113.1:51821")!, metadata: [])
        sent += deliver(lab, 0, try sealed(stranger, epoch: 9_999, .pushPull(PushPull(exchange: 1, isReply: false, isJoin: true, part: 0, parts: 1, entries: [me]))),
                        from: Endpoint("203.0.113.1:51821")!)
        #expect(sent == 0)
        #expect(lab.nodes[0].drops[.untrustedSender] == 5_001)
        #expect(state(lab.nodes[0]) == before)
        #expect(!lab.nodes[0].members.contains { $0.id == stranger.publicKey.raw })
    }

    /// A leave is still immediate everywhere: the leaving member tells every member itself.
    @Test func aLeaveReachesEveryMemberAtOnce() throws {
        let lab = try mesh(6)
        lab.nodes[5].leave(now: lab.now)
        lab.pump()
        for i in 0..<5 { #expect(!lab.peerKeys(i).contains(lab.key(5)), "node \(i)") }
    }
}
