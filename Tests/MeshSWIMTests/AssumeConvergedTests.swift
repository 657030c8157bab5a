// Starting from a converged view (SWIMMembership.assumeConverged and
// SWIMSimulator.assumeConverged), as the SWIM benchmark (bench/swim) does for
// meshes too large to join through one seed.
import Testing
import MeshBase
import MeshSWIM
import MeshTestKit

private func key(_ n: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: n, count: 32))! }
private func ep(_ n: UInt8) -> Endpoint { Endpoint(.v4(IPv4Address(192, 0, 2, n)), port: 7946) }

@Suite struct AssumeConvergedTests {
    @Test func membershipStartsWithEveryMemberAliveAndNothingToSay() throws {
        var a = try SWIMMembership(id: key(1), endpoint: ep(1), random: SeededRandom(seed: 1), now: .seconds(1))
        let others = (1...6).map { n in Member(id: key(n), endpoint: ep(n), metadata: [n], incarnation: UInt64(n), state: .alive) }
        a.assumeConverged(with: others)        // includes the local member, which is skipped
        #expect(a.members.map(\.id) == (2...6).map { key($0) })
        #expect(a.members.allSatisfy { $0.state == .alive && $0.incarnation == UInt64($0.metadata[0]) && $0.metadata.count == 1 })
        #expect(a.clusterSize == 6 && a.liveMemberCount == 5)
        #expect(a.pollEvent() == nil && a.pendingBroadcasts == 0 && a.pollTransmit() == nil)
        // Members already known are left as they are.
        a.assumeConverged(with: [Member(id: key(2), endpoint: ep(9), metadata: [], incarnation: 0, state: .alive)])
        #expect(a.member(key(2))?.endpoint == ep(2) && a.members.count == 5)
        // The probe round covers them: five probe periods ping five distinct members.
        var targets = Set<Endpoint>()
        var now = Instant.seconds(1)
        for _ in 0..<5 {
            now = a.nextDeadline()!
            a.handleTimers(now: now)
            while let (p, to) = a.pollTransmit() {
                if case .ping(let seq, _) = p.message {
                    targets.insert(to)
                    a.receive(SWIMPacket(sender: key(0), message: .ack(sequence: seq)), from: to, now: now)
                }
            }
        }
        #expect(targets.count == 5)
    }

    @Test func simulatedMeshIsConvergedAtOnceAndStaysSo() {
        let sim = SWIMSimulator(nodes: 40, seed: 77)
        sim.assumeConverged(Array(0..<39))
        #expect(sim.converged(Array(0..<39)))
        #expect(!sim.converged())                       // node 39 has not joined
        #expect(sim.nodes.allSatisfy { $0.events.isEmpty })
        sim.run(for: .seconds(30))
        #expect(sim.converged(Array(0..<39)))
        #expect(sim.nodes.allSatisfy { $0.membership.counters.suspicionsStarted == 0 })
        // The last node joins the running mesh through one seed.
        sim.join(39, seeds: [0])
        #expect(sim.run(until: { $0.converged() }, timeout: .seconds(10)) != nil)
    }
}
