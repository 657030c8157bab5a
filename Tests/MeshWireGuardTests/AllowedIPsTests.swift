// AllowedIPs: the kernel's allowedips self-test (selftest/allowedips.c, also
// ported by wireguard-go as device/allowedips_test.go) case by case, random
// tables checked against a naive linear longest-prefix match (in the spirit of
// wireguard-go device/allowedips_rand_test.go and the kernel's
// randomized_test), packet parsing, and a 10,000-peer table.
import Testing
import MeshBase
@testable import MeshWireGuard

/// The seeded generator of the replay, allowed-IPs and index-table tests.
typealias TablesRNG = SeededRandom

private func ip4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> IPAddress { .v4(IPv4Address(a, b, c, d)) }

/// An IPv6 address from four 32-bit words, as the kernel's `ip6(a, b, c, d)`.
private func ip6(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32) -> IPAddress {
    .v6(IPv6Address(high: UInt64(a) << 32 | UInt64(b), low: UInt64(c) << 32 | UInt64(d)))
}

/// `address/length`, masked. Lengths in these tests are always valid.
private func pfx(_ address: IPAddress, _ length: Int) -> IPPrefix {
    guard let p = IPPrefix(address, length: length) else { fatalError("bad test prefix \(address)/\(length)") }
    return p
}

private func pfx(_ text: String) -> IPPrefix {
    guard let p = IPPrefix(text) else { fatalError("bad test prefix \(text)") }
    return p
}

/// A random address of the family of `prefix`, inside it.
private func randomAddress(in prefix: IPPrefix, _ rng: inout TablesRNG) -> IPAddress {
    let r = rng.next(), r2 = rng.next()
    switch prefix.address {
    case .v4(let a):
        let host: UInt32 = prefix.length == 0 ? ~0 : ~(~0 << UInt32(32 - prefix.length))
        return .v4(IPv4Address(a.value | UInt32(truncatingIfNeeded: r) & host))
    case .v6(let a):
        let hostHigh: UInt64 = prefix.length >= 64 ? 0 : ~0 >> UInt64(prefix.length)
        let hostLow: UInt64 = prefix.length <= 64 ? ~0 : ~0 >> UInt64(prefix.length - 64)
        return .v6(IPv6Address(high: a.high | r & hostHigh, low: a.low | r2 & hostLow))
    }
}

/// The reference: a plain list, longest-prefix match by a linear scan.
private struct NaiveAllowedIPs {
    var entries: [(prefix: IPPrefix, value: UInt32)] = []

    mutating func insert(_ prefix: IPPrefix, value: UInt32) {
        if let i = entries.firstIndex(where: { $0.prefix == prefix }) { entries[i].value = value } else { entries.append((prefix, value)) }
    }

    mutating func remove(_ prefix: IPPrefix, value: UInt32) -> Bool {
        guard let i = entries.firstIndex(where: { $0.prefix == prefix && $0.value == value }) else { return false }
        entries.remove(at: i)
        return true
    }

    mutating func removeAll(value: UInt32) { entries.removeAll { $0.value == value } }

    func lookup(_ address: IPAddress) -> UInt32? {
        var best: (length: Int, value: UInt32)?
        for e in entries where e.prefix.length >= (best?.length ?? 0) && e.prefix.contains(address) {
            best = (e.prefix.length, e.value)
        }
        return best?.value
    }
}

@Suite struct AllowedIPsTests {
    // The kernel's peers a…h.
    let a: UInt32 = 1, b: UInt32 = 2, c: UInt32 = 3, d: UInt32 = 4
    let e: UInt32 = 5, f: UInt32 = 6, g: UInt32 = 7, h: UInt32 = 8

