import Testing
import MeshBase
import MeshCrypto
@testable import MeshWireGuard

func wgHex(_ s: String) -> [UInt8] { Hex.decode(s)! }
func privateKey(_ b64: String) -> X25519.PrivateKey { X25519.PrivateKey(secret: SecretBytes(copying: Base64.decode(b64)!)) }
func secret(_ b64: String) -> SecretBytes { SecretBytes(copying: Base64.decode(b64)!) }
let zeroPSK = SecretBytes(copying: [UInt8](repeating: 0, count: 32))

/// A real handshake between two Debian wireguard-go 0.0.20220316 instances
/// (copied from shared/vectors/wireguard-go-handshake.json).
enum WireGuardGoVector {
    static let initiatorPrivate = "QBDbMgjarzriLr0/wh0pQBab2RVizkguXi1uMYsLX0w="
    static let initiatorPublic = "HSh8LLMWfhZsoxmm56hcPyup39HQhAlgRPLif0qk9kk="
    static let responderPrivate = "eNyHBhsX+lKDG3Kznjv3Xq2umVXk/Aypp5GQYLJ1Vnw="
    static let responderPublic = "D1nBUauS2qdoEWRGYrUv6htl7ae0n3GglSf9PdSWpks="
    static let presharedKey = "KjXe+zFA+b8uOu2+B1M24pTkbaDAlVM0jffMwWEqZG8="
    static let initiation = wgHex("01000000a72cf1266b6d669657e6e08f13c372eaecb493a581187fc4623d6ba2c30c2b847cf87000dc3743cb73fb57c6f77399bebbe56589ff0ab7c40b1093ecb8cf628f2dc8bb209b8681e1677fe5a48c5ab3e98d603c0844859b8dfd04bdf53e6def4b19f4316bc083f631ed2cae6b27040b3b05847acc386ecbb7b5f0ede31646f42c00000000000000000000000000000000")
    static let senderIndex: UInt32 = 653339815
    static let timestamp = wgHex("400000006b07169f32000000")
    static let response = wgHex("02000000efa5ffa7a72cf126b6e1ce159125aef0e92343000fe94d1d84a7db39a17e6f1fd36cf79de33262105b00ee34cf1633fe876c25cf8bdf3a1b717c136a0231d60a35ad0ac5aa920c1000000000000000000000000000000000")
}

@Suite struct WireGuardGoInteropVectorTests {
    @Test func keysMatchTheVector() {
        #expect(privateKey(WireGuardGoVector.initiatorPrivate).publicKey.base64 == WireGuardGoVector.initiatorPublic)
        #expect(privateKey(WireGuardGoVector.responderPrivate).publicKey.base64 == WireGuardGoVector.responderPublic)
    }

    @Test func responderConsumesWireGuardGoInitiation() throws {
        let local = LocalStatic(privateKey: privateKey(WireGuardGoVector.responderPrivate))
        let initiatorKey = Bytes32(base64: WireGuardGoVector.initiatorPublic)!
        let remote = RemoteStatic(publicKey: initiatorKey, local: local)
        let msg = WireGuardGoVector.initiation
        #expect(msg.withUnsafeBytes { MessageKind.classify($0) } == .handshakeInitiation)
        var checker = CookieChecker()
        let source = Endpoint("192.0.2.1:51820")!
        let verdict = msg.withUnsafeBytes {
            checker.validate($0, mac1Offset: Layout.Initiation.mac1, local: local, source: source, checkCookie: false, now: .zero)
        }
        #expect(verdict == .validMACNoCookie)
        var seen: Bytes32?
        let consumed = try msg.withUnsafeBytes { m in
            try Noise.consumeInitiation(m, local: local) { key in seen = key; return key == initiatorKey ? remote : nil }
        }
        #expect(seen == initiatorKey)
        #expect(consumed.remoteStatic == initiatorKey)
        #expect(consumed.remoteIndex == WireGuardGoVector.senderIndex)
        #expect(consumed.timestamp == WireGuardGoVector.timestamp)
        // A flipped mac1 bit fails the MAC check; a flipped static byte fails decryption.
        var badMAC = msg; badMAC[Layout.Initiation.mac1] ^= 1
        #expect(badMAC.withUnsafeBytes { checker.validate($0, mac1Offset: Layout.Initiation.mac1, local: local, source: source, checkCookie: false, now: .zero) } == .invalidMAC)
        var badStatic = msg; badStatic[Layout.Initiation.encryptedStatic + 3] ^= 1
        #expect(throws: HandshakeError.decryptionFailed) {
            try badStatic.withUnsafeBytes { try Noise.consumeInitiation($0, local: local) { _ in remote } }
        }
        // An unknown initiator is refused after its static key is decrypted.
        #expect(throws: HandshakeError.unknownPeer) {
            try msg.withUnsafeBytes { try Noise.consumeInitiation($0, local: local) { _ in nil } }
        }
    }

    @Test func responseMAC1VerifiesUnderInitiatorKey() {
        let initiator = LocalStatic(privateKey: privateKey(WireGuardGoVector.initiatorPrivate))
        let msg = WireGuardGoVector.response
        #expect(msg.withUnsafeBytes { MessageKind.classify($0) } == .handshakeResponse)
        var checker = CookieChecker()
        let verdict = msg.withUnsafeBytes {
            checker.validate($0, mac1Offset: Layout.Response.mac1, local: initiator, source: Endpoint("192.0.2.2:51820")!, checkCookie: false, now: .zero)
        }
        #expect(verdict == .validMACNoCookie)
        #expect(msg.withUnsafeBytes { $0.u32(at: Layout.Response.receiver) } == WireGuardGoVector.senderIndex)
    }
}

