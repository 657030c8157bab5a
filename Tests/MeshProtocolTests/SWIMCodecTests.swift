import Testing
import MeshBase
import MeshIdentity
import MeshSWIM
@testable import MeshProtocol

@Suite struct SWIMCodecTests {
    static func key(_ b: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: b, count: 32))! }
    static let me = key(1)
    static let e4 = Endpoint("192.0.2.1:51821")!, e6 = Endpoint("[2001:db8::1]:51821")!

    static let samples: [SWIMPacket] = [
        SWIMPacket(sender: me, message: .ping(sequence: 7, target: key(2))),
        SWIMPacket(sender: me, message: .ack(sequence: 7), updates: [.alive(member: key(3), incarnation: 4, endpoint: e6, metadata: [1, 2, 3])]),
        SWIMPacket(sender: me, message: .nack(sequence: 9)),
        SWIMPacket(sender: me, message: .pingReq(sequence: 1, target: key(4), targetEndpoint: e4, wantNack: true),
                   updates: [.suspect(member: key(5), incarnation: 1, from: me), .dead(member: key(6), incarnation: 2, from: key(7)), .left(member: key(8), incarnation: 3)]),
        SWIMPacket(sender: me, message: .gossip, updates: [.alive(member: key(9), incarnation: .max, endpoint: e4, metadata: [])]),
        SWIMPacket(sender: me, message: .pushPull(PushPull(exchange: 5, isReply: true, isJoin: true, part: 1, parts: 3, entries: [
            MemberEntry(member: key(10), incarnation: 1, status: .suspect, endpoint: e6, metadata: Array(repeating: 9, count: 100)),
            MemberEntry(member: key(11), incarnation: 2, status: .left, endpoint: e4, metadata: []),
        ]))),
    ]

    @Test func roundTripAndSizeMatchesTheEstimate() throws {
        for p in Self.samples {
            let bytes = SWIMCodec.encode(p)
            #expect(bytes.count == p.encodedSize, "\(p.message.kind)")
            #expect(try SWIMCodec.decode(bytes, sender: Self.me) == p)
        }
    }

    @Test func theSenderMustBeTheEnvelopes() {
        let bytes = SWIMCodec.encode(Self.samples[0])
        #expect(throws: WireError.self) { try SWIMCodec.decode(bytes, sender: Self.key(99)) }
    }

    @Test func strictDecoding() {
        for p in Self.samples {
            let bytes = SWIMCodec.encode(p)
            for cut in 0..<bytes.count { #expect(throws: WireError.self) { try SWIMCodec.decode(Array(bytes.prefix(cut)), sender: Self.me) } }
            #expect(throws: WireError.self) { try SWIMCodec.decode(bytes + [0], sender: Self.me) }
        }
        var rng = SeededRandom(seed: 8)
        for _ in 0..<5000 {
            var b = SWIMCodec.encode(Self.samples[Int(rng.next() % UInt64(Self.samples.count))])
            b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
            _ = try? SWIMCodec.decode(b, sender: Self.me)
            _ = try? SWIMCodec.decode((0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, sender: Self.me)
        }
    }

    /// Through an envelope end to end, as the daemon will send it.
    @Test func insideAnEnvelope() throws {
        let id = Identity.generate()
        var sealer = EnvelopeSealer(identity: id, epoch: 1)
        var opener = EnvelopeOpener()
        let p = SWIMPacket(sender: id.publicKey.raw, message: .ping(sequence: 3, target: Self.key(2)))
        let wire = try sealer.seal(.swim, payload: SWIMCodec.encode(p))
        let env = try opener.open(wire, isTrusted: { $0 == id.publicKey })
        #expect(env.kind == .swim)
        #expect(try SWIMCodec.decode(env.payload, sender: env.sender.raw) == p)
    }
}
