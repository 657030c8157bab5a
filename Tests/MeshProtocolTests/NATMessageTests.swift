// The NAT traversal payload: every message round-trips; decoding is strict
// (known type, every field, nothing trailing) and never traps.
import Testing
import MeshBase
@testable import MeshProtocol

@Suite struct NATMessageTests {
    let key = Bytes32([UInt8](repeating: 7, count: 32))!
    let v4 = Endpoint(.v4(IPv4Address(198, 51, 100, 3)), port: 52001)
    let v6 = Endpoint(.v6(IPv6Address(high: 0x2001_0db8_0000_0000, low: 1)), port: 51821)

    var all: [NATMessage] {
        [.punchRequest(target: key), .introduction(peer: key, endpoint: v4), .introduction(peer: key, endpoint: v6),
         .relayRequest(peer: key), .relayGrant(peer: key, endpoint: v4)]
            + NATMessage.RefusalReason.allCases.map { .relayRefusal(peer: key, reason: $0) } + [.observedWireGuard(endpoint: v6)]
    }

    @Test func everyMessageRoundTrips() throws {
        for m in all { #expect(try NATMessage.decode(m.encoded) == m) }
        #expect(NATMessage.punchRequest(target: key).encoded == [1] + [UInt8](repeating: 7, count: 32))
    }

    @Test func decodingIsStrict() {
        for m in all {
            let b = m.encoded
            for n in 0..<b.count { #expect(throws: WireError.self) { try NATMessage.decode(Array(b[0..<n])) } }
            #expect(throws: WireError.self) { try NATMessage.decode(b + [0]) }
        }
        #expect(throws: WireError.self) { try NATMessage.decode([7] + [UInt8](repeating: 0, count: 32)) }
        #expect(throws: WireError.self) { try NATMessage.decode([5] + [UInt8](repeating: 7, count: 32) + [9]) }   // unknown refusal reason
        #expect(throws: WireError.self) { try NATMessage.decode([]) }
    }

    @Test func randomBytesNeverTrap() {
        var rng = SeededRandom(seed: 7)
        var accepted = 0
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...60, using: &rng)
            var b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !b.isEmpty, Bool.random(using: &rng) { b[0] = UInt8.random(in: 1...6, using: &rng) }
            if (try? NATMessage.decode(b)) != nil { accepted += 1 }
        }
        #expect(accepted < 20_000)
    }
}
