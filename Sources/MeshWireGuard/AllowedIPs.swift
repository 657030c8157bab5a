// Allowed IPs: WireGuard's cryptokey routing table (whitepaper §2), with the
// semantics of the kernel's drivers/net/wireguard/allowedips.c:
//   - a prefix belongs to exactly one value (peer); inserting a prefix that
//     is already present moves it to the new value;
//   - a lookup returns the value of the longest prefix containing the address;
//   - IPv4 and IPv6 are separate tables (0.0.0.0/0 never matches an IPv6
//     address, IPv4-mapped IPv6 addresses included).
// Outgoing packets pick their peer by destination (`lookupDestination`);
// decrypted packets are dropped unless their source maps back to the peer
// that sent them (`lookupSource`).
//
// Structure: per family, the kernel's path-compressed binary trie. Every
// node carries a key (the first `length` bits of an address, the rest zero)
// and at most one value; a node's children extend its key and differ from
// each other at bit `length`. A node without a value exists only to branch,
// so it always has two children and there are fewer than 2 × count nodes:
//
//                      192.168.0.0/16 c
//                     /                \
//          192.168.0.0/21 (branch)   192.168.200.0/24 d
//            /          \
//   192.168.0.0/24 a   192.168.4.4/32 b
//
// A lookup walks down from the root while the node's key is a prefix of the
// address, remembering the last value seen: at most address-width + 1 nodes,
// no allocation. Nodes live in one array linked by index, freed slots are
// reused. Keys are two words: an IPv6 address as is, an IPv4 address in the
// top 32 bits of `high`. A dictionary from value to its prefixes makes
// `removeAll(value:)` (peer removal) cost only that peer's prefixes.
//
// A value type with no locking; the engine guards it (readers per packet,
// writers on configuration changes).
import MeshBase

/// Longest-prefix-match table from IPv4 and IPv6 prefixes to values (peers).
public struct AllowedIPs<Value: Hashable & Sendable>: Sendable {
    private struct Node: Sendable {
        var high: UInt64
        var low: UInt64
        /// Prefix length in bits; bits beyond it are zero in `high`/`low`.
        var length: Int
        /// Nil for a branch node (which then has two children).
        var value: Value?
        /// Node indices, `none` when absent. `parent` is `none` at the root.
        var parent: Int
        var zero: Int
        var one: Int
    }

    private static var none: Int { -1 }

    private var nodes: [Node] = []
    private var freeNodes: [Int] = []
    private var root4 = none
    private var root6 = none
    private var prefixesByValue: [Value: Set<IPPrefix>] = [:]
    /// Number of prefixes in the table (both families).
    public private(set) var count = 0

    public init() {}

    // MARK: Changes

    /// Maps `prefix` to `value`, moving it from the value that held it before.
    public mutating func insert(_ prefix: IPPrefix, value: Value) {
        if let old = insertNode(Key(prefix.address), length: prefix.length, bits: prefix.address.bitWidth, value: value) {
            guard old != value else { return }
            forget(prefix, of: old)
        } else {
            count += 1
        }
        prefixesByValue[value, default: []].insert(prefix)
    }

    /// Removes `prefix` if it belongs to `value`; returns whether it did.
    public mutating func remove(_ prefix: IPPrefix, value: Value) -> Bool {
        let bits = prefix.address.bitWidth
        guard let node = find(Key(prefix.address), length: prefix.length, bits: bits), nodes[node].value == value else {
            return false
        }
        removeNode(node, bits: bits)
        forget(prefix, of: value)
        count -= 1
        return true
    }

    /// Removes every prefix of `value` (the peer is gone).
    public mutating func removeAll(value: Value) {
        guard let prefixes = prefixesByValue.removeValue(forKey: value) else { return }
        for prefix in prefixes {
            let bits = prefix.address.bitWidth
            // Always found: `prefixesByValue` lists exactly the valued nodes.
            if let node = find(Key(prefix.address), length: prefix.length, bits: bits) { removeNode(node, bits: bits) }
        }
        count -= prefixes.count
    }

    // MARK: Lookups

    /// The value of the longest prefix containing `address`, nil if none does.
    public func lookup(_ address: IPAddress) -> Value? {
        switch address {
        case .v4(let a): return lookup(ipv4: a.value)
        case .v6(let a): return lookup(ipv6High: a.high, ipv6Low: a.low)
        }
    }

    /// `lookup` for an IPv4 address given as its 32-bit value (network order,
    /// most significant octet first).
    public func lookup(ipv4 address: UInt32) -> Value? {
        longestMatch(high: UInt64(address) << 32, low: 0, root: root4, bits: 32)
    }

