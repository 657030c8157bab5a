// NAT-PMP (RFC 6886) codec: the request bytes of the RFC's layouts, strict
// response parsing, refusals with the RFC's reasons, no trap on any input.
import Testing
import MeshBase
@testable import MeshProtocol

@Suite struct NATPMPTests {
    @Test func requestsHaveTheRFCsLayout() {
        #expect(NATPMP.externalAddressRequest == [0, 0])
        #expect(NATPMP.mappingRequest(internalPort: 51821, suggestedPort: 51821, lifetime: 7200)
                == [0, 1, 0, 0, 0xCA, 0x6D, 0xCA, 0x6D, 0, 0, 0x1C, 0x20])
        #expect(NATPMP.mappingRequest(internalPort: 51821, suggestedPort: 0, lifetime: 0) == [0, 1, 0, 0, 0xCA, 0x6D, 0, 0, 0, 0, 0, 0])
    }

    @Test func responsesAreRead() throws {
        #expect(try NATPMP.parse([0, 128, 0, 0, 0, 0, 1, 0, 198, 51, 100, 15])
                == .externalAddress(epoch: 256, address: IPv4Address(198, 51, 100, 15)))
        #expect(try NATPMP.parse([0, 129, 0, 0, 0, 0, 0, 9, 0xCA, 0x6D, 0x9C, 0x40, 0, 0, 0x1C, 0x20])
                == .mapping(epoch: 9, internalPort: 51821, externalPort: 40000, lifetime: 7200))
    }

    @Test func refusalsAndMalformedAnswers() {
        #expect(throws: NATPMP.Failure.refused(code: 2)) { try NATPMP.parse([0, 129, 0, 2, 0, 0, 0, 9, 0xCA, 0x6D, 0, 0, 0, 0, 0, 0]) }
        #expect(NATPMP.Failure.refused(code: 2).reason == "not authorized")
        #expect(NATPMP.Failure.refused(code: 4).reason == "out of resources")
        for bad: [UInt8] in [[], [0], [0, 128], [1, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], [0, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3],
                             [0, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5], [0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], [0, 129] + [UInt8](repeating: 0, count: 13)] {
            #expect(throws: NATPMP.Failure.malformed) { try NATPMP.parse(bad) }
        }
    }

    @Test func randomBytesNeverTrap() {
        var rng = SeededRandom(seed: 6886)
        for _ in 0..<20_000 {
            var b = (0..<Int.random(in: 0...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if b.count > 1, Bool.random(using: &rng) { b[0] = 0; b[1] = Bool.random(using: &rng) ? 128 : 129 }
            _ = try? NATPMP.parse(b)
        }
    }
}
