// StatusReport: what `meshguard-agent status` tells an operator, built by the
// daemon from its membership, trust set and a data-plane snapshot, rendered
// as text (for people) or JSON (for tools; schema in docs/control.md). Pure:
// every input is a value, including the wall-clock time for "ago".
import MeshBase
import MeshIdentity
import MeshSWIM
import MeshWireGuard

public struct StatusReport: Sendable {
    public struct MemberLine: Sendable, Equatable {
        /// Its name in authorized_keys/, nil when not listed (lab mode).
        public var name: String?
        public var identity: IdentityPublicKey
        /// alive, suspect, dead, left; "static" for a static peer gossip does not know.
        public var state: String
        /// Its WireGuard endpoint as configured on the interface (else as its record says).
        public var endpoint: Endpoint?
        /// direct, trying (not heard from directly yet: hole punching), "relayed via NAME", or static.
        public var path: String
        /// In the data plane with its mesh addresses as allowed IPs.
        public var routed: Bool
        /// In the data plane at all.
        public var configured: Bool
        public var latestHandshake: WallTime?
        public var receivedBytes: UInt64
        public var transmittedBytes: UInt64

        public init(name: String?, identity: IdentityPublicKey, state: String, endpoint: Endpoint?, path: String = "direct",
                    routed: Bool, configured: Bool, latestHandshake: WallTime?, receivedBytes: UInt64, transmittedBytes: UInt64) {
            self.name = name; self.identity = identity; self.state = state; self.endpoint = endpoint; self.path = path
            self.routed = routed; self.configured = configured; self.latestHandshake = latestHandshake
            self.receivedBytes = receivedBytes; self.transmittedBytes = transmittedBytes
        }
    }

    public var version: String
    public var mode: String
    public var modeReason: String
    public var interface: String
    public var listenPort: UInt16
    public var controlPort: UInt16
    public var identity: IdentityPublicKey
    public var wireGuardKey: String
    public var addresses: [String]
    /// `--open`: authorized_keys/ not enforced.
    public var trustOpen: Bool
    public var trustedKeys: Int
    public var members: [MemberLine]
    /// Control-plane datagrams dropped, by reason.
    public var drops: [(String, UInt64)]
    /// The userspace engine's counters (nil in kernel mode: the kernel does not report them).
    public var engine: DeviceStatistics?
    /// NAT traversal: what STUN found and what this node relays.
    public var nat: NATStatus?

    public struct NATStatus: Sendable, Equatable {
        public var publicEndpoint: Endpoint?
        public var mapping: String
        public var stunServers: Int
        public var offersRelay: Bool
        public var relayedPairs: Int
        public var relayedPackets: UInt64
        /// Datagrams the relay refused, by reason (RelayTable.Drop).
        public var relayDrops: [(String, UInt64)]
        /// STUN answers refused (spoofed source, other transaction, malformed…), by reason.
        public var stunDrops: [(String, UInt64)]
        /// The router's port mapping (NAT-PMP): what it maps, or why there is none; nil when not tried.
        public var portMapping: String?
        public init(publicEndpoint: Endpoint?, mapping: String, stunServers: Int, offersRelay: Bool, relayedPairs: Int, relayedPackets: UInt64,
                    relayDrops: [(String, UInt64)] = [], stunDrops: [(String, UInt64)] = [], portMapping: String? = nil) {
            self.publicEndpoint = publicEndpoint; self.mapping = mapping; self.stunServers = stunServers
            self.offersRelay = offersRelay; self.relayedPairs = relayedPairs; self.relayedPackets = relayedPackets; self.relayDrops = relayDrops
            self.stunDrops = stunDrops
            self.portMapping = portMapping
        }
        public static func == (a: NATStatus, b: NATStatus) -> Bool {
            a.publicEndpoint == b.publicEndpoint && a.mapping == b.mapping && a.stunServers == b.stunServers && a.offersRelay == b.offersRelay
                && a.relayedPairs == b.relayedPairs && a.relayedPackets == b.relayedPackets && a.relayDrops.elementsEqual(b.relayDrops, by: ==)
                && a.stunDrops.elementsEqual(b.stunDrops, by: ==) && a.portMapping == b.portMapping
        }
    }

    public init(version: String, mode: String, modeReason: String, interface: String, listenPort: UInt16, controlPort: UInt16,
                identity: IdentityPublicKey, wireGuardKey: String, addresses: [String], trustOpen: Bool, trustedKeys: Int,
                members: [MemberLine], drops: [(String, UInt64)], engine: DeviceStatistics? = nil, nat: NATStatus? = nil) {
        self.version = version; self.mode = mode; self.modeReason = modeReason; self.interface = interface
        self.listenPort = listenPort; self.controlPort = controlPort; self.identity = identity; self.wireGuardKey = wireGuardKey
        self.addresses = addresses; self.trustOpen = trustOpen; self.trustedKeys = trustedKeys
        self.members = members; self.drops = drops; self.engine = engine; self.nat = nat
    }

