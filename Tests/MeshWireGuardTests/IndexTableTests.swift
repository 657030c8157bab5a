// IndexTable: unique random indices even when the generator collides, and
// lookup / remove / replace.
import Testing
import MeshWireGuard

/// Replays a fixed list of outputs, then repeats the last one.
private struct ScriptedRNG: RandomNumberGenerator {
    var outputs: [UInt64]
    var drawn = 0
    mutating func next() -> UInt64 {
        defer { drawn += 1 }
        return outputs[min(drawn, outputs.count - 1)]
    }
}

/// TablesRNG restricted to the low `bits` bits, counting its draws: with a
/// small range, later inserts collide often.
private struct NarrowRNG: RandomNumberGenerator {
    var inner: TablesRNG
    let bits: UInt64
    var drawn = 0
    mutating func next() -> UInt64 {
        drawn += 1
        return inner.next() & (1 << bits - 1)
    }
}

@Suite struct IndexTableTests {
    @Test func collisionsAreDrawnAgain() {
        var table = IndexTable<String>()
        var rng = ScriptedRNG(outputs: [5, 5, 5, 0x1_0000_0005, 7, 5, 7, 9])
        let first = table.insert("a", using: &rng)
        #expect(first == 5)
        // 5 is taken, and so is 0x1_0000_0005 truncated to 32 bits.
        let second = table.insert("b", using: &rng)
        #expect(second == 7)
        #expect(rng.drawn == 5)
        let third = table.insert("c", using: &rng)
        #expect(third == 9)
        #expect(rng.drawn == 8)
        #expect(table.count == 3)
        #expect(table.lookup(5) == "a")
        #expect(table.lookup(7) == "b")
        #expect(table.lookup(9) == "c")
    }

    /// 100,000 inserts from a 2^17 range: many collisions, all retried.
    @Test func hundredThousandUniqueIndices() {
        var table = IndexTable<Int>()
        var rng = NarrowRNG(inner: TablesRNG(seed: 42), bits: 17)
        var indices: [UInt32] = []
        indices.reserveCapacity(100_000)
        for i in 0..<100_000 { indices.append(table.insert(i, using: &rng)) }
        #expect(Set(indices).count == 100_000)
        #expect(indices.allSatisfy { $0 < 1 << 17 })
        #expect(table.count == 100_000)
        #expect(rng.drawn > 150_000)   // collisions happened and were drawn again
        var wrong = 0
        for (i, index) in indices.enumerated() where table.lookup(index) != i { wrong += 1 }
        #expect(wrong == 0)
    }

    @Test func lookupRemoveReplace() {
        var table = IndexTable<String>()
        var rng = TablesRNG(seed: 9)
        let x = table.insert("handshake", using: &rng)
        let y = table.insert("other", using: &rng)
        #expect(x != y)
        #expect(table.lookup(x) == "handshake")
        let replaced = table.replace(x, with: "keypair")
        #expect(replaced)
        #expect(table.lookup(x) == "keypair")
        #expect(table.count == 2)

        let unused = x &+ 1 == y ? x &+ 2 : x &+ 1
        #expect(table.lookup(unused) == nil)
        let replacedUnused = table.replace(unused, with: "nothing")
        #expect(!replacedUnused)
        #expect(table.lookup(unused) == nil)
        let removedUnused = table.remove(unused)
        #expect(removedUnused == nil)

        let removals = [table.remove(x), table.remove(x)]
        #expect(removals == ["keypair", nil])
        #expect(table.lookup(x) == nil)
        let replacedRemoved = table.replace(x, with: "gone")
        #expect(!replacedRemoved)
        #expect(table.count == 1)
        #expect(table.lookup(y) == "other")
    }

    /// A freed index can be handed out again.
    @Test func removedIndexIsReused() {
        var table = IndexTable<Int>()
        var rng = ScriptedRNG(outputs: [3, 3, 4])
        let first = table.insert(1, using: &rng)
        let removed = table.remove(3)
        let second = table.insert(2, using: &rng)
        let third = table.insert(3, using: &rng)
        #expect(first == 3)
        #expect(removed == 1)
        #expect(second == 3)
        #expect(third == 4)
        #expect(table.lookup(3) == 2)
    }
}
