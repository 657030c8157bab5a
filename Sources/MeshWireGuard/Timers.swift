// The five per-peer timers, with the kernel's event vocabulary (kernel
// timers.c / timers.h). Timers are deadlines stored on the peer; the device
// keeps a min-heap with at most one live entry per (peer, timer): pushing a
// later deadline for a timer already queued costs nothing (the entry is
// re-queued when it comes due), so per-packet events stay O(1).
//
//   retransmitHandshake  REKEY_TIMEOUT + jitter after an initiation is sent
//   sendKeepalive        KEEPALIVE_TIMEOUT after data is received, if nothing is sent
//   newHandshake         KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter after data is
//                        sent, if nothing authenticated comes back
//   zeroKeyMaterial      REJECT_AFTER_TIME * 3 after a session is derived
//   persistentKeepalive  the configured interval after any authenticated packet
import MeshBase

enum PeerTimer: Int, CaseIterable, Sendable {
    case retransmitHandshake, sendKeepalive, newHandshake, zeroKeyMaterial, persistentKeepalive
}

struct PeerTimerState {
    /// Current deadline of each timer (nil: not pending).
    var deadline: [Instant?] = Array(repeating: nil, count: PeerTimer.allCases.count)
    /// Deadline of the entry in the device's heap for each timer (nil: none queued).
    var queued: [Instant?] = Array(repeating: nil, count: PeerTimer.allCases.count)
    var handshakeAttempts = 0
    var needAnotherKeepalive = false
    var sentLastMinuteHandshake = false

    func isPending(_ t: PeerTimer) -> Bool { deadline[t.rawValue] != nil }
}

/// A binary min-heap of timer entries.
struct TimerHeap {
    struct Entry { var deadline: Instant; var peer: UInt32; var timer: PeerTimer }
    private var items: [Entry] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var earliest: Instant? { items.first?.deadline }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].deadline <= items[i].deadline { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l].deadline < items[m].deadline { m = l }
            if r < items.count && items[r].deadline < items[m].deadline { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
