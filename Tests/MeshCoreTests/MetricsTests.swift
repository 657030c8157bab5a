// The Prometheus exposition: every family with HELP and TYPE, labels escaped,
// values from the report.
import Testing
import MeshBase
import MeshIdentity
import MeshWireGuard
@testable import MeshCore

@Suite struct MetricsTests {
    @Test func exposition() {
        let me = Identity.generate(), a = Identity.generate().publicKey, b = Identity.generate().publicKey
        let r = StatusReport(version: "0.1.0", mode: "kernel", modeReason: "x", interface: "mg0", listenPort: 51820, controlPort: 51821,
                             identity: me.publicKey, wireGuardKey: "k", addresses: [], trustOpen: false, trustedKeys: 2,
                             members: [
                                .init(name: "al\"pha", identity: a, state: "alive", endpoint: nil, routed: true, configured: true,
                                      latestHandshake: WallTime(seconds: 1_700_000_000, nanoseconds: 0), receivedBytes: 10, transmittedBytes: 20),
                                .init(name: nil, identity: b, state: "dead", endpoint: nil, routed: false, configured: false,
                                      latestHandshake: nil, receivedBytes: 0, transmittedBytes: 0),
                             ],
                             drops: [("replayed", 4)])
        #expect(!Metrics.render(r, events: [:]).contains("meshguard_wireguard_"))   // kernel mode: no engine counters
        var r2 = r
        var stats = DeviceStatistics()
        stats.drops[.replayedPacket] = 7; stats.handshakeInitiationsSent = 3
        r2.engine = stats
        let engineLines = Metrics.render(r2, events: [:]).split(separator: "\n").map(String.init)
        #expect(engineLines.contains("meshguard_wireguard_drops_total{reason=\"replayed-packet\"} 7"))
        #expect(engineLines.contains("meshguard_wireguard_drops_total{reason=\"no-route\"} 0"))
        #expect(engineLines.contains("meshguard_wireguard_handshakes_total{kind=\"initiation\"} 3"))
        let text = Metrics.render(r, events: ["joined": 2, "dead": 1])
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("meshguard_info{version=\"0.1.0\",mode=\"kernel\",interface=\"mg0\"} 1"))
        #expect(lines.contains("meshguard_members{state=\"alive\"} 1") && lines.contains("meshguard_members{state=\"dead\"} 1"))
        #expect(lines.contains("meshguard_peers 1") && lines.contains("meshguard_peers_routed 1"))
        #expect(lines.contains("meshguard_peer_receive_bytes_total{peer=\"al\\\"pha\",key=\"\(a.abbreviated)\"} 10"))
        #expect(lines.contains("meshguard_peer_transmit_bytes_total{peer=\"al\\\"pha\",key=\"\(a.abbreviated)\"} 20"))
        #expect(lines.contains("meshguard_peer_latest_handshake_seconds{peer=\"al\\\"pha\",key=\"\(a.abbreviated)\"} 1700000000"))
        #expect(!text.contains(b.abbreviated))   // not a peer: no per-peer series
        #expect(lines.contains("meshguard_control_drops_total{reason=\"replayed\"} 4"))
        #expect(lines.contains("meshguard_membership_events_total{event=\"dead\"} 1") && lines.contains("meshguard_membership_events_total{event=\"joined\"} 2"))
        // Every family announced once, before its samples.
        let families = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        #expect(families.count == 10 && Set(families).count == 10)
        #expect(lines.contains("meshguard_peer_paths{path=\"direct\"} 2"))
        var r3 = r
        r3.members[0].path = "relayed via n1"
        r3.nat = .init(publicEndpoint: nil, mapping: "endpoint-dependent", stunServers: 2, offersRelay: true, relayedPairs: 3, relayedPackets: 99)
        let natLines = Metrics.render(r3, events: [:]).split(separator: "\n").map(String.init)
        #expect(natLines.contains("meshguard_peer_paths{path=\"relayed\"} 1"))
        #expect(natLines.contains("meshguard_nat_mapping{mapping=\"endpoint-dependent\"} 1") && natLines.contains("meshguard_nat_mapping{mapping=\"none\"} 0"))
        #expect(natLines.contains("meshguard_relay_pairs 3") && natLines.contains("meshguard_relay_forwarded_packets_total 99"))
        for l in lines where !l.hasPrefix("#") {
            let name = l.split(whereSeparator: { $0 == "{" || $0 == " " })[0]
            #expect(families.contains(name), "\(l)")
        }
    }
}
