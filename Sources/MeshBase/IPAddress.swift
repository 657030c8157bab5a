// IPv4 and IPv6 addresses as plain values, with strict parsing and canonical
// text (RFC 5952 for IPv6: lowercase, longest run of two or more zero groups
// compressed, leftmost on a tie, no embedded IPv4 form).

/// An IPv4 address; `value` holds the four octets in network order, most
/// significant first (10.99.1.2 is 0x0a630102).
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    public var octets: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    /// Dotted-quad text: four decimal octets 0–255, no leading zeros (which
    /// some parsers read as octal), nothing else.
    public init?(_ text: String) {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            if p.count > 1 && p.first == UInt8(ascii: "0") { return nil }
            let n = p.reduce(0) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
            guard n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    public var description: String { octets.map(String.init).joined(separator: ".") }
    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

/// An IPv6 address as 16 bytes in network order (`high` holds bytes 0–7).
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h; low = l
    }

    public var bytes: [UInt8] {
        (0..<16).map { i in i < 8 ? UInt8(high >> (56 - 8 * UInt64(i)) & 0xff) : UInt8(low >> (56 - 8 * UInt64(i - 8)) & 0xff) }
    }

    /// The eight 16-bit groups.
    public var groups: [UInt16] {
        (0..<8).map { i in i < 4 ? UInt16(high >> (48 - 16 * UInt64(i)) & 0xffff) : UInt16(low >> (48 - 16 * UInt64(i - 4)) & 0xffff) }
    }

    public init(groups g: [UInt16]) {
        precondition(g.count == 8, "an IPv6 address has eight groups")
        high = g[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = g[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// RFC 4291 text: eight hex groups, one `::`, or a trailing dotted quad.
    public init?(_ text: String) {
        let s = Array(text.utf8)
        guard !s.isEmpty, s.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var sawDouble = false
        var i = 0
        if s.starts(with: [58, 58]) { sawDouble = true; i = 2 }
        else if s.first == 58 { return nil }
        while i < s.count {
            // A dotted quad may end the address.
            var j = i
            while j < s.count && s[j] != 58 { j += 1 }
            let token = Array(s[i..<j])
            if token.contains(UInt8(ascii: ".")) {
                guard j == s.count, let v4 = IPv4Address(String(decoding: token, as: UTF8.self)) else { return nil }
                let pair = [UInt16(v4.value >> 16), UInt16(v4.value & 0xffff)]
                if sawDouble { tail += pair } else { head += pair }
                i = j
                break
            }
            guard (1...4).contains(token.count) else { return nil }
            var v: UInt16 = 0
            for c in token {
                let d: UInt16
                switch c {
                case 48...57: d = UInt16(c - 48)
                case 97...102: d = UInt16(c - 87)
                case 65...70: d = UInt16(c - 55)
                default: return nil
                }
                v = v << 4 | d
            }
            if sawDouble { tail.append(v) } else { head.append(v) }
            i = j
            if i == s.count { break }
            // At a colon: `::` or `:`.
            if i + 1 < s.count && s[i + 1] == 58 {
                guard !sawDouble else { return nil }
                sawDouble = true
                i += 2
            } else {
                i += 1
                guard i < s.count else { return nil }   // trailing single colon
            }
        }
        let n = head.count + tail.count
        if sawDouble {
            guard n <= 7 else { return nil }
            self.init(groups: head + [UInt16](repeating: 0, count: 8 - n) + tail)
        } else {
            guard n == 8 else { return nil }
            self.init(groups: head)
        }
    }

    public var description: String {
        let g = groups
        // Longest run of zero groups, length >= 2, leftmost on a tie.
        var bestStart = -1, bestLen = 0, k = 0
        while k < 8 {
            if g[k] == 0 {
                var e = k
                while e < 8 && g[e] == 0 { e += 1 }
                if e - k > bestLen { bestStart = k; bestLen = e - k }
                k = e
            } else { k += 1 }
        }
        func hex(_ v: UInt16) -> String { String(v, radix: 16) }
        if bestLen < 2 { return g.map(hex).joined(separator: ":") }
        let left = g[0..<bestStart].map(hex).joined(separator: ":")
        let right = g[(bestStart + bestLen)...].map(hex).joined(separator: ":")
        return left + "::" + right
    }

    /// Uncompressed text: all eight groups, no zero padding (`fd99:6d67:0:0:…`).
    public var uncompressed: String { groups.map { String($0, radix: 16) }.joined(separator: ":") }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }
}
