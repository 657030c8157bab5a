// The state machine driven by hand: refutation, stale updates, buddy system, leave.
import Testing
import MeshBase
import MeshSWIM

private func key(_ n: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: n, count: 32))! }
private func ep(_ n: UInt8) -> Endpoint { Endpoint(.v4(IPv4Address(192, 0, 2, n)), port: 7946) }

private func membership(_ n: UInt8, now: Instant = .seconds(1)) -> SWIMMembership {
    try! SWIMMembership(id: key(n), endpoint: ep(n), metadata: [n], random: SeededRandom(seed: UInt64(n)), now: now)
}

private func drain(_ m: inout SWIMMembership) -> [(SWIMPacket, Endpoint)] {
    var out: [(SWIMPacket, Endpoint)] = []
    while let t = m.pollTransmit() { out.append((t.packet, t.to)) }
    return out
}

private func events(_ m: inout SWIMMembership) -> [MembershipEvent] {
    var out: [MembershipEvent] = []
    while let e = m.pollEvent() { out.append(e) }
    return out
}

@Suite struct MembershipTests {
    @Test func staleUpdatesNeverOverwriteNewerState() {
        var a = membership(1)
        let now = Instant.seconds(2)
        a.receive(SWIMPacket(sender: key(2), message: .gossip, updates: [.alive(member: key(2), incarnation: 5, endpoint: ep(2), metadata: [9, 9])]), from: ep(2), now: now)
        #expect(a.member(key(2))?.metadata == [9, 9])
        // Lower incarnation: alive, suspect, dead, left and a push-pull entry all change nothing.
        let stale: [GossipUpdate] = [.alive(member: key(2), incarnation: 4, endpoint: ep(3), metadata: [1]),
                                     .suspect(member: key(2), incarnation: 4, from: key(3)),
                                     .dead(member: key(2), incarnation: 3, from: key(3)),
                                     .left(member: key(2), incarnation: 4)]
        _ = events(&a)
        a.receive(SWIMPacket(sender: key(3), message: .gossip, updates: stale), from: ep(3), now: now)
        let pp = PushPull(exchange: 1, isReply: true, isJoin: false, part: 0, parts: 1,
                          entries: [MemberEntry(member: key(2), incarnation: 4, status: .alive, endpoint: ep(4), metadata: [0])])
        a.receive(SWIMPacket(sender: key(3), message: .pushPull(pp)), from: ep(3), now: now)
        #expect(a.member(key(2)) == Member(id: key(2), endpoint: ep(2), metadata: [9, 9], incarnation: 5, state: .alive))
        #expect(events(&a).isEmpty)
        // The same incarnation with other data is not an update either: only the owner bumps it.
        a.receive(SWIMPacket(sender: key(3), message: .gossip, updates: [.alive(member: key(2), incarnation: 5, endpoint: ep(2), metadata: [7])]), from: ep(3), now: now)
        #expect(a.member(key(2))?.metadata == [9, 9])
        // A higher incarnation wins.
        a.receive(SWIMPacket(sender: key(2), message: .gossip, updates: [.alive(member: key(2), incarnation: 6, endpoint: ep(2), metadata: [7])]), from: ep(2), now: now)
        #expect(a.member(key(2))?.metadata == [7])
        #expect(events(&a) == [.updated(Member(id: key(2), endpoint: ep(2), metadata: [7], incarnation: 6, state: .alive))])
    }

    /// A member that hears it is suspected refutes with a higher incarnation,
    /// and the ack it sends already carries the refutation.
    @Test func suspectedMemberRefutesInItsAck() {
        var b = membership(2)
        let now = Instant.seconds(3)
        let ping = SWIMPacket(sender: key(1), message: .ping(sequence: 77, target: key(2)),
                              updates: [.suspect(member: key(2), incarnation: 0, from: key(1))])
        b.receive(ping, from: ep(1), now: now)
        #expect(b.incarnation == 1 && b.counters.refutations == 1 && b.healthScore == 1)
        let out = drain(&b)
        #expect(out.count == 1 && out[0].1 == ep(1))
        #expect(out[0].0.message == .ack(sequence: 77))
        #expect(out[0].0.updates.contains(.alive(member: key(2), incarnation: 1, endpoint: ep(2), metadata: [2])))
        // An old accusation after the refutation changes nothing.
        b.receive(SWIMPacket(sender: key(3), message: .gossip, updates: [.dead(member: key(2), incarnation: 0, from: key(3))]), from: ep(3), now: now)
        #expect(b.incarnation == 1)
    }

