// BroadcastQueue: the updates waiting to be piggybacked, as memberlist's
// TransmitLimitedQueue. Each update is sent at most `limit` times
// (retransmitMult * ceil(log10(N + 1))); the least transmitted go first, the
// newest first among equals; a newer update about a member replaces the
// queued one. Updates are taken until a message's byte budget is full.
//
// Layout: buckets[t] holds the updates already sent t times, oldest first.
// A replaced update stays in its bucket and is skipped (its generation is no
// longer the member's current one), so replacing is O(1).

import MeshBase

/// Gossip updates waiting for dissemination.
struct BroadcastQueue: Sendable {
    private struct Entry: Sendable {
        var update: GossipUpdate
        var generation: UInt64
    }

    private var buckets: [[Entry]] = [[]]
    /// The generation of the live queued update of each member.
    private var current: [Bytes32: UInt64] = [:]
    private var nextGeneration: UInt64 = 0

    /// Updates still to be sent.
    var count: Int { current.count }
    var isEmpty: Bool { current.isEmpty }

    /// Queues `update`, replacing any queued update about the same member.
    mutating func enqueue(_ update: GossipUpdate) {
        nextGeneration += 1
        current[update.member] = nextGeneration
        buckets[0].append(Entry(update: update, generation: nextGeneration))
    }

    /// True when an update about `member` is queued.
    func contains(_ member: Bytes32) -> Bool { current[member] != nil }

    /// Takes updates totalling at most `budget` bytes, least transmitted and
    /// newest first; each counts as one transmission, and an update sent
    /// `limit` times leaves the queue.
    mutating func take(budget: Int, limit: Int) -> [GossipUpdate] {
        var taken: [GossipUpdate] = []
        var remaining = budget
        var promoted: [(Int, Entry)] = []
        var t = 0
        while t < buckets.count, remaining >= Self.smallestUpdate {
            var kept: [Entry] = []
            kept.reserveCapacity(buckets[t].count)
            var i = buckets[t].count - 1
            var keptTail: [Entry] = []
            while i >= 0 {
                let e = buckets[t][i]
                i -= 1
                guard current[e.update.member] == e.generation else { continue }   // replaced
                if t >= limit { current[e.update.member] = nil; continue }         // limit shrank
                if remaining < Self.smallestUpdate { keptTail.append(e); break }
                let size = e.update.encodedSize
                if size > remaining { keptTail.append(e); continue }
                remaining -= size
                taken.append(e.update)
                if t + 1 >= limit { current[e.update.member] = nil } else { promoted.append((t + 1, e)) }
            }
            // Entries not visited keep their order; visited-and-kept ones were collected newest first.
            if i >= 0 { kept.append(contentsOf: buckets[t][0...i]) }
            kept.append(contentsOf: keptTail.reversed())
            buckets[t] = kept
            t += 1
        }
        for (b, e) in promoted {
            while buckets.count <= b { buckets.append([]) }
            buckets[b].append(e)
        }
        while buckets.count > 1, buckets[buckets.count - 1].isEmpty { buckets.removeLast() }
        return taken
    }

    /// The smallest update (left): below this, nothing else can fit.
    static let smallestUpdate = 41
}
