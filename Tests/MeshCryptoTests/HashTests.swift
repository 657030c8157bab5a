import Testing
import MeshBase
@testable import MeshCrypto

@Suite struct BLAKE2sTests {
    // RFC 7693 appendix B.
    @Test func rfc7693Abc() {
        #expect(BLAKE2s.hash(Array("abc".utf8)) == hex("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"))
    }

    // RFC 7693 appendix E: the grand hash over output lengths 16/20/28/32,
    // input lengths 0..1024, keyed and unkeyed.
    @Test func rfc7693SelfTest() {
        func seq(_ len: Int, _ seed: UInt32) -> [UInt8] {
            var a = 0xDEAD4BAD &* seed, b: UInt32 = 1
            return (0..<len).map { _ in let t = a &+ b; a = b; b = t; return UInt8(t >> 24) }
        }
        var grand = BLAKE2s(outputLength: 32)
        for outlen in [16, 20, 28, 32] {
            for inlen in [0, 3, 64, 65, 255, 1024] {
                let input = seq(inlen, UInt32(inlen))
                grand.update(BLAKE2s.hash(input, outputLength: outlen))
                let key = seq(outlen, UInt32(outlen))
                grand.update(BLAKE2s.hash(input, outputLength: outlen, key: key))
            }
        }
        #expect(grand.finalize() == hex("6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe"))
    }

    // Cross-checked with Python's hashlib.blake2s.
    @Test func keyedAndShortOutputs() {
        let key = Array(UInt8(0)...UInt8(31))
        #expect(BLAKE2s.hash([], key: key) == hex("48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"))
        #expect(BLAKE2s.hash(Array("hello".utf8), outputLength: 16, key: key) == hex("1f946dc212a39570bc06fd378517a91e"))
    }

    // WireGuard's CONSTRUCTION and IDENTIFIER hashes (Ci and Hi as in the kernel's noise.c).
    @Test func wireGuardInitialChainingKeyAndHash() {
        let ci = BLAKE2s.hash(Array("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s".utf8))
        #expect(ci == hex("60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36"))
        #expect(BLAKE2s.hash(ci, Array("WireGuard v1 zx2c4 Jason@zx2c4.com".utf8)) == hex("2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3"))
    }

    @Test func incrementalEqualsOneShot() {
        var rng = SeededRandom(seed: 7)
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let data = (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let oneShot = BLAKE2s.hash(data, key: [1, 2, 3])
            var h = BLAKE2s(key: [1, 2, 3])
            var i = 0
            while i < len {
                let n = Int(rng.next() % 70)
                h.update(Array(data[i..<min(len, i + n)]))
                i += n
            }
            #expect(h.finalize() == oneShot, "length \(len)")
        }
    }
}

@Suite struct HMACAndKDFTests {
    static let key = Array(UInt8(0)...UInt8(31))

    // Expected values from Python: hmac.new(key, msg, hashlib.blake2s).
    @Test func hmacBLAKE2s() {
        let msg = Array("meshguard hmac test".utf8)
        #expect(HMACBLAKE2s.authenticate(key: Self.key, msg).unsafeExportedBytes() == hex("d69d7e1cc17ba5eb560e1204d583bddf442f0ecdc2f524e4339d211b83675d72"))
        // A key longer than the block is hashed first.
        let longKey = Array(UInt8(0)..<UInt8(100))
        #expect(HMACBLAKE2s.authenticate(key: longKey, msg).unsafeExportedBytes() == hex("d4094b77885c07e0d9458a85731d7a6a2cab6e4b0d52774fdd80e898da301a2d"))
        // Parts are concatenated.
        #expect(HMACBLAKE2s.authenticate(key: Self.key, Array("meshguard ".utf8), Array("hmac test".utf8)).constantTimeEquals(HMACBLAKE2s.authenticate(key: Self.key, msg)))
    }

    @Test func wireGuardKDF() {
        let (t1, t2, t3) = WireGuardKDF.kdf3(key: Self.key, input: Array("input key material".utf8))
        #expect(t1.unsafeExportedBytes() == hex("93e2a65883e34ac95485f5d0aa4b09163a4e944dab8cf9406d3a138e362851c6"))
        #expect(t2.unsafeExportedBytes() == hex("dd6fae42afdb2a41170f44dc5b885ec4cfd17c8dd324d38b390c548630dd0a83"))
        #expect(t3.unsafeExportedBytes() == hex("4125e0adfa9b7e736615e99dde6f3f0b64b949d8b480e82cab2e685dc286e45d"))
        let (u1, u2) = WireGuardKDF.kdf2(key: Self.key, input: Array("input key material".utf8))
        #expect(u1.constantTimeEquals(t1) && u2.constantTimeEquals(t2))
        #expect(WireGuardKDF.kdf1(key: [UInt8](repeating: 0, count: 32), input: []).unsafeExportedBytes() == hex("8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0"))
    }
}
