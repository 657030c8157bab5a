// BLAKE2s (RFC 7693) in Swift: libsodium has only BLAKE2b. WireGuard uses
// BLAKE2s-256 as HASH, keyed BLAKE2s-128 as MAC (mac1/mac2), and HMAC over
// BLAKE2s-256 for its KDF (see HMAC.swift).
//
//   h  = IV ^ param block (digest length, key length, fanout 1, depth 1)
//   for each 64-byte block: h = F(h, m, t, last)
//   output the first `outlen` bytes of h, little-endian.

/// An incremental BLAKE2s hasher with 1–32 bytes of output and an optional key of up to 32 bytes.
public struct BLAKE2s: Sendable {
    public static let blockLength = 64
    public static let maxOutputLength = 32
    public static let maxKeyLength = 32

    static let iv: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)

    // RFC 7693 section 2.7, SIGMA (ten rounds), flat: round r is sigma[16r ..< 16r+16].
    static let sigma: [UInt8] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
        11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
        7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
        9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
        2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
        12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
        13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
        6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
        10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
    ]

    var h: [UInt32]
    var t: UInt64 = 0
    var buffer = [UInt8](repeating: 0, count: 64)
    var bufferCount = 0
    public let outputLength: Int

    /// A hasher producing `outputLength` bytes, keyed with `key` (empty: unkeyed).
    public init(outputLength: Int = 32, key: [UInt8] = []) {
        precondition((1...32).contains(outputLength), "BLAKE2s output is 1 to 32 bytes")
        precondition(key.count <= 32, "BLAKE2s keys are at most 32 bytes")
        self.outputLength = outputLength
        let iv = BLAKE2s.iv
        h = [iv.0 ^ (0x0101_0000 | UInt32(key.count) << 8 | UInt32(outputLength)), iv.1, iv.2, iv.3, iv.4, iv.5, iv.6, iv.7]
        if !key.isEmpty {
            // The key is padded to a full block and hashed as the first block.
            buffer.replaceSubrange(0..<key.count, with: key)
            bufferCount = 64
        }
    }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < data.count {
            if bufferCount == 64 {
                // Only compress a full buffer once more input follows: the
                // final block must be compressed with the last-block flag.
                t &+= 64
                buffer.withUnsafeBytes { compress(block: $0.baseAddress!, last: false) }
                bufferCount = 0
            }
            let n = min(64 - bufferCount, data.count - offset)
            buffer.withUnsafeMutableBytes { dst in
                dst.baseAddress!.advanced(by: bufferCount).copyMemory(from: data.baseAddress!.advanced(by: offset), byteCount: n)
            }
            bufferCount += n
            offset += n
        }
    }

    public mutating func update<C: ContiguousBytes>(_ data: C) {
        data.withUnsafeBytes { update($0) }
    }

    /// The digest. The hasher must not be used afterwards.
    public mutating func finalize() -> [UInt8] {
        t &+= UInt64(bufferCount)
        for i in bufferCount..<64 { buffer[i] = 0 }
        buffer.withUnsafeBytes { compress(block: $0.baseAddress!, last: true) }
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<8 {
            let w = h[i]
            out[4 * i] = UInt8(truncatingIfNeeded: w); out[4 * i + 1] = UInt8(truncatingIfNeeded: w >> 8)
            out[4 * i + 2] = UInt8(truncatingIfNeeded: w >> 16); out[4 * i + 3] = UInt8(truncatingIfNeeded: w >> 24)
        }
        // Wipe state that may derive from a key.
        for i in 0..<64 { buffer[i] = 0 }
        for i in 0..<8 { h[i] = 0 }
        out.removeLast(32 - outputLength)
        return out
    }

    // The message words and the working vector live on the stack (no heap
    // allocation per block: a handshake flood is answered with MACs).
    private mutating func compress(block: UnsafeRawPointer, last: Bool) {
        let iv = BLAKE2s.iv
        let t = self.t
        h.withUnsafeMutableBufferPointer { h in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 32) { scratch in
                let m = scratch.baseAddress!, v = m + 16
                for i in 0..<16 { m[i] = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
                for i in 0..<8 { v[i] = h[i] }
                v[8] = iv.0; v[9] = iv.1; v[10] = iv.2; v[11] = iv.3
                v[12] = iv.4 ^ UInt32(truncatingIfNeeded: t); v[13] = iv.5 ^ UInt32(truncatingIfNeeded: t >> 32)
                v[14] = last ? ~iv.6 : iv.6; v[15] = iv.7
                @inline(__always) func g(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt32, _ y: UInt32) {
                    v[a] = v[a] &+ v[b] &+ x; v[d] = (v[d] ^ v[a]).rotatedRight(16)
                    v[c] = v[c] &+ v[d]; v[b] = (v[b] ^ v[c]).rotatedRight(12)
                    v[a] = v[a] &+ v[b] &+ y; v[d] = (v[d] ^ v[a]).rotatedRight(8)
                    v[c] = v[c] &+ v[d]; v[b] = (v[b] ^ v[c]).rotatedRight(7)
                }
                BLAKE2s.sigma.withUnsafeBufferPointer { sigma in
                    for r in 0..<10 {
                        let s = sigma.baseAddress! + 16 * r
                        g(0, 4, 8, 12, m[Int(s[0])], m[Int(s[1])]); g(1, 5, 9, 13, m[Int(s[2])], m[Int(s[3])])
                        g(2, 6, 10, 14, m[Int(s[4])], m[Int(s[5])]); g(3, 7, 11, 15, m[Int(s[6])], m[Int(s[7])])
                        g(0, 5, 10, 15, m[Int(s[8])], m[Int(s[9])]); g(1, 6, 11, 12, m[Int(s[10])], m[Int(s[11])])
                        g(2, 7, 8, 13, m[Int(s[12])], m[Int(s[13])]); g(3, 4, 9, 14, m[Int(s[14])], m[Int(s[15])])
                    }
                }
                for i in 0..<8 { h[i] ^= v[i] ^ v[i + 8] }
                // The working state may derive from a key.
                for i in 0..<32 { m[i] = 0 }
            }
        }
    }

    /// One-shot BLAKE2s of the concatenation of `parts`.
    public static func hash(_ parts: [UInt8]..., outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        var hasher = BLAKE2s(outputLength: outputLength, key: key)
        for p in parts { hasher.update(p) }
        return hasher.finalize()
    }
}

extension UInt32 {
    @inline(__always) func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
    @inline(__always) func rotatedLeft(_ n: UInt32) -> UInt32 { (self << n) | (self >> (32 - n)) }
}
