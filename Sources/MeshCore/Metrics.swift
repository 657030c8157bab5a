// Metrics: the Prometheus text exposition (format 0.0.4) of what the agent
// knows, built from a StatusReport and the daemon's counters. Pure. Labels
// carry names and abbreviated keys only, never secrets.
import MeshBase
import MeshWireGuard

public enum Metrics {
    /// The exposition for `report`, with `events` (membership events by kind since start).
    public static func render(_ report: StatusReport, events: [String: UInt64]) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)\n" }
        }
        func label(_ pairs: [(String, String)]) -> String { pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") }
        family("meshguard_info", "gauge", "The agent: version, data plane mode and interface.",
               [(label([("version", report.version), ("mode", report.mode), ("interface", report.interface)]), "1")])
        family("meshguard_members", "gauge", "Members known, by state (static: configured peers gossip does not know).",
               report.counts.map { (label([("state", $0.0)]), "\($0.1)") })
        family("meshguard_peers", "gauge", "WireGuard peers on the interface.", [("", "\(report.peerCount)")])
        family("meshguard_peers_routed", "gauge", "Peers whose mesh addresses are routed to them.",
               [("", "\(report.members.filter { $0.configured && $0.routed }.count)")])
        let peers = report.members.filter(\.configured)
        func peerLabel(_ m: StatusReport.MemberLine) -> [(String, String)] { [("peer", m.name ?? m.identity.abbreviated), ("key", m.identity.abbreviated)] }
        family("meshguard_peer_latest_handshake_seconds", "gauge", "Unix time of the peer's latest handshake (0: never).",
               peers.map { (label(peerLabel($0)), "\($0.latestHandshake.map { max(0, $0.seconds) } ?? 0)") })
        family("meshguard_peer_receive_bytes_total", "counter", "Bytes received from the peer.",
               peers.map { (label(peerLabel($0)), "\($0.receivedBytes)") })
        family("meshguard_peer_transmit_bytes_total", "counter", "Bytes sent to the peer.",
               peers.map { (label(peerLabel($0)), "\($0.transmittedBytes)") })
        family("meshguard_control_drops_total", "counter", "Control-plane datagrams dropped, by reason.",
               report.drops.map { (label([("reason", $0.0)]), "\($0.1)") })
        if let e = report.engine {
            family("meshguard_wireguard_drops_total", "counter", "Packets the userspace WireGuard engine dropped, by reason (not reported in kernel mode).",
                   DropReason.allCases.map { (label([("reason", $0.rawValue)]), "\(e.dropped($0))") })
            family("meshguard_wireguard_handshakes_total", "counter", "Handshake messages the userspace engine sent, by kind, and sessions derived.",
                   [(label([("kind", "initiation")]), "\(e.handshakeInitiationsSent)"), (label([("kind", "response")]), "\(e.handshakeResponsesSent)"),
                    (label([("kind", "cookie-reply")]), "\(e.cookieRepliesSent)"), (label([("kind", "session")]), "\(e.sessionsDerived)")])
        }
        family("meshguard_peer_paths", "gauge", "Members by path: direct, trying (hole punching), relayed.",
               ["direct", "trying", "relayed"].map { kind in
                   (label([("path", kind)]), "\(report.members.filter { $0.path == kind || (kind == "relayed" && $0.path.hasPrefix("relayed")) }.count)")
               })
        if let n = report.nat {
            family("meshguard_nat_mapping", "gauge", "The NAT kind STUN found (1 for the current one).",
                   ["unknown", "none", "endpoint-independent", "endpoint-dependent"].map { (label([("mapping", $0)]), n.mapping == $0 ? "1" : "0") })
            family("meshguard_relay_pairs", "gauge", "Pairs of members this node relays for now.", [("", "\(n.relayedPairs)")])
            family("meshguard_relay_forwarded_packets_total", "counter", "WireGuard datagrams this node relayed (of current pairs).", [("", "\(n.relayedPackets)")])
        }
        family("meshguard_membership_events_total", "counter", "Membership events since start, by kind.",
               events.keys.sorted().map { (label([("event", $0)]), "\(events[$0]!)") })
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
