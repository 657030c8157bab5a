// X25519 (RFC 7748) through libsodium. The shared secret of a low-order
// public key is all zeros; libsodium refuses it and so do we, as WireGuard does.
import CSodium
import MeshBase

public enum CryptoError: Error, Equatable, CustomStringConvertible {
    /// Diffie-Hellman with a low-order point (the result would be all zeros).
    case lowOrderPoint
    /// The bytes are not a valid Ed25519 point (or not its canonical encoding).
    case invalidEd25519Point
    /// An AEAD tag did not verify: the data was forged, corrupted, or the key is wrong.
    case authenticationFailed
    /// A signature did not verify.
    case badSignature
    /// A length was wrong for the operation.
    case badLength(expected: Int, got: Int)

    public var description: String {
        switch self {
        case .lowOrderPoint: return "public key is a low-order point"
        case .invalidEd25519Point: return "not a valid Ed25519 public key"
        case .authenticationFailed: return "authentication failed"
        case .badSignature: return "signature does not verify"
        case let .badLength(e, g): return "wrong length: expected \(e) bytes, got \(g)"
        }
    }
}

public enum X25519 {
    public static let keyLength = 32

    /// A Curve25519 private key (clamped when used by libsodium).
    public struct PrivateKey: Sendable {
        public let secret: SecretBytes

        public init(secret: SecretBytes) {
            precondition(secret.count == 32, "an X25519 private key is 32 bytes")
            self.secret = secret
        }

        /// A new random private key, clamped as RFC 7748 and WireGuard's `wg genkey` do.
        public static func generate() -> PrivateKey {
            PrivateKey(secret: SecretBytes(count: 32) { buf in
                SystemRandom.fill(buf)
                buf[0] &= 248; buf[31] &= 127; buf[31] |= 64
            })
        }

        public var publicKey: Bytes32 {
            Sodium.ensure()
            var out = Bytes32.zero
            out.withUnsafeMutableBytes { o in
                secret.withUnsafeBytes { s in
                    _ = crypto_scalarmult_curve25519_base(o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                          s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            return out
        }

        /// DH(self, peer). Throws `lowOrderPoint` when the result would be zero.
        public func sharedSecret(with peer: Bytes32) throws -> SecretBytes {
            Sodium.ensure()
            return try SecretBytes(count: 32) { out in
                let rc = secret.withUnsafeBytes { s in
                    peer.withUnsafeBytes { p in
                        crypto_scalarmult_curve25519(out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     p.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
                if rc != 0 { throw CryptoError.lowOrderPoint }
            }
        }
    }
}
