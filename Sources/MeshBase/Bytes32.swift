// Bytes32: a 32-byte value stored inline (no heap allocation), used for
// public keys and hashes. Equality is ordinary (not constant-time): use it for
// public values only. Secrets live in MeshCrypto.SecretBytes.

/// Exactly 32 bytes, stored inline as four little-endian words.
public struct Bytes32: Hashable, Sendable, Comparable {
    @usableFromInline var w0: UInt64
    @usableFromInline var w1: UInt64
    @usableFromInline var w2: UInt64
    @usableFromInline var w3: UInt64

    public static let count = 32
    public static let zero = Bytes32(w0: 0, w1: 0, w2: 0, w3: 0)

    @inlinable init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// The bytes of `bytes`, or nil unless there are exactly 32 of them.
    @inlinable public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard bytes.count == 32 else { return nil }
        self = .zero
        withUnsafeMutableBytes { dst in
            var i = 0
            for b in bytes { dst[i] = b; i += 1 }
        }
    }

    /// Reads 32 bytes starting at `pointer`.
    @inlinable public init(pointer: UnsafeRawPointer) {
        self = .zero
        withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: 32)) }
    }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self) { try body($0) }
    }

    @inlinable public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeMutableBytes(of: &self) { try body($0) }
    }

    /// The 32 bytes as an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// True when every byte is zero.
    public var isZero: Bool { (w0 | w1 | w2 | w3) == 0 }

    /// Lexicographic order of the bytes (used for deterministic tie-breaks).
    public static func < (a: Bytes32, b: Bytes32) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.lexicographicallyPrecedes(y) } }
    }

    /// Standard base64 with padding (44 characters), as WireGuard prints keys.
    public var base64: String { Base64.encode(bytes) }

    /// The key abbreviated for logs and tables: `AbCd…WxYz`.
    public var abbreviated: String { Base64.abbreviate(base64) }

    /// The value from standard base64, or nil when it is not exactly 32 bytes.
    public init?(base64: String) {
        guard let raw = Base64.decode(base64), let v = Bytes32(raw) else { return nil }
        self = v
    }
}

extension Bytes32: CustomStringConvertible {
    public var description: String { abbreviated }
}
