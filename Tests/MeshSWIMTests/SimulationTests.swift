// SWIM on the simulated network (MeshTestKit.SWIMSimulator): joins, failures,
// restarts, loss, partitions, leave, metadata. Virtual time only; each seed
// makes one repeatable run. Bounds are derived in the comments and in docs/swim.md.
import Testing
import MeshBase
import MeshSWIM
import MeshTestKit

/// Seconds since `start`.
private func secs(_ t: Instant, since start: Instant) -> Double { (t - start).seconds }

/// The time by which every running observer saw `subject` in a state matching `match` (first such event each), or nil.
private func allSaw(_ sim: SWIMSimulator, _ subject: Int, since: Instant, _ match: (MembershipEvent) -> Bool) -> Instant? {
    var latest = since
    for o in sim.nodes.indices where o != subject && sim.node(o).isRunning {
        guard let t = sim.firstEvent(about: subject, seenBy: o, since: since, where: match) else { return nil }
        latest = max(latest, t)
    }
    return latest
}

private func isDead(_ e: MembershipEvent) -> Bool { if case .dead = e { return true } else { return false } }

@Suite struct SimulationTests {
    @Test func threeNodesJoinSeeEachOtherAndLeave() {
        let sim = SWIMSimulator(nodes: 3, seed: 1)
        sim.joinAll(seed: 0)
        // Two push-pull round trips (1-2 ms each) and a gossip round: well under a second.
        let t = sim.run(until: { $0.converged() }, timeout: .seconds(1))
        #expect(t != nil)
        for i in 0..<3 { #expect(sim.node(i).membership.members.count == 2) }
        sim.leave(2)
        // The left update goes to both others at once; allow a few gossip rounds.
        sim.run(for: .seconds(2))
        for i in 0..<2 {
            guard case .left = sim.state(of: 2, seenBy: i) else { Issue.record("node \(i) sees \(String(describing: sim.state(of: 2, seenBy: i)))"); continue }
        }
        #expect(sim.node(2).membership.nextDeadline() == nil)   // leave disseminated, nothing pending
        sim.run(for: .seconds(60))
        #expect(sim.converged([0, 1]))
        #expect(sim.stats.largestPacket <= SWIMConfig.lan.maxMessageSize)
    }

    /// All nodes join through node 0 at once. Each joiner's push-pull reaches
    /// the seed in one round trip; from then on the seed is the only holder of
    /// N - 1 alive updates (50 bytes, 23 to a message). It sends ~15 gossip
    /// messages a second (3 every 200 ms) plus its acks, so pushing each update
    /// out its λ·⌈log10(N+1)⌉ times takes (N - 1) * limit / (15 * 23) s:
    /// 1.1 s for 50 nodes (limit 8), 6.9 s for 200 (limit 12). Relays repeat
    /// this in O(log N) overlapping stages; we allow 10 s and 30 s.
    @Test(arguments: [(50, 10.0), (200, 30.0)])
    func manyNodesConvergeFromOneSeed(n: Int, bound: Double) {
        let sim = SWIMSimulator(nodes: n, seed: UInt64(n))
        let start = sim.now
        sim.joinAll(seed: 0)
        let t = sim.run(until: { $0.converged() }, step: .milliseconds(250), timeout: .seconds(bound))
        #expect(t != nil, "\(n) nodes did not converge within \(bound) s")
        if let t {
            let perSecond = Double(sim.stats.bytes) / Double(n) / secs(t, since: start)
            print("SWIM: \(n) nodes converged in \(secs(t, since: start)) s; \(Int(perSecond)) B/member/s during the join; largest packet \(sim.stats.largestPacket) B")
        }
        #expect(sim.stats.largestPacket <= SWIMConfig.lan.maxMessageSize)
        // Steady state afterwards: a minute of probing and anti-entropy only.
        let before = sim.stats.bytes, t0 = sim.now
        sim.run(for: .seconds(60))
        let steady = Double(sim.stats.bytes - before) / Double(n) / (sim.now - t0).seconds
        print("SWIM: \(n) nodes steady state \(Int(steady)) B/member/s")
        #expect(sim.converged())
        #expect(sim.nodes.allSatisfy { $0.membership.counters.deadDeclared == 0 })
    }

    /// A killed node is declared dead by everyone. Bound: someone probes it
    /// within one probe round, the probe fails after one probe interval, and
    /// the suspicion lasts between the minimum (4 * log10(50) * 0.5 s = 3.4 s,
    /// reached with 2 confirmations) and the maximum (6 * 3.4 = 20.4 s); then
    /// the dead update spreads in a few gossip rounds.
    @Test func killedNodeIsDeclaredDeadThenReaped() {
        var config = SWIMConfig.lan
        config.deadReapTime = .seconds(120)
        let sim = SWIMSimulator(nodes: 50, config: config, seed: 7)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(30)) != nil)
        sim.run(for: .seconds(10))
        let victim = 17
        let killedAt = sim.now
        sim.kill(victim)
        let detected = sim.run(until: { s in allSaw(s, victim, since: killedAt, isDead) != nil }, timeout: .seconds(60))
        #expect(detected != nil)
        guard detected != nil, let all = allSaw(sim, victim, since: killedAt, isDead) else { return }
        let first = sim.nodes.indices.filter { $0 != victim }.compactMap { sim.firstEvent(about: victim, seenBy: $0, since: killedAt, where: isDead) }.min()!
        let minimum = Scaling.suspicionTimeout(mult: 4, members: 50, interval: config.probeInterval).seconds
        print("SWIM: killed node dead at the first node after \(secs(first, since: killedAt)) s, at all after \(secs(all, since: killedAt)) s")
        #expect(secs(first, since: killedAt) >= minimum)                       // never before the minimum suspicion
        #expect(secs(all, since: killedAt) <= 1 + 1 + minimum * 6 + 2)           // probe round, interval, max suspicion, gossip
        // Nobody else was declared dead along the way.
        for o in sim.nodes.indices where o != victim { #expect(sim.node(o).membership.members.filter { if case .dead = $0.state { return true } else { return false } }.count == 1) }
        // Reaped 120 s after each node declared it dead.
        sim.run(until: all + .seconds(121))
        for o in sim.nodes.indices where o != victim {
            #expect(sim.node(o).membership.member(sim.node(victim).id) == nil)
            #expect(sim.firstEvent(about: victim, seenBy: o, since: killedAt) { if case .reaped = $0 { return true } else { return false } } != nil)
        }
        #expect(sim.firstEvent(about: victim, seenBy: 1, since: killedAt) { if case .reaped = $0 { return true } else { return false } }! >= all + .seconds(119))
    }

