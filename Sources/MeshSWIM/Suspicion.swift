// Suspicion: one suspected member's timer, Lifeguard's LHA-Suspicion
// (Dadgar et al. 2018 §4.3; memberlist suspicion.go).
//
// A fresh suspicion lasts `maximum`; every independent confirmation (a
// suspect message from a member other than those already counted) shortens it
// along a log curve, down to `minimum` after `k` confirmations:
//
//   timeout(c) = max(minimum, maximum - (maximum - minimum) * log(c + 1) / log(k + 1))
//
// With suspicionMult 4 memberlist expects k = suspicionMult - 2 = 2
// confirmations, and none in clusters too small to supply them (N - 2 < k).

import MeshBase

/// The timer of one suspected member.
struct Suspicion: Hashable, Sendable {
    /// The incarnation the member is suspected at.
    let incarnation: UInt64
    let start: Instant
    let minimum: Duration
    let maximum: Duration
    /// Confirmations expected before the timeout reaches `minimum`.
    let expected: Int
    /// Who has suspected the member so far (the first suspector included, so it is not counted twice).
    private(set) var suspectors: Set<Bytes32>
    /// When the member is declared dead, unless it refutes first.
    private(set) var deadline: Instant

    init(incarnation: UInt64, from: Bytes32, start: Instant, minimum: Duration, maximum: Duration, expected: Int) {
        self.incarnation = incarnation; self.start = start
        self.minimum = minimum; self.maximum = maximum; self.expected = expected
        suspectors = [from]
        deadline = start + Scaling.suspicionTimeout(confirmations: 0, expected: expected, minimum: minimum, maximum: maximum)
    }

    /// Independent confirmations so far.
    var confirmations: Int { suspectors.count - 1 }

    /// Counts `from` as a confirmation; true when it was new (and the deadline may have moved closer).
    mutating func confirm(from: Bytes32) -> Bool {
        guard confirmations < expected, suspectors.insert(from).inserted else { return false }
        deadline = start + Scaling.suspicionTimeout(confirmations: confirmations, expected: expected, minimum: minimum, maximum: maximum)
        return true
    }
}