@Suite struct HandshakeTests {
    struct Pair {
        let a = LocalStatic(privateKey: .generate())
        let b = LocalStatic(privateKey: .generate())
        var aSeesB: RemoteStatic { RemoteStatic(publicKey: b.publicKey, local: a) }
        var bSeesA: RemoteStatic { RemoteStatic(publicKey: a.publicKey, local: b) }
    }

    @Test func fullHandshakeDerivesMatchingKeys() throws {
        let p = Pair()
        let psk = SecretBytes.random(count: 32)
        let ts = TAI64N.encode(WallTime(seconds: 1_700_000_000, nanoseconds: 123_456_789))
        let (initiation, pending) = try Noise.createInitiation(local: p.a, remote: p.aSeesB, presharedKey: psk,
                                                               ephemeral: .generate(), timestamp: ts, localIndex: 7)
        #expect(initiation.count == WireGuardProtocol.initiationSize)
        let consumed = try initiation.withUnsafeBytes { try Noise.consumeInitiation($0, local: p.b) { _ in p.bSeesA } }
        #expect(consumed.remoteStatic == p.a.publicKey && consumed.remoteIndex == 7 && consumed.timestamp == ts)
        let (response, bKeys) = try Noise.createResponse(consumed, remote: p.bSeesA, presharedKey: psk, ephemeral: .generate(), localIndex: 9)
        #expect(response.count == WireGuardProtocol.responseSize)
        let aKeys = try response.withUnsafeBytes { try Noise.consumeResponse($0, pending: pending, local: p.a, presharedKey: psk) }
        #expect(aKeys.sending.constantTimeEquals(bKeys.receiving))
        #expect(aKeys.receiving.constantTimeEquals(bKeys.sending))
        #expect(!aKeys.sending.constantTimeEquals(aKeys.receiving))
        #expect(aKeys.isInitiator && !bKeys.isInitiator)
        #expect(aKeys.remoteIndex == 9 && bKeys.remoteIndex == 7)
    }