    /// `lookup` for an IPv6 address given as two words (`high` is bytes 0–7).
    public func lookup(ipv6High high: UInt64, ipv6Low low: UInt64) -> Value? {
        longestMatch(high: high, low: low, root: root6, bits: 128)
    }

    /// The value for the destination address of the IP packet `p` (the peer
    /// to send it to). Nil unless `p` starts with an IPv4 header (version 4,
    /// at least 20 bytes) or an IPv6 header (version 6, at least 40 bytes);
    /// only the version and the address are read, never out of bounds.
    public func lookupDestination(ofPacket p: UnsafeRawBufferPointer) -> Value? {
        lookup(packet: p, ipv4Offset: 16, ipv6Offset: 24)
    }

    /// The value for the source address of the IP packet `p` (the peer allowed
    /// to have sent it); nil for short or unknown packets, as
    /// `lookupDestination`.
    public func lookupSource(ofPacket p: UnsafeRawBufferPointer) -> Value? {
        lookup(packet: p, ipv4Offset: 12, ipv6Offset: 8)
    }

    /// The prefixes that map to `value`, sorted.
    public func prefixes(for value: Value) -> [IPPrefix] {
        prefixesByValue[value]?.sorted() ?? []
    }

    /// Every prefix with its value, sorted by prefix.
    public func allEntries() -> [(IPPrefix, Value)] {
        prefixesByValue.flatMap { value, prefixes in prefixes.map { ($0, value) } }.sorted { $0.0 < $1.0 }
    }

    /// Trie nodes in use, branch nodes included (for tests: at most 2 × count - 1).
    var nodeCount: Int { nodes.count - freeNodes.count }

    // MARK: Trie

    /// An address as a trie key: IPv4 in the top 32 bits of `high`.
    private struct Key {
        var high: UInt64
        var low: UInt64

        init(_ address: IPAddress) {
            switch address {
            case .v4(let a): high = UInt64(a.value) << 32; low = 0
            case .v6(let a): high = a.high; low = a.low
            }
        }

        init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

        /// Bit `i`, 0 being the most significant.
        func bit(_ i: Int) -> Int {
            Int(truncatingIfNeeded: i < 64 ? high >> (63 - i) & 1 : low >> (127 - i) & 1)
        }

        /// The first `length` bits, the rest zero.
        func masked(to length: Int) -> Key {
            let h = length >= 64 ? high : high & ~(~UInt64(0) >> length)
            let l = length <= 64 ? 0 : low & ~(~UInt64(0) >> (length - 64))
            return Key(high: h, low: l)
        }

        /// Number of leading bits `self` and `other` share (128 if equal).
        func commonBits(with other: Key) -> Int {
            let h = high ^ other.high
            return h != 0 ? h.leadingZeroBitCount : 64 + (low ^ other.low).leadingZeroBitCount
        }
    }

    /// Whether the first `length` bits of `high`/`low` equal the node's key.
    /// (`>>` by 64 or more gives 0, so length 0 matches everything.)
    private static func matches(_ node: Node, high: UInt64, low: UInt64) -> Bool {
        if node.length <= 64 { return (high ^ node.high) >> (64 - node.length) == 0 }
        return high == node.high && (low ^ node.low) >> (128 - node.length) == 0
    }

    private func key(of node: Int) -> Key {
        Key(high: nodes[node].high, low: nodes[node].low)
    }

    private func longestMatch(high: UInt64, low: UInt64, root: Int, bits: Int) -> Value? {
        let key = Key(high: high, low: low)
        // Node indices are valid by construction; the buffer saves the
        // array's per-access overhead on this per-packet path.
        return nodes.withUnsafeBufferPointer { nodes in
            var best: Value?
            var n = root
            while n >= 0, Self.matches(nodes[n], high: high, low: low) {
                if let value = nodes[n].value { best = value }
                let length = nodes[n].length
                if length == bits { break }
                n = key.bit(length) == 0 ? nodes[n].zero : nodes[n].one
            }
            return best
        }
    }

    private func lookup(packet p: UnsafeRawBufferPointer, ipv4Offset: Int, ipv6Offset: Int) -> Value? {
        guard let first = p.first else { return nil }
        switch first >> 4 {
        case 4 where p.count >= 20:
            return lookup(ipv4: UInt32(bigEndian: p.loadUnaligned(fromByteOffset: ipv4Offset, as: UInt32.self)))
        case 6 where p.count >= 40:
            return lookup(ipv6High: UInt64(bigEndian: p.loadUnaligned(fromByteOffset: ipv6Offset, as: UInt64.self)),
                          ipv6Low: UInt64(bigEndian: p.loadUnaligned(fromByteOffset: ipv6Offset + 8, as: UInt64.self)))
        default:
            return nil
        }
    }

