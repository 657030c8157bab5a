// MemberTable: the members one SWIMMembership knows, laid out for meshes of
// thousands. Every node holds a record of every other, so a simulation of N
// nodes holds N² of them; the layout decides whether 10,000 nodes fit.
//
//   slots    [Slot]    one 80-byte record per member, in insertion order;
//                      removal moves the last slot into the hole (swap-remove)
//   buckets  [Int32]   open addressing, linear probing, at most half full:
//                      slot number + 1, or 0 for an empty bucket
//
// The identity key is stored once, in its slot; the index holds only slot
// numbers (8 to 16 bytes per member) and compares keys through the slots.
// Buckets are found by the key's `hashValue` (SipHash with a per-process
// seed), so no one can choose keys that collide. Nothing iterates over the
// buckets, so their layout never changes what the protocol does: slot order
// is a pure function of the calls made.
//
// Unsafe for concurrent use, like the membership that owns it.

import MeshBase

/// The known members of a membership, by identity key and by slot number.
struct MemberTable: Sendable {
    /// One member's record: a Member with its state flattened (80 bytes, no extra allocation;
    /// `metadata` shares the storage of the array it was stored from).
    struct Slot: Sendable {
        var id: Bytes32
        var endpoint: Endpoint
        var status: MemberStatus
        var metadata: [UInt8]
        var incarnation: UInt64
        /// When the state was entered; unused (zero) while alive.
        var since: Instant

        init(_ m: Member) {
            id = m.id; endpoint = m.endpoint; metadata = m.metadata; incarnation = m.incarnation
            status = .alive; since = .zero
            state = m.state
        }

        var state: MemberState {
            get {
                switch status {
                case .alive: return .alive
                case .suspect: return .suspect(since: since)
                case .dead: return .dead(since: since)
                case .left: return .left(since: since)
                }
            }
            set {
                status = newValue.status
                switch newValue {
                case .alive: since = .zero
                case .suspect(let s), .dead(let s), .left(let s): since = s
                }
            }
        }

        /// Alive or suspect.
        var isLive: Bool { status == .alive || status == .suspect }

        var member: Member { Member(id: id, endpoint: endpoint, metadata: metadata, incarnation: incarnation, state: state) }
    }

    private(set) var slots: ContiguousArray<Slot> = []
    private var buckets: [Int32] = []

    var count: Int { slots.count }
    var isEmpty: Bool { slots.isEmpty }

    /// The slot numbers, in slot order.
    var indices: Range<Int> { slots.indices }

    subscript(slot: Int) -> Slot {
        get { slots[slot] }
        set {
            precondition(newValue.id == slots[slot].id, "a slot keeps its member")
            slots[slot] = newValue
        }
    }

    /// The slot holding `id`, or nil.
    func slot(of id: Bytes32) -> Int? {
        guard !buckets.isEmpty else { return nil }
        let mask = buckets.count - 1
        var b = id.hashValue & mask
        while true {
            let s = Int(buckets[b])
            if s == 0 { return nil }
            if slots[s - 1].id == id { return s - 1 }
            b = (b + 1) & mask
        }
    }

    /// The record of `id`, or nil.
    func member(_ id: Bytes32) -> Member? { slot(of: id).map { slots[$0].member } }

    /// Makes room for `capacity` members without reallocating.
    mutating func reserveCapacity(_ capacity: Int) {
        slots.reserveCapacity(capacity)
        if Self.bucketCount(for: capacity) > buckets.count { rehash(bucketCount: Self.bucketCount(for: capacity)) }
    }

    /// Stores `m`, which must not be known yet, in a new last slot; returns its slot number.
    @discardableResult
    mutating func append(_ m: Member) -> Int {
        precondition(slot(of: m.id) == nil, "member already in the table")
        precondition(slots.count < Int(Int32.max), "member table full")
        if Self.bucketCount(for: slots.count + 1) > buckets.count {
            rehash(bucketCount: Self.bucketCount(for: max(slots.count + 1, 2 * slots.count)))
        }
        slots.append(Slot(m))
        let s = slots.count - 1
        buckets[emptyBucket(for: m.id)] = Int32(s + 1)
        return s
    }

    /// Removes the member in `slot`; the last slot moves into its place.
    /// Returns the former number of the moved slot (the last one), or nil when `slot` was the last.
    @discardableResult
    mutating func remove(slot: Int) -> Int? {
        let last = slots.count - 1
        removeFromIndex(bucket: bucket(of: slot))
        guard slot != last else { slots.removeLast(); return nil }
        buckets[bucket(of: last)] = Int32(slot + 1)
        slots[slot] = slots.removeLast()
        return last
    }

    // MARK: The index

    /// A power of two at least twice `members` (at most half full), and at least 8.
    private static func bucketCount(for members: Int) -> Int {
        var n = 8
        while n < 2 * members { n <<= 1 }
        return n
    }

    private func bucket(of slot: Int) -> Int {
        let mask = buckets.count - 1
        var b = slots[slot].id.hashValue & mask
        while Int(buckets[b]) != slot + 1 { b = (b + 1) & mask }
        return b
    }

    private func emptyBucket(for id: Bytes32) -> Int {
        let mask = buckets.count - 1
        var b = id.hashValue & mask
        while buckets[b] != 0 { b = (b + 1) & mask }
        return b
    }

    private mutating func rehash(bucketCount: Int) {
        buckets = [Int32](repeating: 0, count: bucketCount)
        for s in slots.indices { buckets[emptyBucket(for: slots[s].id)] = Int32(s + 1) }
    }

    /// Empties `hole` and shifts later entries of its probe run back (deletion
    /// without tombstones): an entry moves into the hole unless its home
    /// bucket lies cyclically after the hole.
    private mutating func removeFromIndex(bucket hole: Int) {
        let mask = buckets.count - 1
        var hole = hole
        var b = (hole + 1) & mask
        while buckets[b] != 0 {
            let home = slots[Int(buckets[b]) - 1].id.hashValue & mask
            // Movable when home is not in (hole, b], cyclically.
            if (b - home) & mask >= (b - hole) & mask {
                buckets[hole] = buckets[b]
                hole = b
            }
            b = (b + 1) & mask
        }
        buckets[hole] = 0
    }
}
