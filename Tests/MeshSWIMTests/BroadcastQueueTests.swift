import Testing
import MeshBase
@testable import MeshSWIM

private func key(_ n: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: n, count: 32))! }
private let ep = Endpoint("192.0.2.1:7946")!

@Suite struct BroadcastQueueTests {
    @Test func newerUpdateReplacesQueuedOne() {
        var q = BroadcastQueue()
        q.enqueue(.alive(member: key(1), incarnation: 1, endpoint: ep, metadata: []))
        q.enqueue(.suspect(member: key(1), incarnation: 1, from: key(2)))
        #expect(q.count == 1)
        #expect(q.take(budget: 1000, limit: 3) == [.suspect(member: key(1), incarnation: 1, from: key(2))])
    }

    @Test func eachUpdateIsSentLimitTimesLeastTransmittedFirst() {
        var q = BroadcastQueue()
        q.enqueue(.left(member: key(1), incarnation: 0))
        #expect(q.take(budget: 1000, limit: 2).count == 1)
        q.enqueue(.left(member: key(2), incarnation: 0))
        // Room for one: the fresh update (sent 0 times) goes before the one sent once.
        #expect(q.take(budget: 41, limit: 2) == [.left(member: key(2), incarnation: 0)])
        #expect(q.take(budget: 1000, limit: 2).count == 2)   // both at 1 transmission → 2 = limit, both leave
        #expect(q.isEmpty && q.take(budget: 1000, limit: 2).isEmpty)
    }

    @Test func takeRespectsTheByteBudget() {
        var q = BroadcastQueue()
        for i in 0..<100 { q.enqueue(.alive(member: key(UInt8(i)), incarnation: 1, endpoint: ep, metadata: [UInt8](repeating: 7, count: i))) }
        for budget in [0, 40, 41, 100, 500, 1166] {
            let taken = q.take(budget: budget, limit: 50)
            #expect(taken.reduce(0) { $0 + $1.encodedSize } <= budget)
        }
        #expect(q.count == 100)
    }
}