    @Test func presharedKeyMismatchFailsTheResponse() throws {
        let p = Pair()
        let (initiation, pending) = try Noise.createInitiation(local: p.a, remote: p.aSeesB, presharedKey: zeroPSK,
                                                               ephemeral: .generate(), timestamp: TAI64N.encode(WallTime(seconds: 1, nanoseconds: 0)), localIndex: 1)
        let consumed = try initiation.withUnsafeBytes { try Noise.consumeInitiation($0, local: p.b) { _ in p.bSeesA } }
        let (response, _) = try Noise.createResponse(consumed, remote: p.bSeesA, presharedKey: SecretBytes.random(count: 32), ephemeral: .generate(), localIndex: 2)
        #expect(throws: HandshakeError.decryptionFailed) {
            try response.withUnsafeBytes { try Noise.consumeResponse($0, pending: pending, local: p.a, presharedKey: zeroPSK) }
        }
    }

    @Test func wrongResponderCannotReadInitiation() throws {
        let p = Pair()
        let c = LocalStatic(privateKey: .generate())
        let (initiation, _) = try Noise.createInitiation(local: p.a, remote: p.aSeesB, presharedKey: zeroPSK,
                                                         ephemeral: .generate(), timestamp: TAI64N.encode(WallTime(seconds: 1, nanoseconds: 0)), localIndex: 1)
        #expect(throws: HandshakeError.decryptionFailed) {
            try initiation.withUnsafeBytes { try Noise.consumeInitiation($0, local: c) { _ in RemoteStatic(publicKey: p.a.publicKey, local: c) } }
        }
    }

    @Test func lowOrderRemoteKeyIsRefused() {
        let p = Pair()
        let bad = RemoteStatic(publicKey: .zero, local: p.a)
        #expect(throws: HandshakeError.lowOrderPoint) {
            try Noise.createInitiation(local: p.a, remote: bad, presharedKey: zeroPSK, ephemeral: .generate(),
                                       timestamp: TAI64N.encode(WallTime(seconds: 1, nanoseconds: 0)), localIndex: 1)
        }
    }

    @Test func timestampsAreOrderedAndRounded() {
        let t1 = TAI64N.encode(WallTime(seconds: 100, nanoseconds: 5))
        let t2 = TAI64N.encode(WallTime(seconds: 100, nanoseconds: 20_000_000))
        let t3 = TAI64N.encode(WallTime(seconds: 101, nanoseconds: 0))
        #expect(t1.count == 12)
        #expect(t1 == TAI64N.encode(WallTime(seconds: 100, nanoseconds: 0)))   // rounded down to 2^24 ns
        #expect(TAI64N.isAfter(t2, t1) && TAI64N.isAfter(t3, t2) && !TAI64N.isAfter(t1, t1))
        #expect(Array(t1.prefix(8)) == [0x40, 0, 0, 0, 0, 0, 0, 0x6e])   // 2^62 + 10 + 100
    }
}

@Suite struct CookieTests {
    @Test func cookieRoundTripEnablesMAC2() throws {
        let a = LocalStatic(privateKey: .generate()), b = LocalStatic(privateKey: .generate())
        let bRemote = RemoteStatic(publicKey: b.publicKey, local: a)
        var generator = CookieGenerator()
        var checker = CookieChecker()
        let source = Endpoint("198.51.100.7:40000")!
        var (msg, _) = try Noise.createInitiation(local: a, remote: bRemote, presharedKey: zeroPSK, ephemeral: .generate(),
                                                  timestamp: TAI64N.encode(WallTime(seconds: 1, nanoseconds: 0)), localIndex: 42)
        generator.addMACs(&msg, remote: bRemote, now: .zero)
        func verdict(_ m: [UInt8], from: Endpoint, at now: Instant) -> CookieChecker.Verdict {
            m.withUnsafeBytes { checker.validate($0, mac1Offset: Layout.Initiation.mac1, local: b, source: from, checkCookie: true, now: now) }
        }
        #expect(verdict(msg, from: source, at: .zero) == .validMACNoCookie)
        // B is under load: it answers with a cookie reply.
        let reply = checker.makeReply(receiverIndex: 42, mac1: Array(msg[116..<132]), source: source, local: b,
                                      nonce: SystemRandom.bytes(24), now: .zero)
        #expect(reply.count == WireGuardProtocol.cookieReplySize)
        #expect(reply.withUnsafeBytes { MessageKind.classify($0) } == .cookieReply)
        #expect(reply.withUnsafeBytes { generator.consumeReply($0, remote: bRemote, now: .seconds(1)) })
        generator.addMACs(&msg, remote: bRemote, now: .seconds(2))
        #expect(verdict(msg, from: source, at: .seconds(2)) == .validMACWithCookie)
        // The cookie is bound to the source address and port.
        #expect(verdict(msg, from: Endpoint("198.51.100.7:40001")!, at: .seconds(2)) == .validMACNoCookie)
        // A forged reply (wrong key) is refused.
        var forged = reply; forged[40] ^= 1
        #expect(!forged.withUnsafeBytes { generator.consumeReply($0, remote: bRemote, now: .seconds(3)) })
        // After the secret rotates (2 minutes) the old cookie no longer counts.
        #expect(verdict(msg, from: source, at: .seconds(200)) == .validMACNoCookie)
        // An old cookie is not used for mac2 at all after 115 s.
        generator.addMACs(&msg, remote: bRemote, now: .seconds(120))
        #expect(Array(msg[132..<148]) == [UInt8](repeating: 0, count: 16))
    }
}