    /// Members per state, in a fixed order.
    public var counts: [(String, Int)] {
        ["alive", "suspect", "dead", "left", "static"].map { s in (s, members.filter { $0.state == s }.count) }
    }

    public var peerCount: Int { members.filter(\.configured).count }

    // MARK: Text

    public func text(now: WallTime) -> String {
        var t = "mode:       \(mode) (\(modeReason))\n"
        t += "interface:  \(interface)\n"
        t += "port:       \(listenPort) (control \(controlPort))\n"
        t += "identity:   \(identity.base64)\n"
        t += "wireguard:  \(wireGuardKey)\n"
        t += "addresses:  \(addresses.joined(separator: " "))\n"
        t += trustOpen ? "trust:      OPEN (--open: authorized_keys/ not enforced)\n" : "trust:      \(trustedKeys) key(s) in authorized_keys/\n"
        t += "members:    \(counts.filter { $0.1 > 0 }.map { "\($0.1) \($0.0)" }.joined(separator: ", ").nonEmpty ?? "none")\n"
        t += "peers:      \(peerCount)\n"
        if let n = nat {
            t += "nat:        public \(n.publicEndpoint?.description ?? "unknown"), mapping \(n.mapping)\(n.stunServers == 0 ? " (no STUN servers)" : "")"
            t += n.stunDrops.isEmpty ? "\n" : "; STUN answers dropped: " + n.stunDrops.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + "\n"
            if let pm = n.portMapping { t += "portmap:    \(pm)\n" }
            t += "relay:      \(n.offersRelay ? "offered; \(n.relayedPairs) pair(s), \(n.relayedPackets) packet(s) forwarded" : "not offered")"
            t += n.relayDrops.isEmpty ? "\n" : "; dropped " + n.relayDrops.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + "\n"
        }
        if !members.isEmpty {
            t += "\n" + table(now: now)
        }
        return t
    }

    /// `meshguard-agent peers`: the data plane's peers only.
    public func peersText(now: WallTime) -> String {
        StatusReport.render(rows: [["NAME", "KEY", "ENDPOINT", "MESH IPV4", "HANDSHAKE", "RECEIVED", "SENT"]] + members.filter(\.configured).map { m in
            [m.name ?? "-", m.identity.abbreviated, m.endpoint?.description ?? "-", m.identity.meshAddresses.ipv4.description,
             StatusReport.ago(m.latestHandshake, now: now), StatusReport.bytes(m.receivedBytes), StatusReport.bytes(m.transmittedBytes)]
        })
    }

    private func table(now: WallTime) -> String {
        StatusReport.render(rows: [["NAME", "KEY", "STATE", "ENDPOINT", "PATH", "MESH IPV4", "HANDSHAKE", "TRANSFER"]] + members.map { m in
            [m.name ?? "-", m.identity.abbreviated, m.configured && !m.routed ? m.state + " (not yet heard from)" : m.state,
             m.endpoint?.description ?? "-", m.path, m.identity.meshAddresses.ipv4.description,
             StatusReport.ago(m.latestHandshake, now: now),
             "\(StatusReport.bytes(m.receivedBytes)) in, \(StatusReport.bytes(m.transmittedBytes)) out"]
        })
    }

