// MemberTable (the compact member storage of SWIMMembership) against a slow
// reference: a dictionary and an array kept in the order the table promises
// (insertion order, swap-removal).
import Testing
import MeshBase
@testable import MeshSWIM
import MeshTestKit

private func member(_ rng: inout SeededRandom, _ i: Int) -> Member {
    let id = Bytes32((0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) })!
    return Member(id: id, endpoint: Endpoint(.v4(IPv4Address(10, 0, UInt8(i / 250 % 250), UInt8(i % 250 + 1))), port: 7946),
                  metadata: [UInt8(truncatingIfNeeded: i)], incarnation: UInt64(i), state: .alive)
}

@Suite struct MemberTableTests {
    @Test(arguments: [1, 2, 3])
    func agreesWithADictionaryUnderRandomInsertsAndRemovals(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var table = MemberTable()
        var order: [Member] = []                // what the slots must hold, in slot order
        var known: [Bytes32: Member] = [:]
        var gone: [Bytes32] = []                // removed ids: must not be found
        for step in 0..<6_000 {
            // Grow to a few hundred members, shrink, grow again: every probe-run shape the index sees.
            let removeBias = (step / 1_500) % 2 == 0 ? 3 : 7
            if order.isEmpty || Int.random(in: 0..<10, using: &rng) >= removeBias {
                let m = member(&rng, step)
                #expect(table.append(m) == order.count)
                order.append(m)
                known[m.id] = m
            } else {
                let s = Int.random(in: 0..<order.count, using: &rng)
                let removed = order[s].id
                let moved = table.remove(slot: s)
                let last = order.removeLast()
                if s < order.count { order[s] = last; #expect(moved == order.count) } else { #expect(moved == nil) }
                known[removed] = nil
                gone.append(removed)
            }
            if step % 97 == 0 {
                #expect(table.count == order.count)
                #expect(table.slots.map(\.id) == order.map(\.id))
                for (s, m) in order.enumerated() { #expect(table.slot(of: m.id) == s) }
                for id in gone.suffix(50) where known[id] == nil { #expect(table.slot(of: id) == nil) }
            }
        }
        for (id, m) in known { #expect(table.member(id) == m) }
        #expect(table.count == known.count)
    }

    @Test func slotRoundTripsEveryState() {
        var rng = SeededRandom(seed: 9)
        var table = MemberTable()
        let states: [MemberState] = [.alive, .suspect(since: .seconds(3)), .dead(since: .seconds(4)), .left(since: .seconds(5))]
        for (i, st) in states.enumerated() {
            var m = member(&rng, i)
            m.state = st
            table.append(m)
            #expect(table.member(m.id) == m)
            #expect(table[i].isLive == st.isLive)
        }
    }

    /// The layout is what lets a simulation of 10,000 nodes (10⁸ records) fit in memory.
    @Test func aSlotIsEightyBytes() {
        #expect(MemoryLayout<MemberTable.Slot>.stride == 80)
    }

    /// Simulated nodes started converged share each member's metadata buffer instead of copying it.
    @Test func convergedSimulationSharesMetadata() {
        let sim = SWIMSimulator(nodes: 5, seed: 3, metadata: { i in [UInt8](repeating: UInt8(i), count: 100) })
        sim.assumeConverged()
        func address(_ a: [UInt8]) -> UnsafeRawPointer? { a.withUnsafeBytes { $0.baseAddress } }
        let own = address(sim.node(2).membership.metadata)
        #expect(own != nil)
        for o in [0, 1, 3, 4] {
            #expect(address(sim.node(o).membership.member(sim.node(2).id)!.metadata) == own)
        }
    }
}
