// The receiver index table: every handshake and keypair in flight is known to
// the other side by a 32-bit index we chose (the `sender_index` of our
// initiation or response), which it echoes back as `receiver_index` in
// responses, cookie replies and transport data. Like the kernel's
// drivers/net/wireguard/peerlookup.c (`wg_index_hashtable_insert`), indices are
// random, so they reveal nothing about how many sessions exist, and a fresh one
// is drawn again when it collides with an index in use.
//
// Lifecycle of one index:
//
//   insert (handshake started) ──► replace (handshake became a keypair)
//        │                                 │
//        └──────────────► remove ◄─────────┘  (handshake or keypair dropped)
//
// Dictionary-backed: O(1) expected for every operation, no size limit.

/// Maps the 32-bit receiver indices of this device to values (a peer handle
/// and which handshake or keypair the index names).
public struct IndexTable<Value: Sendable>: Sendable {
    private var entries: [UInt32: Value] = [:]

    public init() {}

    /// Number of indices in use.
    public var count: Int { entries.count }

    /// Stores `value` under a random index not in use and returns the index.
    /// Precondition: fewer than 2^32 indices are in use and `rng` eventually
    /// yields an unused one (it is drawn again on every collision).
    public mutating func insert(_ value: Value, using rng: inout some RandomNumberGenerator) -> UInt32 {
        while true {
            let index = UInt32(truncatingIfNeeded: rng.next())
            if entries[index] == nil {
                entries[index] = value
                return index
            }
        }
    }

    /// The value stored under `index`, nil if the index is not in use (for
    /// example a stale or forged receiver index in a received message).
    public func lookup(_ index: UInt32) -> Value? { entries[index] }

    /// Frees `index`; returns the value it held, nil if it was not in use.
    public mutating func remove(_ index: UInt32) -> Value? { entries.removeValue(forKey: index) }

    /// Stores `value` under `index` if that index is in use (a handshake
    /// becoming a keypair keeps its index); returns false, changing nothing,
    /// if it is not.
    public mutating func replace(_ index: UInt32, with value: Value) -> Bool {
        guard entries[index] != nil else { return false }
        entries[index] = value
        return true
    }
}
