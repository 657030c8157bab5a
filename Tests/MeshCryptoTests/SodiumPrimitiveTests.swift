import Testing
import MeshBase
@testable import MeshCrypto

func hex(_ s: String) -> [UInt8] { Hex.decode(s.filter { !$0.isWhitespace })! }
func key32(_ s: String) -> Bytes32 { Bytes32(hex(s))! }

@Suite struct X25519Tests {
    // RFC 7748 section 5.2, first vector.
    @Test func rfc7748ScalarMultiplication() throws {
        let k = X25519.PrivateKey(secret: SecretBytes(copying: hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")))
        let u = key32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
        let out = try k.sharedSecret(with: u)
        #expect(out.unsafeExportedBytes() == hex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"))
    }

    // RFC 7748 section 6.1.
    @Test func rfc7748DiffieHellman() throws {
        let alice = X25519.PrivateKey(secret: SecretBytes(copying: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        let bob = X25519.PrivateKey(secret: SecretBytes(copying: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))
        #expect(alice.publicKey == key32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(bob.publicKey == key32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        #expect(try alice.sharedSecret(with: bob.publicKey).unsafeExportedBytes() == shared)
        #expect(try bob.sharedSecret(with: alice.publicKey).unsafeExportedBytes() == shared)
    }

    @Test func rejectsLowOrderPoints() {
        let k = X25519.PrivateKey.generate()
        var one = [UInt8](repeating: 0, count: 32); one[0] = 1
        #expect(throws: CryptoError.lowOrderPoint) { try k.sharedSecret(with: .zero) }
        #expect(throws: CryptoError.lowOrderPoint) { try k.sharedSecret(with: Bytes32(one)!) }
    }

    @Test func generatedKeysAreClampedAndAgree() throws {
        let a = X25519.PrivateKey.generate(), b = X25519.PrivateKey.generate()
        let raw = a.secret.unsafeExportedBytes()
        #expect(raw[0] & 7 == 0 && raw[31] & 0x80 == 0 && raw[31] & 0x40 != 0)
        #expect(try a.sharedSecret(with: b.publicKey).constantTimeEquals(b.sharedSecret(with: a.publicKey)))
    }
}

@Suite struct AEADTests {
    static let sunscreen = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
    static let key = Array(UInt8(0x80)...UInt8(0x9f))
    static let aad = hex("50515253c0c1c2c3c4c5c6c7")

    // RFC 8439 section 2.8.2.
    @Test func rfc8439Vector() throws {
        let nonce = hex("070000004041424344454647")
        let sealed = ChaChaPoly.seal(key: Self.key, nonce: nonce, plaintext: Self.sunscreen, aad: Self.aad)
        let expected = hex("""
            d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116
            1ae10b594f09e26a7e902ecbd0600691
            """)
        #expect(sealed == expected)
        #expect(try ChaChaPoly.open(key: Self.key, nonce: nonce, ciphertext: sealed, aad: Self.aad) == Self.sunscreen)
    }

    @Test func tamperingIsDetected() {
        let nonce = hex("070000004041424344454647")
        let sealed = ChaChaPoly.seal(key: Self.key, nonce: nonce, plaintext: Self.sunscreen, aad: Self.aad)
        for i in [0, 50, sealed.count - 1] {
            var bad = sealed; bad[i] ^= 1
            #expect(throws: CryptoError.authenticationFailed) { try ChaChaPoly.open(key: Self.key, nonce: nonce, ciphertext: bad, aad: Self.aad) }
        }
        #expect(throws: CryptoError.authenticationFailed) { try ChaChaPoly.open(key: Self.key, nonce: nonce, ciphertext: sealed, aad: []) }
        #expect(throws: CryptoError.authenticationFailed) { try ChaChaPoly.open(key: Self.key, nonce: nonce, ciphertext: Array(sealed.prefix(15))) }
    }

    // The WireGuard counter nonce is 4 zero bytes then the 64-bit counter, little-endian.
    @Test func counterNonceLayout() throws {
        let counter: UInt64 = 0x0102_0304_0506_0708
        let nonce: [UInt8] = [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        let a = ChaChaPoly.seal(key: Self.key, counter: counter, plaintext: Self.sunscreen)
        #expect(a == ChaChaPoly.seal(key: Self.key, nonce: nonce, plaintext: Self.sunscreen))
        #expect(try ChaChaPoly.open(key: Self.key, counter: counter, ciphertext: a) == Self.sunscreen)
        #expect(throws: CryptoError.authenticationFailed) { try ChaChaPoly.open(key: Self.key, counter: counter + 1, ciphertext: a) }
    }

    @Test func inPlaceOpenFailsWithoutRevealingPlaintext() {
        var buf = Self.sunscreen + [UInt8](repeating: 0, count: 16)
        let n = Self.sunscreen.count
        Self.key.withUnsafeBytes { k in
            buf.withUnsafeMutableBytes { b in
                ChaChaPoly.sealInPlace(key: k.baseAddress!, counter: 7, data: b.baseAddress!, length: n, tag: b.baseAddress! + n)
            }
        }
        let sealed = buf
        let ok = Self.key.withUnsafeBytes { k in
            buf.withUnsafeMutableBytes { b in
                ChaChaPoly.openInPlace(key: k.baseAddress!, counter: 8, data: b.baseAddress!, length: n, tag: b.baseAddress! + n)
            }
        }
        #expect(!ok)
        #expect(Array(buf.prefix(n)) != Self.sunscreen)
        #expect(Array(sealed.prefix(n)) != Self.sunscreen)
        // The right counter opens it in place.
        buf = sealed
        let ok2 = Self.key.withUnsafeBytes { k in
            buf.withUnsafeMutableBytes { b in
                ChaChaPoly.openInPlace(key: k.baseAddress!, counter: 7, data: b.baseAddress!, length: n, tag: b.baseAddress! + n)
            }
        }
        #expect(ok2)
        #expect(Array(buf.prefix(n)) == Self.sunscreen)
    }

    // draft-irtf-cfrg-xchacha-03 appendix A.3.1.
    @Test func xchachaDraftVector() throws {
        let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
        let sealed = XChaChaPoly.seal(key: Self.key, nonce: nonce, plaintext: Self.sunscreen, aad: Self.aad)
        let expected = hex("""
            bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e
            c0875924c1c7987947deafd8780acf49
            """)
        #expect(sealed == expected)
        #expect(try XChaChaPoly.open(key: Self.key, nonce: nonce, ciphertext: sealed, aad: Self.aad) == Self.sunscreen)
        var bad = sealed; bad[3] ^= 0x80
        #expect(throws: CryptoError.authenticationFailed) { try XChaChaPoly.open(key: Self.key, nonce: nonce, ciphertext: bad, aad: Self.aad) }
        #expect(throws: CryptoError.badLength(expected: 24, got: 12)) { try XChaChaPoly.open(key: Self.key, nonce: Array(nonce.prefix(12)), ciphertext: sealed) }
    }
}

@Suite struct Ed25519Tests {
    // RFC 8032 section 7.1, tests 1-3.
    @Test(arguments: [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ])
    func rfc8032(seed: String, publicKey: String, message: String, signature: String) throws {
        let k = try Ed25519.SigningKey(seed: hex(seed))
        #expect(k.publicKey == key32(publicKey))
        let msg = message.isEmpty ? [] : hex(message)
        let sig = k.sign(msg)
        #expect(sig == hex(signature))
        #expect(Ed25519.verify(signature: sig, message: msg, publicKey: k.publicKey))
        #expect(!Ed25519.verify(signature: sig, message: msg + [0], publicKey: k.publicKey))
        var bad = sig; bad[10] ^= 4
        #expect(!Ed25519.verify(signature: bad, message: msg, publicKey: k.publicKey))
        #expect(!Ed25519.verify(signature: Array(sig.prefix(63)), message: msg, publicKey: k.publicKey))
        #expect(k.seed.unsafeExportedBytes() == hex(seed))
    }

    @Test func rejectsBadSeedLength() {
        #expect(throws: CryptoError.badLength(expected: 32, got: 31)) { try Ed25519.SigningKey(seed: [UInt8](repeating: 0, count: 31)) }
    }

    @Test func pointValidation() {
        var identity = [UInt8](repeating: 0, count: 32); identity[0] = 1   // small order
        #expect(!Ed25519.isValidPublicKey(Bytes32(identity)!))
        #expect(!Ed25519.isValidPublicKey(Bytes32([UInt8](repeating: 0xff, count: 32))!))
        #expect(!Ed25519.isValidPublicKey(.zero))
        #expect(Ed25519.isValidPublicKey(key32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")))
    }

    // The X25519 key pair derived from an Ed25519 pair is itself a key pair.
    @Test func conversionToX25519IsConsistent() throws {
        for _ in 0..<20 {
            let k = Ed25519.SigningKey.generate()
            let xPriv = k.x25519PrivateKey
            #expect(try Ed25519.x25519PublicKey(k.publicKey) == xPriv.publicKey)
        }
    }
}

@Suite struct SecretBytesTests {
    @Test func neverPrintsItsBytes() {
        let s = SecretBytes(copying: [1, 2, 3])
        #expect(s.description == "SecretBytes(3 bytes, redacted)")
        #expect("\(s)".contains("redacted"))
    }

    @Test func constantTimeEquality() {
        let a = SecretBytes(copying: [1, 2, 3]), b = SecretBytes(copying: [1, 2, 3]), c = SecretBytes(copying: [1, 2, 4])
        #expect(a.constantTimeEquals(b))
        #expect(!a.constantTimeEquals(c))
        #expect(!ConstantTime.equal([1, 2, 3] as [UInt8], [1, 2] as [UInt8]))
        #expect(ConstantTime.equal([UInt8](), [UInt8]()))
    }

    @Test func wipeZeroes() {
        var a: [UInt8] = [9, 9, 9]
        ConstantTime.wipe(&a)
        #expect(a == [0, 0, 0])
        #expect(a.withUnsafeBytes { ConstantTime.isZero($0) })
    }

    @Test func throwingInitializerPropagates() {
        struct Boom: Error {}
        #expect(throws: Boom.self) { _ = try SecretBytes(count: 8) { _ in throw Boom() } }
    }
}