    /// A node that crashed and restarts with a higher incarnation is alive again everywhere.
    @Test func restartedNodeIsAliveAgainEverywhere() {
        let sim = SWIMSimulator(nodes: 30, seed: 11)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(30)) != nil)
        let victim = 5
        let oldIncarnation = sim.node(victim).membership.incarnation
        sim.kill(victim)
        let killedAt = sim.now
        #expect(sim.run(until: { s in allSaw(s, victim, since: killedAt, isDead) != nil }, timeout: .seconds(60)) != nil)
        let restartedAt = sim.now
        sim.restart(victim, seeds: [0])
        let back = sim.run(until: { $0.converged() }, timeout: .seconds(10))
        #expect(back != nil)
        if let back { print("SWIM: restarted node alive everywhere after \(secs(back, since: restartedAt)) s") }
        for o in sim.nodes.indices where o != victim {
            #expect(sim.node(o).membership.member(sim.node(victim).id)!.incarnation > oldIncarnation)
            #expect(sim.firstEvent(about: victim, seenBy: o, since: restartedAt) { if case .aliveAgain = $0 { return true } else { return false } } != nil)
        }
    }

    /// A node that restarts having forgotten its incarnation (0, below what
    /// the others hold) hears its old alive or dead in the seed's push-pull,
    /// refutes above it, and is alive everywhere again.
    @Test func restartedNodeThatForgotItsIncarnationRefutesUpwards() {
        let sim = SWIMSimulator(nodes: 20, seed: 13)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(30)) != nil)
        let victim = 7
        try? sim.update(victim, metadata: [1])
        try? sim.update(victim, metadata: [2])
        sim.run(for: .seconds(5))
        let held = sim.node(0).membership.member(sim.node(victim).id)!.incarnation
        #expect(held == 2)
        sim.kill(victim)
        sim.run(for: .seconds(3))
        sim.restart(victim, incarnation: 0, seeds: [0])
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(30)) != nil)
        #expect(sim.node(victim).membership.incarnation > held)
        // Alive everywhere; the last of its refutations may still be in flight for a few gossip rounds.
        sim.run(for: .seconds(5))
        for o in sim.nodes.indices where o != victim {
            #expect(sim.node(o).membership.member(sim.node(victim).id)?.incarnation == sim.node(victim).membership.incarnation)
        }
    }

    /// 50 nodes, 10 minutes, 10 % loss on every packet, LAN defaults: false
    /// suspicions happen (a direct and three indirect probes can all fail) but
    /// are refuted; no live, reachable node is ever declared dead.
    @Test(arguments: [42, 43, 44] as [UInt64])
    func falseSuspicionsUnderLossAreRefuted(seed: UInt64) {
        let sim = SWIMSimulator(nodes: 50, conditions: .init(loss: 0.10, latency: .milliseconds(2), jitter: .milliseconds(3)), seed: seed)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(60)) != nil)
        let start = sim.now
        sim.run(for: .seconds(600))
        var suspicions = 0, falseDead = 0
        for n in sim.nodes {
            for (t, e) in n.events where t >= start {
                if case .suspect = e { suspicions += 1 }
                if case .dead = e { falseDead += 1 }
            }
        }
        let refutations = sim.nodes.reduce(0) { $0 + $1.membership.counters.refutations }
        let bytes = Double(sim.stats.bytes) / 50 / (sim.now - start).seconds   // includes the join: an upper bound
        print("SWIM: 10 % loss, 50 nodes, 600 s, seed \(seed): \(suspicions) suspect events, \(refutations) refutations (\(Double(refutations) / 50 * 6) false suspicions per member per hour), \(falseDead) false dead; \(Int(bytes)) B/member/s")
        #expect(falseDead == 0)
        #expect(suspicions > 0)          // the loss is real: some probes fail
        #expect(refutations > 0)
        // Suspicions come and go under loss; nobody may hold a running node dead.
        for n in sim.nodes { #expect(n.membership.members.allSatisfy { $0.state.status != .dead }) }
        #expect(sim.stats.lost > sim.stats.sent / 20)
    }

    /// The same run as seed 42 above with memberlist's exact behaviour (no
    /// suspect re-checks): one node misses every copy of a refutation and
    /// declares a live member dead after the maximum suspicion timeout. This
    /// is why `recheckSuspects` exists; the member refutes and is alive again.
    @Test func withoutRecheckingSuspectsALiveMemberIsDeclaredDead() {
        let sim = SWIMSimulator(nodes: 50, config: .memberlistLAN,
                                conditions: .init(loss: 0.10, latency: .milliseconds(2), jitter: .milliseconds(3)), seed: 42)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(60)) != nil)
        let start = sim.now
        sim.run(for: .seconds(600))
        var falseDead = 0
        for n in sim.nodes { for (t, e) in n.events where t >= start { if case .dead = e { falseDead += 1 } } }
        print("SWIM: memberlist behaviour, 10 % loss, 50 nodes, 600 s, seed 42: \(falseDead) false dead")
        #expect(falseDead >= 1)
    }

    /// Two halves that cannot talk mark each other dead; after the heal the
    /// re-join loop (every node, every 30 s, one recently dead member) starts a
    /// push-pull across; the first one makes both sides refute, the next ones
    /// carry the new incarnations. Bound: two re-join intervals.
    @Test func partitionHealsIntoOneMesh() {
        let n = 40
        let sim = SWIMSimulator(nodes: n, seed: 99)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(30)) != nil)
        let a = Array(0..<n / 2), b = Array(n / 2..<n)
        sim.partition([a, b])
        let splitAt = sim.now
        let split = sim.run(until: { s in
            a.allSatisfy { i in b.allSatisfy { j in if case .dead = s.state(of: j, seenBy: i) { return true } else { return false } } }
                && b.allSatisfy { i in a.allSatisfy { j in if case .dead = s.state(of: j, seenBy: i) { return true } else { return false } } }
        }, timeout: .seconds(120))
        #expect(split != nil)
        let health = sim.nodes.map(\.membership.healthScore).max()!
        #expect(sim.converged(a) && sim.converged(b))
        sim.run(for: .seconds(60))
        let healedAt = sim.now
        sim.heal()
        let merged = sim.run(until: { $0.converged() }, timeout: .seconds(60))
        #expect(merged != nil)
        if let split, let merged {
            print("SWIM: partition: halves saw each other dead after \(secs(split, since: splitAt)) s (max health score then \(health)); merged \(secs(merged, since: healedAt)) s after the heal")
        }
    }

    /// The owner changes its metadata: everyone sees the new blob at the new incarnation.
    @Test func metadataUpdatesPropagate() throws {
        let sim = SWIMSimulator(nodes: 20, seed: 5, metadata: { [UInt8($0), 0] })
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(10)) != nil)
        let before = sim.node(3).membership.incarnation
        try sim.update(3, metadata: [3, 1, 4, 1, 5])
        #expect(sim.node(3).membership.incarnation == before + 1)
        let at = sim.now
        let seen = sim.run(until: { s in s.nodes.indices.allSatisfy { $0 == 3 || s.node($0).membership.member(s.node(3).id)?.metadata == [3, 1, 4, 1, 5] } },
                           timeout: .seconds(5))
        #expect(seen != nil)
        for o in sim.nodes.indices where o != 3 {
            #expect(sim.firstEvent(about: 3, seenBy: o, since: at) { if case .updated(let m) = $0 { return m.metadata == [3, 1, 4, 1, 5] } else { return false } } != nil)
        }
    }

    /// Large metadata (the limit, 512 bytes) on 60 nodes: push-pull splits the
    /// state into parts, piggybacking fills messages; nothing exceeds the budget, all converge.
    @Test func messagesNeverExceedTheBudget() {
        let sim = SWIMSimulator(nodes: 60, seed: 3, metadata: { [UInt8](repeating: UInt8($0), count: SWIMConfig.lan.maxMetadataSize) })
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(60)) != nil)
        sim.run(for: .seconds(60))
        #expect(sim.stats.largestPacket <= SWIMConfig.lan.maxMessageSize)
        #expect(sim.stats.largestPacket > SWIMConfig.lan.maxMessageSize / 2)   // the budget was actually used
        #expect(sim.converged())
    }

    /// The WAN preset over a slow, slightly lossy network: 30 nodes converge,
    /// a killed node is declared dead between the minimum suspicion
    /// (6 * log10(30) * 5 s = 44.3 s) and probe period + maximum (6x) + gossip.
    @Test func wanPresetConvergesAndDetectsFailure() {
        let sim = SWIMSimulator(nodes: 30, config: .wan, conditions: .init(loss: 0.02, latency: .milliseconds(80), jitter: .milliseconds(60)), seed: 21)
        sim.joinAll(seed: 0)
        #expect(sim.run(until: { $0.converged() }, step: .milliseconds(500), timeout: .seconds(30)) != nil)
        let killedAt = sim.now
        sim.kill(9)
        let detected = sim.run(until: { s in allSaw(s, 9, since: killedAt, isDead) != nil }, step: .seconds(1), timeout: .seconds(400))
        #expect(detected != nil)
        guard let all = allSaw(sim, 9, since: killedAt, isDead) else { return }
        let minimum = Scaling.suspicionTimeout(mult: 6, members: 30, interval: .seconds(5)).seconds
        let first = sim.nodes.indices.filter { $0 != 9 }.compactMap { sim.firstEvent(about: 9, seenBy: $0, since: killedAt, where: isDead) }.min()!
        print("SWIM: WAN, 30 nodes: killed node dead at the first node after \(secs(first, since: killedAt)) s, at all after \(secs(all, since: killedAt)) s")
        #expect(secs(first, since: killedAt) >= minimum)
        #expect(secs(all, since: killedAt) <= 5 + 5 + minimum * 6 + 5)
        #expect(sim.stats.largestPacket <= SWIMConfig.wan.maxMessageSize)
    }

    /// The simulator drops what it says it drops.
    @Test func simulatorSelfTest() {
        // Total loss: nothing is delivered, nobody learns anybody.
        let lossy = SWIMSimulator(nodes: 5, conditions: .init(loss: 1.0), seed: 8)
        lossy.joinAll(seed: 0)
        lossy.run(for: .seconds(30))
        #expect(lossy.stats.sent > 0 && lossy.stats.delivered == 0 && lossy.stats.lost == lossy.stats.sent)
        #expect(lossy.nodes.allSatisfy { $0.membership.members.isEmpty })
        // 30 % loss: the measured drop rate is 30 % within 3 points.
        let some = SWIMSimulator(nodes: 10, conditions: .init(loss: 0.3), seed: 9)
        some.joinAll(seed: 0)
        some.run(for: .seconds(120))
        let rate = Double(some.stats.lost) / Double(some.stats.sent)
        #expect(abs(rate - 0.3) < 0.03, "drop rate \(rate)")
        // A partition: nothing crosses, everything inside does.
        let parted = SWIMSimulator(nodes: 6, seed: 10)
        parted.partition([[0, 1, 2], [3, 4, 5]])
        parted.joinAll(seed: 0)
        parted.run(for: .seconds(30))
        #expect(parted.stats.partitioned > 0)
        #expect(parted.converged([0, 1, 2]))
        for i in 3..<6 { #expect(parted.node(i).membership.members.isEmpty) }
        // Killed: packets to it are dropped, it sends nothing.
        let killed = SWIMSimulator(nodes: 3, seed: 12)
        killed.joinAll(seed: 0)
        killed.run(for: .seconds(5))
        killed.kill(2)
        let sentBefore = killed.node(2).messagesSent
        killed.run(for: .seconds(5))
        #expect(killed.node(2).messagesSent == sentBefore && killed.stats.toStoppedNode > 0)
        // Same seed, same run.
        let again = SWIMSimulator(nodes: 10, conditions: .init(loss: 0.3), seed: 9)
        again.joinAll(seed: 0)
        again.run(for: .seconds(120))
        #expect(again.stats.sent == some.stats.sent && again.stats.bytes == some.stats.bytes)
    }
}
