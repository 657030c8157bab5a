// StatusReport: the text an operator reads and the JSON a tool parses, from
// fixed inputs (the wall clock is an input too).
import Testing
import MeshBase
import MeshIdentity
import MeshWireGuard
@testable import MeshCore

@Suite struct StatusReportTests {
    let me = Identity.generate()
    let a = Identity.generate().publicKey
    let b = Identity.generate().publicKey
    let now = WallTime(seconds: 1_800_000_000, nanoseconds: 0)

    func report(open: Bool = false) -> StatusReport {
        StatusReport(version: "0.1.0", mode: "userspace", modeReason: "userspace mode was requested", interface: "mg0",
                     listenPort: 51821, controlPort: 51821, identity: me.publicKey, wireGuardKey: me.wireGuardPublicKey.base64,
                     addresses: ["10.99.1.2/16", "fd99:6d67::1/64"], trustOpen: open, trustedKeys: 2,
                     members: [
                        .init(name: "alpha", identity: a, state: "alive", endpoint: Endpoint("192.0.2.1:51821"), routed: true, configured: true,
                              latestHandshake: WallTime(seconds: now.seconds - 75, nanoseconds: 0), receivedBytes: 1536, transmittedBytes: 12),
                        .init(name: nil, identity: b, state: "suspect", endpoint: nil, routed: false, configured: true,
                              latestHandshake: nil, receivedBytes: 0, transmittedBytes: 0),
                     ],
                     drops: [("badSignature", 3), ("replayed", 1)])
    }

    @Test func textHasTheSummaryAndOneRowPerMember() {
        let t = report().text(now: now)
        #expect(t.hasPrefix("mode:       userspace (userspace mode was requested)\ninterface:  mg0\n"))
        #expect(t.contains("trust:      2 key(s) in authorized_keys/\n"))
        #expect(t.contains("members:    1 alive, 1 suspect\n"))
        #expect(t.contains("peers:      2\n"))
        let rows = t.split(separator: "\n").filter { $0.hasPrefix("alpha") || $0.hasPrefix("-") }
        #expect(rows.count == 2)
        #expect(rows[0].contains("alive") && rows[0].contains("192.0.2.1:51821") && rows[0].contains("1 min 15 s ago") && rows[0].contains("1.5 KiB in, 12 B out"))
        #expect(rows[1].contains("suspect (not yet heard from)") && rows[1].contains("never"))
        #expect(report(open: true).text(now: now).contains("trust:      OPEN"))
    }

    @Test func peersListsConfiguredPeersOnly() {
        let lines = report().peersText(now: now).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("NAME"))
        #expect(lines[1].hasPrefix("alpha") && lines[1].contains(a.meshAddresses.ipv4.description))
    }

    @Test func jsonCarriesEveryField() {
        let j = report().json(now: now)
        #expect(j.hasPrefix("{\"schema\":1,\"version\":\"0.1.0\",\"mode\":\"userspace\","))
        #expect(j.contains("\"trust\":\"enforced\",\"trustedKeys\":2,\"memberCounts\":{\"alive\":1,\"suspect\":1,\"dead\":0,\"left\":0,\"static\":0},\"peerCount\":2,"))
        #expect(j.contains("{\"name\":\"alpha\",\"identity\":\"\(a.base64)\",\"wireguardKey\":\"\(a.wireGuardPublicKey.base64)\",\"state\":\"alive\",\"endpoint\":\"192.0.2.1:51821\",\"path\":\"direct\","))
        #expect(j.contains("\"latestHandshake\":\(now.seconds - 75),\"receivedBytes\":1536,\"transmittedBytes\":12}"))
        #expect(j.contains("{\"name\":null,"))
        #expect(j.contains("\"endpoint\":null,"))
        #expect(j.contains("\"latestHandshake\":null,"))
        #expect(j.hasSuffix("\"drops\":{\"badSignature\":3,\"replayed\":1},\"engine\":null,\"nat\":null}\n"))
        var withEngine = report()
        var stats = DeviceStatistics()
        stats.handshakeInitiationsSent = 2; stats.sessionsDerived = 1; stats.drops[.noRoute] = 5
        withEngine.engine = stats
        #expect(withEngine.json(now: now).hasSuffix(",\"engine\":{\"handshakeInitiationsSent\":2,\"handshakeResponsesSent\":0,\"cookieRepliesSent\":0,\"sessionsDerived\":1,\"drops\":{\"no-route\":5}},\"nat\":null}\n"))
        var withNAT = report()
        withNAT.nat = .init(publicEndpoint: Endpoint("198.51.100.11:51821"), mapping: "endpoint-independent", stunServers: 2,
                            offersRelay: false, relayedPairs: 0, relayedPackets: 0)
        #expect(withNAT.json(now: now).hasSuffix(",\"nat\":{\"publicEndpoint\":\"198.51.100.11:51821\",\"mapping\":\"endpoint-independent\",\"stunServers\":2,\"offersRelay\":false,\"relayedPairs\":0,\"relayedPackets\":0,\"relayDrops\":{},\"stunDrops\":{},\"portMapping\":null}}\n"))
        var spoofed = withNAT
        spoofed.nat?.stunDrops = [("unexpected source", 2)]
        #expect(spoofed.json(now: now).contains(",\"stunDrops\":{\"unexpected source\":2},"))
        var mapped = withNAT
        mapped.nat?.portMapping = "198.51.100.15:51821 (NAT-PMP, router 192.168.1.1)"
        #expect(mapped.text(now: now).contains("portmap:    198.51.100.15:51821 (NAT-PMP, router 192.168.1.1)\nrelay:"))
        #expect(mapped.json(now: now).contains(",\"portMapping\":\"198.51.100.15:51821 (NAT-PMP, router 192.168.1.1)\"}"))
        #expect(spoofed.text(now: now).contains("mapping endpoint-independent; STUN answers dropped: unexpected source 2\n"))
        let text = withNAT.text(now: now)
        #expect(text.contains("nat:        public 198.51.100.11:51821, mapping endpoint-independent\n") && text.contains("relay:      not offered\n"))
        // Balanced, no doubled or trailing commas.
        #expect(!j.contains(",,") && !j.contains(",}") && !j.contains(",]") && !j.contains("{,") && !j.contains("[,"))
        #expect(j.filter { $0 == "{" }.count == j.filter { $0 == "}" }.count)
    }

    @Test func jsonStringsAreEscaped() {
        #expect(JSONWriter.quote("a\"b\\c\nd\u{01}é") == "\"a\\\"b\\\\c\\nd\\u0001é\"")
        var r = report()
        r.modeReason = "quote \" and newline \n"
        #expect(r.json(now: now).contains("\"modeReason\":\"quote \\\" and newline \\n\""))
    }

    @Test func sizesAndAges() {
        #expect(StatusReport.bytes(0) == "0 B" && StatusReport.bytes(1023) == "1023 B" && StatusReport.bytes(1024) == "1.0 KiB")
        #expect(StatusReport.bytes(5 * 1024 * 1024 + 512 * 1024) == "5.5 MiB")
        #expect(StatusReport.ago(nil, now: now) == "never")
        #expect(StatusReport.ago(WallTime(seconds: now.seconds - 5, nanoseconds: 0), now: now) == "5 s ago")
        #expect(StatusReport.ago(WallTime(seconds: now.seconds - 7322, nanoseconds: 0), now: now) == "2 h 2 min ago")
    }
}
