// IP addresses of either family, network prefixes, and UDP endpoints: the
// vocabulary of allowed IPs, peer endpoints and socket addresses.

/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family (IPv6 without brackets).
    public init?(_ text: String) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var description: String {
        switch self {
        case .v4(let a): return a.description
        case .v6(let a): return a.description
        }
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }
    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        switch self {
        case .v4(let a): return a.value >> 24 == 127
        case .v6(let a): return a.high == 0 && a.low == 1
        }
    }

    /// Address width in bits (32 or 128).
    public var bitWidth: Int { isIPv4 ? 32 : 128 }

    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4; others unchanged.
    public var unmapped: IPAddress {
        if case .v6(let a) = self, a.high == 0, a.low >> 32 == 0xffff { return .v4(IPv4Address(UInt32(truncatingIfNeeded: a.low))) }
        return self
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        switch (a, b) {
        case let (.v4(x), .v4(y)): return x < y
        case let (.v6(x), .v6(y)): return x < y
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }
}

/// A network prefix such as 10.99.0.0/16 or fd99:6d67::/64. The address is
/// kept masked to the prefix length (host bits zero), as the kernel keeps
/// allowed IPs.
public struct IPPrefix: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    /// The prefix of `address` with `length` bits; host bits are cleared.
    /// Nil when `length` exceeds the address width.
    public init?(_ address: IPAddress, length: Int) {
        guard length >= 0, length <= address.bitWidth else { return nil }
        self.length = length
        switch address {
        case .v4(let a):
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
            self.address = .v4(IPv4Address(a.value & mask))
        case .v6(let a):
            let hiMask: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << UInt64(64 - length))
            let loMask: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
            self.address = .v6(IPv6Address(high: a.high & hiMask, low: a.low & loMask))
        }
    }

    /// `address/length`; a bare address is a host prefix (/32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addr = IPAddress(String(parts[0])) else { return nil }
        var len = addr.bitWidth
        if parts.count == 2 {
            let digits = parts[1]
            guard (1...3).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else { return nil }
            len = n
        }
        self.init(addr, length: len)
    }

    /// A host prefix: /32 or /128.
    public static func host(_ address: IPAddress) -> IPPrefix { IPPrefix(address, length: address.bitWidth)! }

    public func contains(_ other: IPAddress) -> Bool {
        guard let p = IPPrefix(other, length: length), other.isIPv4 == address.isIPv4 else { return false }
        return p.address == address
    }

    public var description: String { "\(address)/\(length)" }

    public static func < (a: IPPrefix, b: IPPrefix) -> Bool { (a.address, a.length) < (b.address, b.length) }
}

/// A UDP endpoint: address and port. Text form `1.2.3.4:51820` or `[fd00::1]:51820`.
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, port: UInt16) { self.address = address; self.port = port }

    /// Parses `a.b.c.d:port` or `[v6]:port` (numeric only; names are resolved elsewhere).
    public init?(_ text: String) {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            guard let a = IPv6Address(String(host)) else { return nil }
            address = .v6(a)
        } else {
            guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard let a = IPv4Address(String(host)) else { return nil }
            address = .v4(a)
        }
        guard (1...5).contains(portText.count), portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let p = Int(portText), p <= 65535 else { return nil }
        port = UInt16(p)
    }

    public var description: String {
        switch address {
        case .v4(let a): return "\(a):\(port)"
        case .v6(let a): return "[\(a)]:\(port)"
        }
    }

    public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.address, a.port) < (b.address, b.port) }
}