    /// wg_allowedips_selftest: the inserts, then the numbered lookups.
    @Test func kernelSelftestLookups() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx(ip4(192, 168, 4, 0), 24), value: a)
        t.insert(pfx(ip4(192, 168, 4, 4), 32), value: b)
        t.insert(pfx(ip4(192, 168, 0, 0), 16), value: c)
        t.insert(pfx(ip4(192, 95, 5, 64), 27), value: d)
        // Replaces the previous entry (same prefix once masked).
        t.insert(pfx(ip4(192, 95, 5, 65), 27), value: c)
        t.insert(pfx(ip6(0x2607_5300, 0x6000_6b00, 0, 0xc05f_0543), 128), value: d)
        t.insert(pfx(ip6(0x2607_5300, 0x6000_6b00, 0, 0), 64), value: c)
        t.insert(pfx(ip4(0, 0, 0, 0), 0), value: e)
        t.insert(pfx(ip6(0, 0, 0, 0), 0), value: e)
        // Replaces the previous entry.
        t.insert(pfx(ip6(0, 0, 0, 0), 0), value: f)
        t.insert(pfx(ip6(0x2404_6800, 0, 0, 0), 32), value: g)
        t.insert(pfx(ip6(0x2404_6800, 0x4004_0800, 0xdead_beef, 0xdead_beef), 64), value: h)
        t.insert(pfx(ip6(0x2404_6800, 0x4004_0800, 0xdead_beef, 0xdead_beef), 128), value: a)
        t.insert(pfx(ip6(0x2444_6800, 0x40e4_0800, 0xdeae_beef, 0x0def_beef), 128), value: c)
        t.insert(pfx(ip6(0x2444_6800, 0xf0e4_0800, 0xeeae_beef, 0), 98), value: b)
        t.insert(pfx(ip4(64, 15, 112, 0), 20), value: g)
        t.insert(pfx(ip4(64, 15, 123, 211), 25), value: h)
        t.insert(pfx(ip4(10, 0, 0, 0), 25), value: a)
        t.insert(pfx(ip4(10, 0, 0, 128), 25), value: b)
        t.insert(pfx(ip4(10, 1, 0, 0), 30), value: a)
        t.insert(pfx(ip4(10, 1, 0, 4), 30), value: b)
        t.insert(pfx(ip4(10, 1, 0, 8), 29), value: c)
        t.insert(pfx(ip4(10, 1, 0, 16), 29), value: d)
        #expect(t.count == 21)

        let tests: [(IPAddress, UInt32)] = [
            (ip4(192, 168, 4, 20), a),
            (ip4(192, 168, 4, 0), a),
            (ip4(192, 168, 4, 4), b),
            (ip4(192, 168, 200, 182), c),
            (ip4(192, 95, 5, 68), c),
            (ip4(192, 95, 5, 96), e),
            (ip6(0x2607_5300, 0x6000_6b00, 0, 0xc05f_0543), d),
            (ip6(0x2607_5300, 0x6000_6b00, 0, 0xc02e_01ee), c),
            (ip6(0x2607_5300, 0x6000_6b01, 0, 0), f),
            (ip6(0x2404_6800, 0x4004_0806, 0, 0x1006), g),
            (ip6(0x2404_6800, 0x4004_0806, 0x1234, 0x5678), g),
            (ip6(0x2404_67ff, 0x4004_0806, 0x1234, 0x5678), f),
            (ip6(0x2404_6801, 0x4004_0806, 0x1234, 0x5678), f),
            (ip6(0x2404_6800, 0x4004_0800, 0x1234, 0x5678), h),
            (ip6(0x2404_6800, 0x4004_0800, 0, 0), h),
            (ip6(0x2404_6800, 0x4004_0800, 0x1010_1010, 0x1010_1010), h),
            (ip6(0x2404_6800, 0x4004_0800, 0xdead_beef, 0xdead_beef), a),
            (ip4(64, 15, 116, 26), g),
            (ip4(64, 15, 127, 3), g),
            (ip4(64, 15, 123, 1), g),
            (ip4(64, 15, 123, 128), h),
            (ip4(64, 15, 123, 129), h),
            (ip4(10, 0, 0, 52), a),
            (ip4(10, 0, 0, 220), b),
            (ip4(10, 1, 0, 2), a),
            (ip4(10, 1, 0, 6), b),
            (ip4(10, 1, 0, 10), c),
            (ip4(10, 1, 0, 20), d),
        ]
        for (i, (address, expected)) in tests.enumerated() {
            #expect(t.lookup(address) == expected, "allowedips self-test \(i + 1): \(address)")
        }

        t.insert(pfx(ip4(1, 0, 0, 0), 32), value: a)
        t.insert(pfx(ip4(64, 0, 0, 0), 32), value: a)
        t.insert(pfx(ip4(128, 0, 0, 0), 32), value: a)
        t.insert(pfx(ip4(192, 0, 0, 0), 32), value: a)
        t.insert(pfx(ip4(255, 0, 0, 0), 32), value: a)
        t.removeAll(value: a)
        for address in [ip4(1, 0, 0, 0), ip4(64, 0, 0, 0), ip4(128, 0, 0, 0), ip4(192, 0, 0, 0), ip4(255, 0, 0, 0)] {
            #expect(t.lookup(address) != a, "\(address)")
        }
        #expect(t.prefixes(for: a).isEmpty)
        #expect(t.lookup(ip4(10, 1, 0, 2)) == e)  // 10.1.0.0/30 went with a; 0.0.0.0/0 remains

        // As wireguard-go: removing every peer empties both tries.
        for peer in [a, b, c, d, e, f, g, h] { t.removeAll(value: peer) }
        #expect(t.count == 0)
        #expect(t.nodeCount == 0)
        #expect(t.allEntries().isEmpty)
    }

    @Test func removeAllWithNestedPrefixes() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx(ip4(192, 168, 0, 0), 16), value: a)
        t.insert(pfx(ip4(192, 168, 0, 0), 24), value: a)
        t.removeAll(value: a)
        #expect(t.lookup(ip4(192, 168, 0, 1)) != a)
        #expect(t.lookup(ip4(192, 168, 0, 1)) == nil)
        #expect(t.nodeCount == 0)
    }

    /// 128 host routes, each differing from all-ones in one bit: every split
    /// of the IPv6 trie at every depth (the kernel's free_node depth check).
    @Test func everyBitDepthIPv6() {
        var t = AllowedIPs<UInt32>()
        var addresses: [IPAddress] = []
        for i in 0..<128 {
            let part = ~(UInt64(1) << UInt64(i % 64))
            let address = IPAddress.v6(i < 64 ? IPv6Address(high: ~0, low: part) : IPv6Address(high: part, low: ~0))
            addresses.append(address)
            t.insert(pfx(address, 128), value: UInt32(i))
        }
        #expect(t.count == 128)
        #expect(t.nodeCount <= 2 * 128 - 1)
        for (i, address) in addresses.enumerated() { #expect(t.lookup(address) == UInt32(i)) }
        #expect(t.lookup(ip6(~0, ~0, ~0, ~0)) == nil)
        for i in 0..<128 { t.removeAll(value: UInt32(i)) }
        #expect(t.count == 0)
        #expect(t.nodeCount == 0)
    }

    /// The kernel's read-back test: a peer's prefixes come back masked.
    @Test func prefixesReadBackMasked() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx(ip4(192, 95, 5, 93), 27), value: a)
        t.insert(pfx(ip6(0x2607_5300, 0x6000_6b00, 0, 0xc05f_0543), 128), value: a)
        t.insert(pfx(ip4(10, 1, 0, 20), 29), value: a)
        t.insert(pfx(ip6(0x2607_5300, 0x6d8a_6bf8, 0xdab1_f1df, 0xc05f_1523), 83), value: a)
        t.insert(pfx(ip6(0x2607_5300, 0x6d8a_6bf8, 0xdab1_f1df, 0xc05f_1523), 21), value: a)
        t.insert(pfx("10.0.0.0/8"), value: b)
        #expect(t.prefixes(for: a) == [
            pfx(ip4(10, 1, 0, 16), 29),
            pfx(ip4(192, 95, 5, 64), 27),
            pfx(ip6(0x2607_5000, 0, 0, 0), 21),
            pfx(ip6(0x2607_5300, 0x6000_6b00, 0, 0xc05f_0543), 128),
            pfx(ip6(0x2607_5300, 0x6d8a_6bf8, 0xdab1_e000, 0), 83),
        ])
        #expect(t.prefixes(for: b) == [pfx("10.0.0.0/8")])
        #expect(t.prefixes(for: c).isEmpty)
        #expect(t.count == 6)
        let all = t.allEntries()
        #expect(all.map { $0.0 } == (t.prefixes(for: a) + [pfx("10.0.0.0/8")]).sorted())
        #expect(all.map { $0.1 } == all.map { $0.0 == pfx("10.0.0.0/8") ? b : a })
    }

    @Test func prefixMovesToTheNewValue() {
        var t = AllowedIPs<UInt32>()
        let p = pfx("10.99.0.0/16")
        t.insert(p, value: a)
        t.insert(p, value: a)
        #expect(t.count == 1)
        t.insert(p, value: b)
        #expect(t.count == 1)
        #expect(t.lookup(ip4(10, 99, 1, 2)) == b)
        #expect(t.prefixes(for: a).isEmpty)
        #expect(t.prefixes(for: b) == [p])
        let removedForA = t.remove(p, value: a)
        #expect(!removedForA)
        #expect(t.lookup(ip4(10, 99, 1, 2)) == b)
        t.removeAll(value: a)
        #expect(t.lookup(ip4(10, 99, 1, 2)) == b)
        let removals = [t.remove(p, value: b), t.remove(p, value: b)]
        #expect(removals == [true, false])
        #expect(t.count == 0)
        #expect(t.lookup(ip4(10, 99, 1, 2)) == nil)
        #expect(t.nodeCount == 0)
    }

    @Test func removeOnlyExactPrefixes() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx("10.0.0.0/25"), value: a)
        t.insert(pfx("10.0.0.128/25"), value: a)
        t.insert(pfx("10.0.0.0/16"), value: b)
        // 10.0.0.0/24 exists only as the branch node joining the two /25s.
        let misses = [
            t.remove(pfx("10.0.0.0/24"), value: a),
            t.remove(pfx("10.0.0.0/26"), value: a),
            t.remove(pfx("10.0.0.0/16"), value: a),
        ]
        #expect(misses == [false, false, false])
        #expect(t.count == 3)
        let hit = t.remove(pfx("10.0.0.0/25"), value: a)
        #expect(hit)
        #expect(t.lookup(ip4(10, 0, 0, 1)) == b)
        #expect(t.lookup(ip4(10, 0, 0, 129)) == a)
        #expect(t.nodeCount == 2)
        // A branch node that gains a value counts as a new prefix.
        t.insert(pfx("10.0.0.0/24"), value: c)
        #expect(t.count == 3)
        #expect(t.lookup(ip4(10, 0, 0, 1)) == c)
    }

    @Test func familiesAreSeparate() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx("0.0.0.0/0"), value: a)
        #expect(t.lookup(ip6(0, 0, 0, 1)) == nil)
        #expect(t.lookup(IPAddress("::ffff:10.0.0.1")!) == nil)
        t.insert(pfx("::/0"), value: b)
        #expect(t.lookup(ip4(10, 0, 0, 1)) == a)
        #expect(t.lookup(IPAddress("::ffff:10.0.0.1")!) == b)
        // The same 32 leading bits in both families stay apart.
        t.insert(pfx("10.0.0.1/32"), value: c)
        t.insert(pfx(ip6(0x0a00_0001, 0, 0, 0), 32), value: d)
        #expect(t.lookup(ip4(10, 0, 0, 1)) == c)
        #expect(t.lookup(ip6(0x0a00_0001, 0, 0, 0)) == d)
        let removed = t.remove(pfx("10.0.0.1/32"), value: c)
        #expect(removed)
        #expect(t.lookup(ip6(0x0a00_0001, 0, 0, 0)) == d)
        #expect(t.count == 3)
    }

    @Test func fastPathsAgreeWithLookup() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx("10.99.1.2/32"), value: a)
        t.insert(pfx("fd99:6d67::/32"), value: b)
        #expect(t.lookup(ipv4: 0x0a63_0102) == a)
        #expect(t.lookup(ipv4: 0x0a63_0103) == nil)
        #expect(t.lookup(ipv6High: 0xfd99_6d67_0000_0001, ipv6Low: 7) == b)
        #expect(t.lookup(ipv6High: 0xfd99_6d68_0000_0000, ipv6Low: 0) == nil)
    }

    // MARK: Packets

    private static func ipv4Packet(source: [UInt8], destination: [UInt8]) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 28)
        p[0] = 0x45
        p[12..<16] = source[...]
        p[16..<20] = destination[...]
        return p
    }

    private static func ipv6Packet(source: IPv6Address, destination: IPv6Address) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 48)
        p[0] = 0x60
        p[8..<24] = source.bytes[...]
        p[24..<40] = destination.bytes[...]
        return p
    }

    @Test func packetAddresses() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx("10.0.0.1/32"), value: a)
        t.insert(pfx("10.0.0.2/32"), value: b)
        t.insert(pfx("fd00::1/128"), value: c)
        t.insert(pfx("fd00::2/128"), value: d)
        let v4 = Self.ipv4Packet(source: [10, 0, 0, 1], destination: [10, 0, 0, 2])
        v4.withUnsafeBytes { p in
            #expect(t.lookupSource(ofPacket: p) == a)
            #expect(t.lookupDestination(ofPacket: p) == b)
            // The shortest IPv4 header is enough.
            let header = UnsafeRawBufferPointer(rebasing: p[..<20])
            #expect(t.lookupSource(ofPacket: header) == a)
            #expect(t.lookupDestination(ofPacket: header) == b)
        }
        let v6 = Self.ipv6Packet(source: IPv6Address("fd00::1")!, destination: IPv6Address("fd00::2")!)
        v6.withUnsafeBytes { p in
            #expect(t.lookupSource(ofPacket: p) == c)
            #expect(t.lookupDestination(ofPacket: p) == d)
            let header = UnsafeRawBufferPointer(rebasing: p[..<40])
            #expect(t.lookupSource(ofPacket: header) == c)
            #expect(t.lookupDestination(ofPacket: header) == d)
        }
    }

    @Test func shortOrUnknownPacketsFindNothing() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx("0.0.0.0/0"), value: a)
        t.insert(pfx("::/0"), value: b)
        #expect(t.lookupDestination(ofPacket: UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
        let v4 = Self.ipv4Packet(source: [1, 2, 3, 4], destination: [5, 6, 7, 8])
        v4.withUnsafeBytes { p in
            for n in 0..<20 {
                let cut = UnsafeRawBufferPointer(rebasing: p[..<n])
                #expect(t.lookupSource(ofPacket: cut) == nil, "\(n) bytes")
                #expect(t.lookupDestination(ofPacket: cut) == nil, "\(n) bytes")
            }
        }
        let v6 = Self.ipv6Packet(source: IPv6Address("fd00::1")!, destination: IPv6Address("fd00::2")!)
        v6.withUnsafeBytes { p in
            for n in 0..<40 {
                let cut = UnsafeRawBufferPointer(rebasing: p[..<n])
                #expect(t.lookupSource(ofPacket: cut) == nil, "\(n) bytes")
                #expect(t.lookupDestination(ofPacket: cut) == nil, "\(n) bytes")
            }
        }
        for version: UInt8 in [0, 1, 5, 7, 15] {
            var p = v6
            p[0] = version << 4
            p.withUnsafeBytes { p in
                #expect(t.lookupSource(ofPacket: p) == nil, "version \(version)")
                #expect(t.lookupDestination(ofPacket: p) == nil, "version \(version)")
            }
        }
    }

    /// Random bytes of random lengths: never a trap, and a peer exactly when
    /// the version nibble and length make an IPv4 or IPv6 header.
    @Test func randomBytesNeverTrap() {
        var t = AllowedIPs<UInt32>()
        t.insert(pfx("0.0.0.0/0"), value: a)
        t.insert(pfx("::/0"), value: b)
        t.insert(pfx("128.0.0.0/1"), value: c)
        var rng = TablesRNG(seed: 791)
        var found = 0
        for _ in 0..<3_000 {
            let count = Int(rng.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if count > 0, rng.next() % 2 == 0 { bytes[0] = rng.next() % 2 == 0 ? 0x45 : 0x60 }
            let version = bytes.first.map { $0 >> 4 }
            bytes.withUnsafeBytes { p in
                let expected: UInt32?
                if version == 4 && count >= 20 {
                    expected = bytes[16] >= 128 ? c : a
                } else if version == 6 && count >= 40 {
                    expected = b
                } else {
                    expected = nil
                }
                #expect(t.lookupDestination(ofPacket: p) == expected, "\(bytes)")
                if expected != nil { found += 1 }
                _ = t.lookupSource(ofPacket: p)
            }
        }
        #expect(found > 500)
    }

    // MARK: Against the naive table

    /// Random routes for random peers, as the kernel's randomized_test:
    /// random prefixes plus "mutated" ones sharing a random number of leading
    /// bits with them; then lookups, removals of single prefixes, peer
    /// removals and moves, each phase checked against `NaiveAllowedIPs`.
    @Test(arguments: [32, 128])
    func randomAgainstNaive(bits: Int) {
        var rng = TablesRNG(seed: UInt64(bits) * 1_000_003)
        var t = AllowedIPs<UInt32>()
        var naive = NaiveAllowedIPs()
        let peers: UInt32 = 60
        func anyAddress() -> IPAddress {
            bits == 32 ? .v4(IPv4Address(UInt32(truncatingIfNeeded: rng.next())))
                       : .v6(IPv6Address(high: rng.next(), low: rng.next()))
        }
        func randomLength() -> Int { Int(rng.next() % UInt64(bits + 1)) }
        func insert(_ p: IPPrefix) {
            let v = UInt32(rng.next() % UInt64(peers))
            t.insert(p, value: v)
            naive.insert(p, value: v)
        }
        func check(_ phase: String) {
            #expect(t.count == naive.entries.count, "\(phase)")
            #expect(t.nodeCount <= max(0, 2 * t.count - 1), "\(phase)")
            let entries = t.allEntries()
            let expected = naive.entries.sorted { $0.prefix < $1.prefix }
            #expect(entries.map { $0.0 } == expected.map(\.prefix), "\(phase)")
            #expect(entries.map { $0.1 } == expected.map(\.value), "\(phase)")
            for v in 0..<peers {
                let mine = naive.entries.filter { $0.value == v }.map(\.prefix).sorted()
                #expect(t.prefixes(for: v) == mine, "\(phase): peer \(v)")
            }
            var mismatches = 0
            for i in 0..<600 {
                // Half the queries land inside a known prefix, to reach deep nodes.
                let address = i % 2 == 0 || naive.entries.isEmpty
                    ? anyAddress()
                    : randomAddress(in: naive.entries[Int(rng.next() % UInt64(naive.entries.count))].prefix, &rng)
                if t.lookup(address) != naive.lookup(address) { mismatches += 1 }
            }
            #expect(mismatches == 0, "\(phase)")
        }

        for _ in 0..<40 {
            let base = pfx(anyAddress(), randomLength())
            insert(base)
            for _ in 0..<6 {
                let kept = pfx(base.address, Int(rng.next() % UInt64(bits)))
                insert(pfx(randomAddress(in: kept, &rng), randomLength()))
            }
        }
        check("inserted")

        for _ in 0..<80 {
            let entry = naive.entries[Int(rng.next() % UInt64(naive.entries.count))]
            let wrong = (entry.value + 1) % peers
            let verdicts = [
                t.remove(entry.prefix, value: wrong),
                t.remove(entry.prefix, value: entry.value),
                naive.remove(entry.prefix, value: entry.value),
            ]
            #expect(verdicts == [false, true, true], "\(entry.prefix)")
        }
        check("removed prefixes")

        for _ in 0..<15 {
            let v = UInt32(rng.next() % UInt64(peers))
            t.removeAll(value: v)
            naive.removeAll(value: v)
        }
        check("removed peers")

        // Move existing prefixes to other peers and add fresh ones.
        for _ in 0..<60 { insert(naive.entries[Int(rng.next() % UInt64(naive.entries.count))].prefix) }
        for _ in 0..<60 { insert(pfx(anyAddress(), randomLength())) }
        check("moved and reinserted")

        for v in 0..<peers { t.removeAll(value: v) }
        #expect(t.count == 0)
        #expect(t.nodeCount == 0)
        #expect(t.lookup(anyAddress()) == nil)
    }

    // MARK: Scale

    /// 10,000 peers, each with a /32 and a /128; every hundredth also routes a
    /// /16 and a /48; one exit peer holds both default routes.
    @Test func tenThousandPeers() {
        let peers = 10_000
        let exit = UInt32(peers)
        var t = AllowedIPs<UInt32>()
        func host4(_ i: Int) -> IPAddress { .v4(IPv4Address(0x0a00_0000 | UInt32(i))) }                        // 10.0.x.y
        func host6(_ i: Int) -> IPAddress { .v6(IPv6Address(high: 0xfd00_0000_0000_0000, low: UInt64(i))) }  // fd00::i
        func wide4(_ i: Int) -> IPAddress { .v4(IPv4Address(0x0b00_0000 | UInt32(i / 100) << 16)) }          // 11.n.0.0
        func wide6(_ i: Int) -> IPAddress { .v6(IPv6Address(high: 0xfd01_0000_0000_0000 | UInt64(i / 100) << 16, low: 0)) }
        for i in 0..<peers {
            t.insert(pfx(host4(i), 32), value: UInt32(i))
            t.insert(pfx(host6(i), 128), value: UInt32(i))
            if i % 100 == 0 {
                t.insert(pfx(wide4(i), 16), value: UInt32(i))
                t.insert(pfx(wide6(i), 48), value: UInt32(i))
            }
        }
        t.insert(pfx("0.0.0.0/0"), value: exit)
        t.insert(pfx("::/0"), value: exit)
        #expect(t.count == 2 * peers + 2 * (peers / 100) + 2)
        #expect(t.nodeCount < 2 * t.count)
        for i in 0..<peers {
            #expect(t.lookup(host4(i)) == UInt32(i))
            #expect(t.lookup(host6(i)) == UInt32(i))
        }
        #expect(t.lookup(.v4(IPv4Address(0x0b05_1234))) == 500)
        #expect(t.lookup(.v6(IPv6Address(high: 0xfd01_0000_0063_ffff, low: 1))) == 9_900)
        #expect(t.lookup(host4(peers)) == exit)
        #expect(t.prefixes(for: 300) == [pfx(host4(300), 32), pfx(wide4(300), 16), pfx(host6(300), 128), pfx(wide6(300), 48)])

        for i in stride(from: 0, to: peers, by: 2) { t.removeAll(value: UInt32(i)) }
        #expect(t.count == peers + 2)
        for i in 0..<peers {
            let expected = i % 2 == 0 ? exit : UInt32(i)
            #expect(t.lookup(host4(i)) == expected)
            #expect(t.lookup(host6(i)) == expected)
        }
        #expect(t.lookup(.v4(IPv4Address(0x0b05_1234))) == exit)
        #expect(t.prefixes(for: 300).isEmpty)
        #expect(t.nodeCount < 2 * t.count)
    }
}
