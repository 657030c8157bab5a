import Testing
import MeshBase
import MeshCrypto
import MeshIdentity
@testable import MeshProtocol

@Suite struct MemberRecordTests {
    static let me = Identity.generate()

    @Test func roundTripAndVerify() throws {
        let r = MemberRecord(identity: Self.me, incarnation: 7, controlEndpoint: Endpoint("192.0.2.1:51821")!,
                             wireGuardEndpoints: [Endpoint("192.0.2.1:51820")!, Endpoint("[2001:db8::1]:51820")!], flags: 1)
        let back = try MemberRecord.decode(r.encoded)
        #expect(back == r)
        #expect(back.identity == Self.me.publicKey && back.incarnation == 7 && back.wireGuardEndpoints.count == 2)
    }

    @Test func everyTamperedByteIsRejected() {
        let r = MemberRecord(identity: Self.me, incarnation: 1, controlEndpoint: Endpoint("192.0.2.1:1")!, wireGuardEndpoints: [])
        let bytes = r.encoded
        for i in bytes.indices {
            var b = bytes
            b[i] ^= 0x01
            #expect(throws: WireError.self) { try MemberRecord.decode(b) }
        }
        #expect(throws: WireError.self) { try MemberRecord.decode(Array(bytes.dropLast())) }
        #expect(throws: WireError.self) { try MemberRecord.decode(bytes + [0]) }
    }

    /// A member relaying gossip cannot forge another's record: it cannot sign for that key.
    @Test func forgeryIsDetected() {
        let victim = Identity.generate()
        let honest = MemberRecord(identity: victim, incarnation: 1, controlEndpoint: Endpoint("192.0.2.9:1")!, wireGuardEndpoints: [])
        // The attacker signs a record that names the victim's key with a higher incarnation.
        let forged = MemberRecord(identity: Self.me, incarnation: 99, controlEndpoint: Endpoint("203.0.113.1:1")!, wireGuardEndpoints: [])
        var bytes = forged.encoded
        bytes.replaceSubrange(1..<33, with: victim.publicKey.raw.bytes)
        #expect(throws: WireError(.badSignature, "member record of \(victim.publicKey.abbreviated)")) { try MemberRecord.decode(bytes) }
        #expect((try? MemberRecord.decode(honest.encoded)) != nil)
    }
}

@Suite struct EnvelopeTests {
    static let a = Identity.generate(), b = Identity.generate()
    let trustA: (IdentityPublicKey) -> Bool = { $0 == EnvelopeTests.a.publicKey }

    @Test func sealOpen() throws {
        var s = EnvelopeSealer(identity: Self.a, epoch: 1000)
        var o = EnvelopeOpener()
        let m = try s.seal(.swim, payload: [1, 2, 3])
        #expect(m.count == Envelope.headerSize + 3 + Envelope.signatureSize)
        #expect(m.withUnsafeBytes { Envelope.looksLikeEnvelope($0) })
        // Not a WireGuard type (1-4 in byte 0) and not STUN (top bits 00).
        #expect(!(1...4).contains(m[0]) && m[0] >> 6 != 0)
        let e = try o.open(m, isTrusted: trustA)
        #expect(e.kind == .swim && e.sender == Self.a.publicKey && e.payload == [1, 2, 3] && e.epoch == 1000 && e.counter == 1)
    }

    @Test func untrustedSendersChangeNothing() throws {
        var s = EnvelopeSealer(identity: Self.b, epoch: 1)
        var o = EnvelopeOpener()
        #expect(throws: WireError(.untrustedSender, Self.b.publicKey.abbreviated)) { try o.open(try s.seal(.swim, payload: []), isTrusted: trustA) }
    }

    @Test func replaysAreRejectedAndReorderingAccepted() throws {
        var s = EnvelopeSealer(identity: Self.a, epoch: 5)
        var o = EnvelopeOpener()
        let msgs = try (0..<300).map { _ in try s.seal(.swim, payload: [0]) }
        _ = try o.open(msgs[10], isTrusted: trustA)
        #expect(throws: WireError.self) { try o.open(msgs[10], isTrusted: trustA) }   // replay
        _ = try o.open(msgs[3], isTrusted: trustA)                                    // late but in the window
        #expect(throws: WireError.self) { try o.open(msgs[3], isTrusted: trustA) }
        _ = try o.open(msgs[299], isTrusted: trustA)
        #expect(throws: WireError.self) { try o.open(msgs[20], isTrusted: trustA) }   // 279 behind: outside the 256 window
        _ = try o.open(msgs[298], isTrusted: trustA)
        // A restart: a new, higher epoch resets the window; an older epoch is a replay.
        var restarted = EnvelopeSealer(identity: Self.a, epoch: 6)
        _ = try o.open(try restarted.seal(.swim, payload: []), isTrusted: trustA)
        #expect(throws: WireError.self) { try o.open(msgs[297], isTrusted: trustA) }
    }

    @Test func tamperingAndGarbageAreRejectedNeverTrap() throws {
        var s = EnvelopeSealer(identity: Self.a, epoch: 1)
        let m = try s.seal(.relay, payload: Array(repeating: 7, count: 40))
        for i in m.indices {
            var o = EnvelopeOpener()
            var b = m
            b[i] ^= 0x80
            #expect(throws: WireError.self) { try o.open(b, isTrusted: { _ in true }) }
        }
        var rng = SeededRandom(seed: 17)
        var o = EnvelopeOpener()
        for _ in 0..<3000 {
            var b = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if b.count > 4 && rng.next() % 2 == 0 { b[0] = 0x4d; b[1] = 0x47; b[2] = 1; b[3] = UInt8(1 + rng.next() % 3) }
            #expect(throws: WireError.self) { try o.open(b, isTrusted: { _ in true }) }
        }
        #expect(throws: WireError(.tooLarge, "payload of 1115 bytes")) { try s.seal(.swim, payload: Array(repeating: 0, count: 1115)) }
    }

    @Test func replayWindowAgainstAReference() {
        var rng = SeededRandom(seed: 3)
        var w = ReplayState(epoch: 1)
        var accepted = Set<UInt64>()
        var highest: UInt64 = 0
        for _ in 0..<20_000 {
            let c = highest > 300 && rng.next() % 3 == 0 ? highest - rng.next() % 300 : highest + 1 + rng.next() % 70
            let expected = !accepted.contains(c) && (c > highest || highest - c < 256)
            #expect(w.accept(c) == expected, "counter \(c) highest \(highest)")
            if expected { accepted.insert(c); highest = max(highest, c) }
        }
    }
}
