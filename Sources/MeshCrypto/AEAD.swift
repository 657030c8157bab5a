// AEADs through libsodium:
//  - ChaCha20-Poly1305 (RFC 8439, "IETF": 96-bit nonce). WireGuard's nonce is
//    32 zero bits followed by the 64-bit little-endian counter.
//  - XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, 192-bit nonce), used by
//    WireGuard cookie replies.
// The `…InPlace` functions take raw pointers so the data path can seal and
// open packet buffers without allocating; ciphertext may alias plaintext.
import CSodium
import MeshBase

public enum ChaChaPoly {
    public static let keyLength = 32
    public static let tagLength = 16
    public static let nonceLength = 12

    /// Encrypts `length` bytes at `data` in place and writes the 16-byte tag at `tag`.
    public static func sealInPlace(key: UnsafeRawPointer, counter: UInt64,
                                   data: UnsafeMutableRawPointer, length: Int,
                                   tag: UnsafeMutableRawPointer,
                                   aad: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        Sodium.ensure()
        var n: (UInt32, UInt32, UInt32) = (0, UInt32(truncatingIfNeeded: counter).littleEndian, UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
        withUnsafeBytes(of: &n) { np in
            let d = data.assumingMemoryBound(to: UInt8.self)
            _ = crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                d, tag.assumingMemoryBound(to: UInt8.self), nil, d, UInt64(length),
                aad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(aad.count), nil,
                np.baseAddress!.assumingMemoryBound(to: UInt8.self), key.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Verifies the tag and decrypts `length` bytes at `data` in place. On
    /// failure it returns false and libsodium has zeroed the data: the caller drops it.
    public static func openInPlace(key: UnsafeRawPointer, counter: UInt64,
                                   data: UnsafeMutableRawPointer, length: Int,
                                   tag: UnsafeRawPointer,
                                   aad: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Bool {
        Sodium.ensure()
        var n: (UInt32, UInt32, UInt32) = (0, UInt32(truncatingIfNeeded: counter).littleEndian, UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
        return withUnsafeBytes(of: &n) { np in
            let d = data.assumingMemoryBound(to: UInt8.self)
            return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                d, nil, d, UInt64(length), tag.assumingMemoryBound(to: UInt8.self),
                aad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(aad.count),
                np.baseAddress!.assumingMemoryBound(to: UInt8.self), key.assumingMemoryBound(to: UInt8.self)) == 0
        }
    }

    /// ciphertext || tag of `plaintext` under `key` and the WireGuard counter nonce.
    public static func seal<K: ContiguousBytes>(key: K, counter: UInt64, plaintext: [UInt8], aad: [UInt8] = []) -> [UInt8] {
        var out = plaintext + [UInt8](repeating: 0, count: tagLength)
        key.withUnsafeBytes { k in
            precondition(k.count == keyLength, "ChaCha20-Poly1305 keys are 32 bytes")
            aad.withUnsafeBytes { a in
                out.withUnsafeMutableBytes { o in
                    sealInPlace(key: k.baseAddress!, counter: counter, data: o.baseAddress!, length: plaintext.count,
                                tag: o.baseAddress! + plaintext.count, aad: a)
                }
            }
        }
        return out
    }

    /// The plaintext of ciphertext || tag, or `authenticationFailed`.
    public static func open<K: ContiguousBytes>(key: K, counter: UInt64, ciphertext: [UInt8], aad: [UInt8] = []) throws -> [UInt8] {
        guard ciphertext.count >= tagLength else { throw CryptoError.authenticationFailed }
        let n = ciphertext.count - tagLength
        var out = ciphertext
        let ok = key.withUnsafeBytes { k in
            precondition(k.count == keyLength, "ChaCha20-Poly1305 keys are 32 bytes")
            return aad.withUnsafeBytes { a in
                out.withUnsafeMutableBytes { o in
                    openInPlace(key: k.baseAddress!, counter: counter, data: o.baseAddress!, length: n,
                                tag: o.baseAddress! + n, aad: a)
                }
            }
        }
        guard ok else { throw CryptoError.authenticationFailed }
        out.removeLast(tagLength)
        return out
    }
}

extension ChaChaPoly {
    /// ciphertext || tag under an arbitrary 12-byte nonce (RFC 8439 form).
    public static func seal<K: ContiguousBytes>(key: K, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8] = []) -> [UInt8] {
        precondition(nonce.count == nonceLength, "ChaCha20-Poly1305 nonces are 12 bytes")
        return AEADCall.seal(crypto_aead_chacha20poly1305_ietf_encrypt, key: key, nonce: nonce, plaintext: plaintext, aad: aad)
    }

    public static func open<K: ContiguousBytes>(key: K, nonce: [UInt8], ciphertext: [UInt8], aad: [UInt8] = []) throws -> [UInt8] {
        guard nonce.count == nonceLength else { throw CryptoError.badLength(expected: nonceLength, got: nonce.count) }
        return try AEADCall.open(crypto_aead_chacha20poly1305_ietf_decrypt, key: key, nonce: nonce, ciphertext: ciphertext, aad: aad)
    }
}

/// The combined-mode libsodium AEAD calls, which share one signature.
enum AEADCall {
    typealias Encrypt = (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt64>?, UnsafePointer<UInt8>?, UInt64,
                         UnsafePointer<UInt8>?, UInt64, UnsafePointer<UInt8>?, UnsafePointer<UInt8>, UnsafePointer<UInt8>) -> Int32
    typealias Decrypt = (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<UInt8>?,
                         UnsafePointer<UInt8>, UInt64, UnsafePointer<UInt8>?, UInt64, UnsafePointer<UInt8>, UnsafePointer<UInt8>) -> Int32
    static let tagLength = 16

    static func seal<K: ContiguousBytes>(_ encrypt: Encrypt, key: K, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8]) -> [UInt8] {
        Sodium.ensure()
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var clen: UInt64 = 0
        key.withUnsafeBytes { k in
            precondition(k.count == 32, "AEAD keys are 32 bytes")
            _ = encrypt(&out, &clen, plaintext, UInt64(plaintext.count), aad, UInt64(aad.count), nil, nonce,
                        k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return out
    }

    static func open<K: ContiguousBytes>(_ decrypt: Decrypt, key: K, nonce: [UInt8], ciphertext: [UInt8], aad: [UInt8]) throws -> [UInt8] {
        Sodium.ensure()
        guard ciphertext.count >= tagLength else { throw CryptoError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        var mlen: UInt64 = 0
        let rc = key.withUnsafeBytes { k in
            precondition(k.count == 32, "AEAD keys are 32 bytes")
            return decrypt(&out, &mlen, nil, ciphertext, UInt64(ciphertext.count), aad, UInt64(aad.count), nonce,
                           k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else { throw CryptoError.authenticationFailed }
        return out
    }
}

public enum XChaChaPoly {
    public static let keyLength = 32
    public static let nonceLength = 24
    public static let tagLength = 16

    /// ciphertext || tag.
    public static func seal<K: ContiguousBytes>(key: K, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8] = []) -> [UInt8] {
        precondition(nonce.count == nonceLength, "XChaCha20-Poly1305 nonces are 24 bytes")
        return AEADCall.seal(crypto_aead_xchacha20poly1305_ietf_encrypt, key: key, nonce: nonce, plaintext: plaintext, aad: aad)
    }

    public static func open<K: ContiguousBytes>(key: K, nonce: [UInt8], ciphertext: [UInt8], aad: [UInt8] = []) throws -> [UInt8] {
        guard nonce.count == nonceLength else { throw CryptoError.badLength(expected: nonceLength, got: nonce.count) }
        return try AEADCall.open(crypto_aead_xchacha20poly1305_ietf_decrypt, key: key, nonce: nonce, ciphertext: ciphertext, aad: aad)
    }
}
