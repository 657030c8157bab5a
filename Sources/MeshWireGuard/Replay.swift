// The anti-replay window for transport data messages: RFC 6479 ("IPsec
// Anti-Replay Algorithm without Bit Shifting"), exactly as the Linux kernel's
// drivers/net/wireguard/receive.c `counter_validate` implements it, with the
// kernel's sizes (messages.h):
//
//   COUNTER_BITS_TOTAL     = 8192   bits in the ring of 64-bit words
//   COUNTER_REDUNDANT_BITS = 64     one word, BITS_PER_LONG on 64-bit Linux
//   COUNTER_WINDOW_SIZE    = 8128   counters behind the greatest one accepted
//
// The ring is 128 words. A counter c is tracked as bit (c + 1) mod 8192; when
// the greatest counter moves forward, the words it passes are zeroed a whole
// word at a time instead of shifting the bitmap, which is why one word is
// "redundant": a partly stale word is never consulted because the window is a
// word shorter than the ring.
//
// A `ReplayWindow` belongs to one receiving keypair and is reset with it. It is
// a value with no locking: not safe for concurrent use (the kernel holds a
// spinlock around `counter_validate`; the owner of the keypair must serialise
// calls to `accept`).

/// RFC 6479 sliding window over the 64-bit counters of one receiving keypair.
public struct ReplayWindow: Sendable {
    /// COUNTER_WINDOW_SIZE = COUNTER_BITS_TOTAL - COUNTER_REDUNDANT_BITS =
    /// 8192 - 64 = 8128: how far behind the greatest accepted counter a
    /// counter may be and still be accepted (once).
    public static let windowSize = WireGuardProtocol.counterWindowSize

    /// REJECT_AFTER_MESSAGES as the kernel defines it (messages.h):
    /// `U64_MAX - COUNTER_WINDOW_SIZE - 1` = 2^64 - 1 - 8128 - 1 = 2^64 - 8130.
    /// No counter at or above it is accepted, and a keypair whose window has
    /// reached it is spent. (The whitepaper's Reject-After-Messages, and
    /// wireguard-go's RejectAfterMessages, is 2^64 - 2^13 - 1 = 2^64 - 8193; the
    /// kernel keeps exactly one window of headroom below 2^64 - 1 instead.)
    public static let rejectAfterMessages = WireGuardProtocol.rejectAfterMessages

    /// COUNTER_BITS_TOTAL / BITS_PER_LONG: words in the ring (a power of two).
    private static let ringWords = 8192 / 64

    /// The kernel's `counter->counter`: one more than the greatest counter
    /// accepted so far, 0 before any.
    private var next: UInt64 = 0
    /// The kernel's `backtrack` ring; allocated once, mutated in place.
    private var backtrack = [UInt64](repeating: 0, count: ringWords)

    public init() {}

    /// Should be called after a data message authenticated, with its counter.
    /// Returns true and records `counter` when it is new and inside the
    /// window; returns false for a replay, for a counter more than
    /// `windowSize` behind the greatest one accepted, and for any counter once
    /// `rejectAfterMessages` is reached.
    public mutating func accept(_ counter: UInt64) -> Bool {
        guard next < Self.rejectAfterMessages + 1, counter < Self.rejectAfterMessages else { return false }
        let theirs = counter + 1
        guard UInt64(Self.windowSize) + theirs >= next else { return false }
        let index = theirs >> 6
        if theirs > next {
            // Zero the words between the old front and the new one (at most the
            // whole ring), then move the front.
            let current = next >> 6
            let top = min(index - current, UInt64(Self.ringWords))
            var i: UInt64 = 1
            while i <= top {
                backtrack[Int((current + i) & UInt64(Self.ringWords - 1))] = 0
                i += 1
            }
            next = theirs
        }
        let word = Int(index & UInt64(Self.ringWords - 1))
        let bit: UInt64 = 1 << (theirs & 63)
        guard backtrack[word] & bit == 0 else { return false }
        backtrack[word] |= bit
        return true
    }
}
