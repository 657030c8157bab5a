// PortMapper (NAT-PMP client) on a virtual clock: asks for the external
// address and each mapping, retransmits from 250 ms doubling nine times,
// takes answers only from the router, renews at half the lifetime, maps again
// after a router restart, deletes on stop.
import Testing
import MeshBase
import MeshProtocol
@testable import MeshCore

@Suite struct PortMapperTests {
    let gateway = Endpoint(.v4(IPv4Address(192, 168, 1, 1)), port: 5351)
    let t0 = Instant.seconds(1000)

    func drain(_ m: inout PortMapper) -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let (b, to) = m.pollTransmit() { #expect(to == gateway); out.append(b) }
        return out
    }
    func address(_ epoch: UInt32) -> [UInt8] { [0, 128, 0, 0] + be32(epoch) + [198, 51, 100, 15] }
    func mapping(_ epoch: UInt32, _ inside: UInt16, _ outside: UInt16, _ lifetime: UInt32, result: UInt16 = 0) -> [UInt8] {
        [0, 129] + be16(result) + be32(epoch) + be16(inside) + be16(outside) + be32(lifetime)
    }
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    @Test func mapsEveryPortAndReportsTheEndpoints() {
        var m = PortMapper(gateway: gateway, ports: [51821, 51820], lifetime: 7200)
        m.start(now: t0)
        let asked = drain(&m)
        #expect(asked == [NATPMP.externalAddressRequest,
                          NATPMP.mappingRequest(internalPort: 51820, suggestedPort: 51820, lifetime: 7200),
                          NATPMP.mappingRequest(internalPort: 51821, suggestedPort: 51821, lifetime: 7200)])
        let r1 = m.receive(address(50), from: gateway, now: t0 + .milliseconds(5))
        #expect(r1)
        let r2 = m.receive(mapping(50, 51821, 40001, 7200), from: gateway, now: t0 + .milliseconds(6))
        #expect(r2)
        let r3 = m.receive(mapping(50, 51820, 40002, 7200), from: gateway, now: t0 + .milliseconds(7))
        #expect(r3)
        #expect(m.mappings == [51821: Endpoint(.v4(IPv4Address(198, 51, 100, 15)), port: 40001),
                               51820: Endpoint(.v4(IPv4Address(198, 51, 100, 15)), port: 40002)])
        let r4 = m.takeChanges()
        let r5 = m.takeChanges()
        #expect(r4 && !r5)
        #expect(!m.isWaiting && m.failure == nil)
        // Renewed at half the lifetime, asking for the same external port.
        #expect(m.nextDeadline() == t0 + .milliseconds(6) + .seconds(3600))
        m.handleTimers(now: t0 + .seconds(3601))
        let renewals = drain(&m)
        #expect(renewals == [NATPMP.mappingRequest(internalPort: 51820, suggestedPort: 40002, lifetime: 7200),
                              NATPMP.mappingRequest(internalPort: 51821, suggestedPort: 40001, lifetime: 7200)])
    }

    @Test func retransmitsFrom250msDoublingNineTimesThenGivesUp() {
        var m = PortMapper(gateway: gateway, ports: [51821])
        m.start(now: t0)
        var sends = [Duration.zero]
        _ = drain(&m)
        while let d = m.nextDeadline() {
            m.handleTimers(now: d)
            if !drain(&m).isEmpty { sends.append(d - t0) }
        }
        #expect(sends.map { $0.nanosecondsClamped / 1_000_000 } == [0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750])
        #expect(m.failure == "no answer from the router at 192.168.1.1:5351" && m.mappings.isEmpty && !m.isWaiting)
    }

    @Test func onlyTheRoutersAnswersCount() {
        var m = PortMapper(gateway: gateway, ports: [51821])
        m.start(now: t0)
        _ = drain(&m)
        // Another host: not ours at all.
        let stranger = m.receive(mapping(1, 51821, 666, 7200), from: Endpoint(.v4(IPv4Address(192, 168, 1, 9)), port: 5351), now: t0)
        #expect(!stranger)
        // From the router: garbage, an answer for a port we did not ask for.
        let r6 = m.receive([0, 129, 0], from: gateway, now: t0)
        #expect(r6)
        let r7 = m.receive(mapping(1, 22, 22, 7200), from: gateway, now: t0)
        #expect(r7)
        #expect(m.drops == ["malformed": 1, "unexpected answer": 1] && m.mappings.isEmpty)
        // A refusal is remembered and not asked again.
        let r8 = m.receive(mapping(1, 51821, 0, 0, result: 2), from: gateway, now: t0)
        #expect(r8)
        #expect(m.failure == "the router refused: not authorized")
        m.handleTimers(now: t0 + .seconds(1))
        let still = drain(&m)
        #expect(still == [NATPMP.externalAddressRequest])   // only the address is still asked
    }

    @Test func aRestartedRouterIsAskedAgain() {
        var m = PortMapper(gateway: gateway, ports: [51821])
        m.start(now: t0)
        _ = drain(&m)
        _ = m.receive(address(1000), from: gateway, now: t0)
        _ = m.receive(mapping(1000, 51821, 40001, 7200), from: gateway, now: t0)
        _ = m.takeChanges()
        // 600 s later the router's epoch says 5 s: it restarted and forgot the mapping.
        m.handleTimers(now: t0 + .seconds(600))
        let r9 = drain(&m)
        #expect(r9.isEmpty)
        m.start(now: t0 + .seconds(600))   // (any answer carries the epoch; here a fresh address request)
        _ = drain(&m)
        _ = m.receive(address(5), from: gateway, now: t0 + .seconds(600))
        let r10 = m.takeChanges()
        #expect(m.mappings.isEmpty && r10)
        let r11 = drain(&m)
        #expect(r11.contains(NATPMP.mappingRequest(internalPort: 51821, suggestedPort: 51821, lifetime: 7200)))
    }

    @Test func stopDeletesTheMappings() {
        var m = PortMapper(gateway: gateway, ports: [51821])
        m.start(now: t0)
        _ = drain(&m)
        _ = m.receive(address(1), from: gateway, now: t0)
        _ = m.receive(mapping(1, 51821, 40001, 7200), from: gateway, now: t0)
        m.stop(now: t0 + .seconds(1))
        let r12 = drain(&m)
        #expect(r12 == [NATPMP.mappingRequest(internalPort: 51821, suggestedPort: 0, lifetime: 0)])
        let r13 = m.takeChanges()
        #expect(m.mappings.isEmpty && r13 && m.nextDeadline() == nil)
    }
}
