// BatchResult: what a batched send (UDPSocket, sendmmsg) or batched TUN write
// did, slot by slot from the front of the range.
import SystemPackage

/// What a batched send or write did. The datagrams `[start, start + processed)` were
/// handled (sent or refused one by one); `[start + processed, end)` were not
/// attempted because the kernel had no room, and may be retried.
public struct BatchResult: Equatable, Sendable {
    /// Datagrams (or packets) asked for.
    public var requested: Int
    /// Datagrams handled from the front of the range: `completed` + `failed`.
    public var processed: Int
    /// Datagrams the kernel accepted.
    public var completed: Int
    /// The errno of the last datagram refused, or of the stop (EAGAIN, ENOBUFS).
    public var lastError: Errno?

    public init(requested: Int, processed: Int = 0, completed: Int = 0, lastError: Errno? = nil) {
        self.requested = requested; self.processed = processed; self.completed = completed; self.lastError = lastError
    }

    /// Datagrams the kernel refused one by one; they were skipped.
    public var failed: Int { processed - completed }
    /// Whether every datagram was handled.
    public var isComplete: Bool { processed == requested }

    /// Adds what a send of the slots right after these did.
    mutating func absorb(_ next: BatchResult) {
        processed += next.processed
        completed += next.completed
        if let e = next.lastError { lastError = e }
    }
}