    /// Probing a suspect piggybacks the suspicion first (Lifeguard's buddy system);
    /// a probe that gets no ack, direct or indirect, makes the target suspect, then dead.
    @Test func probeFailureSuspectsThenDeclaresDeadWithBuddyPing() {
        var a = membership(1, now: .zero)
        let members: [GossipUpdate] = (2...5).map { .alive(member: key($0), incarnation: 0, endpoint: ep($0), metadata: []) }
        a.receive(SWIMPacket(sender: key(2), message: .gossip, updates: members), from: ep(2), now: .zero)
        _ = events(&a)
        var now = Instant.zero
        var suspectedAt: Instant?, deadAt: Instant?, buddyPings = 0, pingReqs = 0
        // Nobody ever answers.
        while now < .seconds(120), deadAt == nil {
            now = a.nextDeadline()!
            a.handleTimers(now: now)
            for (p, _) in drain(&a) {
                if case .pingReq = p.message { pingReqs += 1 }
                if case .ping(_, let target) = p.message, case .suspect(target, _, _)? = p.updates.first { buddyPings += 1 }
            }
            for e in events(&a) {
                if case .suspect = e, suspectedAt == nil { suspectedAt = now }
                if case .dead = e { deadAt = now }
            }
        }
        #expect(suspectedAt != nil && deadAt != nil && pingReqs > 0 && buddyPings > 0)
        // N = 5 (k = 2 confirmations expected, none come): the maximum, 6 * 4 * max(1, log10 5) * 0.5 s = 12 s.
        if let s = suspectedAt, let d = deadAt { #expect(d - s == .seconds(12)) }
        // Every probe failed and no nacks came: health fell to the floor, probes slowed down.
        #expect(a.healthScore == 7)
    }

    @Test func metadataOverTheLimitIsRefused() {
        #expect(throws: SWIMError.metadataTooLarge(size: 513, limit: 512)) {
            _ = try SWIMMembership(id: key(1), endpoint: ep(1), metadata: [UInt8](repeating: 0, count: 513), random: SeededRandom(seed: 1), now: .zero)
        }
        var a = membership(1)
        #expect(throws: SWIMError.self) { try a.update(metadata: [UInt8](repeating: 0, count: 600), now: .seconds(2)) }
        #expect(a.incarnation == 0)
    }

    @Test func encodedSizesFollowTheDocumentedLayout() {
        let six = Endpoint("[2001:db8::1]:7946")!
        #expect(SWIMPacket(sender: key(1), message: .ping(sequence: 1, target: key(2))).encodedSize == 34 + 36)
        #expect(SWIMPacket(sender: key(1), message: .ack(sequence: 1)).encodedSize == 38)
        #expect(SWIMMessage.pingReq(sequence: 1, target: key(2), targetEndpoint: six, wantNack: true).encodedSize == 4 + 32 + 19 + 1)
        #expect(GossipUpdate.alive(member: key(1), incarnation: 1, endpoint: ep(1), metadata: [1, 2, 3]).encodedSize == 41 + 7 + 2 + 3)
        #expect(GossipUpdate.suspect(member: key(1), incarnation: 1, from: key(2)).encodedSize == 73)
        #expect(GossipUpdate.left(member: key(1), incarnation: 1).encodedSize == 41)
        let pp = PushPull(exchange: 1, isReply: false, isJoin: true, part: 0, parts: 1,
                          entries: [MemberEntry(member: key(1), incarnation: 1, status: .alive, endpoint: six, metadata: [1])])
        #expect(SWIMMessage.pushPull(pp).encodedSize == 11 + 32 + 1 + 8 + 19 + 2 + 1)
    }
}