    /// The node holding exactly `key`/`length`, valued or not.
    private func find(_ key: Key, length: Int, bits: Int) -> Int? {
        var n = bits == 32 ? root4 : root6
        while n >= 0, nodes[n].length <= length, Self.matches(nodes[n], high: key.high, low: key.low) {
            if nodes[n].length == length { return n }
            n = key.bit(nodes[n].length) == 0 ? nodes[n].zero : nodes[n].one
        }
        return nil
    }

    /// Sets `key`/`length` (already masked) to `value`, as the kernel's `add`;
    /// returns the value the node had before, nil if it is new or was a branch.
    private mutating func insertNode(_ key: Key, length: Int, bits: Int, value: Value) -> Value? {
        // Descend while the node's key is a prefix of the new one.
        var parent = Self.none
        var down = bits == 32 ? root4 : root6
        while down >= 0, nodes[down].length <= length, Self.matches(nodes[down], high: key.high, low: key.low) {
            if nodes[down].length == length {
                let old = nodes[down].value
                nodes[down].value = value
                return old
            }
            parent = down
            down = key.bit(nodes[down].length) == 0 ? nodes[down].zero : nodes[down].one
        }
        let new = allocate(key, length: length, value: value)
        guard down >= 0 else {
            if parent >= 0 { attach(new, below: parent) } else { setRoot(new, bits: bits) }
            return nil
        }
        // `down` sits where the new node belongs: hang it below the new node
        // if the new key is a prefix of its key, else below a new branch node
        // at the first bit where the two keys differ.
        let common = min(length, key.commonBits(with: self.key(of: down)))
        if common == length {
            replace(down, with: new, bits: bits)
            attach(down, below: new)
        } else {
            let branch = allocate(key.masked(to: common), length: common, value: nil)
            replace(down, with: branch, bits: bits)
            attach(down, below: branch)
            attach(new, below: branch)
        }
        return nil
    }

    /// Clears the value of `node` and, as the kernel's `remove_node`, unlinks
    /// the nodes left without a reason to exist: `node` unless it still
    /// branches, and its parent if that is a branch node left with one child.
    private mutating func removeNode(_ node: Int, bits: Int) {
        nodes[node].value = nil
        let zero = nodes[node].zero, one = nodes[node].one
        guard zero < 0 || one < 0 else { return }
        let child = zero >= 0 ? zero : one
        let parent = nodes[node].parent
        replace(node, with: child, bits: bits)
        freeNodes.append(node)
        guard child < 0, parent >= 0, nodes[parent].value == nil else { return }
        let sibling = nodes[parent].zero >= 0 ? nodes[parent].zero : nodes[parent].one
        replace(parent, with: sibling, bits: bits)
        freeNodes.append(parent)
    }

    private mutating func allocate(_ key: Key, length: Int, value: Value?) -> Int {
        let node = Node(high: key.high, low: key.low, length: length, value: value,
                        parent: Self.none, zero: Self.none, one: Self.none)
        if let slot = freeNodes.popLast() {
            nodes[slot] = node
            return slot
        }
        nodes.append(node)
        return nodes.count - 1
    }

    private mutating func setRoot(_ node: Int, bits: Int) {
        if bits == 32 { root4 = node } else { root6 = node }
    }

    /// Links `child` below `parent`, on the side given by its key's bit at the
    /// parent's length (child keys extend the parent's).
    private mutating func attach(_ child: Int, below parent: Int) {
        if key(of: child).bit(nodes[parent].length) == 0 { nodes[parent].zero = child } else { nodes[parent].one = child }
        nodes[child].parent = parent
    }

    /// Puts `new` (or nothing, if `none`) where `old` hangs: in its parent or
    /// at the root.
    private mutating func replace(_ old: Int, with new: Int, bits: Int) {
        let parent = nodes[old].parent
        if parent < 0 {
            setRoot(new, bits: bits)
        } else if nodes[parent].zero == old {
            nodes[parent].zero = new
        } else {
            nodes[parent].one = new
        }
        if new >= 0 { nodes[new].parent = parent }
    }

    /// Drops `prefix` from the prefixes of `value`.
    private mutating func forget(_ prefix: IPPrefix, of value: Value) {
        prefixesByValue[value]?.remove(prefix)
        if prefixesByValue[value]?.isEmpty == true { prefixesByValue[value] = nil }
    }
}
