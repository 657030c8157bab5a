// Awareness: Lifeguard's local health (LHA-Probe, Dadgar et al. 2018 §4.2;
// memberlist awareness.go). A node that misses acks or nacks, or has to
// refute suspicions about itself, is probably the slow one: it probes less
// often and waits longer, instead of accusing healthy members.
//
//   score 0 (healthy) ... max - 1;  timeouts are multiplied by score + 1
//   +1  a probe failed and relays' nacks were missing (one per missing nack;
//       one when no nack was expected)
//   +1  this node refuted a suspicion or death about itself
//   -1  a probe got its ack

/// The local health multiplier.
struct Awareness: Hashable, Sendable {
    /// The largest multiplier (`SWIMConfig.awarenessMaxMultiplier`).
    let maximum: Int
    /// 0 when healthy; at most `maximum - 1`.
    private(set) var score = 0

    init(maximum: Int) { self.maximum = Swift.max(1, maximum) }

    /// Adds `delta`, kept within [0, maximum - 1].
    mutating func apply(_ delta: Int) {
        score = Swift.min(Swift.max(score + delta, 0), maximum - 1)
    }

    /// `d` scaled by the current health: `d * (score + 1)`.
    func scale(_ d: Duration) -> Duration { d * (score + 1) }
}