    static func render(rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count) }
                .joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    static func ago(_ t: WallTime?, now: WallTime) -> String {
        guard let t, t.seconds > 0 else { return "never" }
        let s = max(0, now.seconds - t.seconds)
        if s < 60 { return "\(s) s ago" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s ago" }
        return "\(s / 3600) h \(s % 3600 / 60) min ago"
    }

    static func bytes(_ n: UInt64) -> String {
        if n < 1024 { return "\(n) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var v = Double(n) / 1024, i = 0
        while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[i])"
    }

    // MARK: JSON (schema: docs/control.md)

    public func json(now: WallTime) -> String {
        let o = JSONWriter()
        o.object {
            o.field("schema", 1)
            o.field("version", version)
            o.field("mode", mode)
            o.field("modeReason", modeReason)
            o.field("interface", interface)
            o.field("listenPort", Int(listenPort))
            o.field("controlPort", Int(controlPort))
            o.field("identity", identity.base64)
            o.field("wireguardKey", wireGuardKey)
            o.field("addresses", addresses)
            o.field("trust", trustOpen ? "open" : "enforced")
            o.field("trustedKeys", trustedKeys)
            o.key("memberCounts")
            o.object { for (s, n) in counts { o.field(s, n) } }
            o.field("peerCount", peerCount)
            o.key("members")
            o.array(members) { m in
                o.object {
                    if let n = m.name { o.field("name", n) } else { o.nullField("name") }
                    o.field("identity", m.identity.base64)
                    o.field("wireguardKey", m.identity.wireGuardPublicKey.base64)
                    o.field("state", m.state)
                    if let e = m.endpoint { o.field("endpoint", e.description) } else { o.nullField("endpoint") }
                    o.field("path", m.path)
                    o.field("meshIPv4", m.identity.meshAddresses.ipv4.description)
                    o.field("meshIPv6", m.identity.meshAddresses.ipv6.description)
                    o.field("configured", m.configured)
                    o.field("routed", m.routed)
                    if let h = m.latestHandshake, h.seconds > 0 { o.field("latestHandshake", Int(h.seconds)) } else { o.nullField("latestHandshake") }
                    o.field("receivedBytes", Int(clamping: m.receivedBytes))
                    o.field("transmittedBytes", Int(clamping: m.transmittedBytes))
                }
            }
            o.key("drops")
            o.object { for (r, n) in drops { o.field(r, Int(clamping: n)) } }
            if let e = engine {
                o.key("engine")
                o.object {
                    o.field("handshakeInitiationsSent", Int(clamping: e.handshakeInitiationsSent))
                    o.field("handshakeResponsesSent", Int(clamping: e.handshakeResponsesSent))
                    o.field("cookieRepliesSent", Int(clamping: e.cookieRepliesSent))
                    o.field("sessionsDerived", Int(clamping: e.sessionsDerived))
                    o.key("drops")
                    o.object { for r in DropReason.allCases where e.dropped(r) > 0 { o.field(r.rawValue, Int(clamping: e.dropped(r))) } }
                }
            } else {
                o.nullField("engine")
            }
            if let n = nat {
                o.key("nat")
                o.object {
                    if let e = n.publicEndpoint { o.field("publicEndpoint", e.description) } else { o.nullField("publicEndpoint") }
                    o.field("mapping", n.mapping)
                    o.field("stunServers", n.stunServers)
                    o.field("offersRelay", n.offersRelay)
                    o.field("relayedPairs", n.relayedPairs)
                    o.field("relayedPackets", Int(clamping: n.relayedPackets))
                    o.key("relayDrops")
                    o.object { for (r, c) in n.relayDrops { o.field(r, Int(clamping: c)) } }
                    o.key("stunDrops")
                    o.object { for (r, c) in n.stunDrops { o.field(r, Int(clamping: c)) } }
                    if let pm = n.portMapping { o.field("portMapping", pm) } else { o.nullField("portMapping") }
                }
            } else {
                o.nullField("nat")
            }
        }
        return o.text + "\n"
    }
}

private extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

/// A minimal JSON writer: objects, arrays, strings (escaped per RFC 8259), integers, booleans, null.
public final class JSONWriter {
    public private(set) var text = ""
    private var needsComma: [Bool] = []

    public init() {}

    private func separator() {
        if let last = needsComma.last {
            if last { text += "," }
            needsComma[needsComma.count - 1] = true
        }
    }

    public func object(_ body: () -> Void) {
        separator(); text += "{"; needsComma.append(false); body(); needsComma.removeLast(); text += "}"
    }

    public func array<T>(_ items: [T], _ element: (T) -> Void) {
        separator(); text += "["; needsComma.append(false)
        for i in items { element(i) }
        needsComma.removeLast(); text += "]"
    }

    /// Writes `"name":`; the value that follows does not add a comma of its own.
    public func key(_ name: String) {
        separator(); text += JSONWriter.quote(name) + ":"
        needsComma[needsComma.count - 1] = false
    }

    public func field(_ name: String, _ value: String) { key(name); raw(JSONWriter.quote(value)) }
    public func field(_ name: String, _ value: Int) { key(name); raw(String(value)) }
    public func field(_ name: String, _ value: Bool) { key(name); raw(value ? "true" : "false") }
    public func field(_ name: String, _ value: [String]) { key(name); raw("[" + value.map(JSONWriter.quote).joined(separator: ",") + "]") }
    public func nullField(_ name: String) { key(name); raw("null") }

    private func raw(_ s: String) {
        text += s
        if !needsComma.isEmpty { needsComma[needsComma.count - 1] = true }
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
