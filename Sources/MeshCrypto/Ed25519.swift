// Ed25519 (RFC 8032) through libsodium, and the birational map to X25519
// that gives every identity its WireGuard key pair:
//   WireGuard private = crypto_sign_ed25519_sk_to_curve25519(sk)
//                     = clamp(SHA-512(seed)[0..<32])
//   WireGuard public  = crypto_sign_ed25519_pk_to_curve25519(pk)
//                     = Montgomery u of the Edwards point, (1 + y) / (1 - y)
import CSodium
import MeshBase

public enum Ed25519 {
    public static let publicKeyLength = 32
    public static let seedLength = 32
    public static let secretKeyLength = 64
    public static let signatureLength = 64

    /// A signing key: libsodium's 64-byte secret key (seed || public key).
    public struct SigningKey: Sendable {
        public let secretKey: SecretBytes
        public let publicKey: Bytes32

        /// The key pair of a 32-byte seed (RFC 8032's "private key").
        public init<S: ContiguousBytes>(seed: S) throws {
            Sodium.ensure()
            var pk = Bytes32.zero
            let sk = try seed.withUnsafeBytes { s -> SecretBytes in
                guard s.count == seedLength else { throw CryptoError.badLength(expected: seedLength, got: s.count) }
                return SecretBytes(count: secretKeyLength) { skBuf in
                    pk.withUnsafeMutableBytes { p in
                        _ = crypto_sign_seed_keypair(p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     skBuf.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            secretKey = sk
            publicKey = pk
        }

        /// A fresh random key pair.
        public static func generate() -> SigningKey {
            let seed = SecretBytes.random(count: seedLength)
            // A 32-byte seed always yields a key pair.
            return try! SigningKey(seed: seed)
        }

        /// The first half of the secret key.
        public var seed: SecretBytes {
            secretKey.withUnsafeBytes { sk in SecretBytes(copying: sk[0..<32]) }
        }

        /// A detached 64-byte signature of `message`.
        public func sign(_ message: UnsafeRawBufferPointer) -> [UInt8] {
            Sodium.ensure()
            var sig = [UInt8](repeating: 0, count: signatureLength)
            secretKey.withUnsafeBytes { sk in
                _ = crypto_sign_detached(&sig, nil, message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                         UInt64(message.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            return sig
        }

        public func sign(_ message: [UInt8]) -> [UInt8] { message.withUnsafeBytes { sign($0) } }

        /// The X25519 private key WireGuard uses for this identity.
        public var x25519PrivateKey: X25519.PrivateKey {
            Sodium.ensure()
            return X25519.PrivateKey(secret: SecretBytes(count: 32) { out in
                secretKey.withUnsafeBytes { sk in
                    _ = crypto_sign_ed25519_sk_to_curve25519(out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                             sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            })
        }
    }

    /// True when `signature` is a valid signature of `message` by `publicKey`.
    public static func verify(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, publicKey: Bytes32) -> Bool {
        Sodium.ensure()
        guard signature.count == signatureLength else { return false }
        return publicKey.withUnsafeBytes { pk in
            crypto_sign_verify_detached(signature.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                        message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                                        pk.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
        }
    }

    public static func verify(signature: [UInt8], message: [UInt8], publicKey: Bytes32) -> Bool {
        signature.withUnsafeBytes { s in message.withUnsafeBytes { m in verify(signature: s, message: m, publicKey: publicKey) } }
    }

    /// True when `key` encodes a point on the curve, in the main subgroup, of
    /// order not small (libsodium's `crypto_core_ed25519_is_valid_point`).
    public static func isValidPublicKey(_ key: Bytes32) -> Bool {
        Sodium.ensure()
        return key.withUnsafeBytes { crypto_core_ed25519_is_valid_point($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1 }
    }

    /// The X25519 public key of an Ed25519 public key; throws for keys that are
    /// not valid points.
    public static func x25519PublicKey(_ key: Bytes32) throws -> Bytes32 {
        Sodium.ensure()
        var out = Bytes32.zero
        let rc = out.withUnsafeMutableBytes { o in
            key.withUnsafeBytes { k in
                crypto_sign_ed25519_pk_to_curve25519(o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else { throw CryptoError.invalidEd25519Point }
        return out
    }
}
