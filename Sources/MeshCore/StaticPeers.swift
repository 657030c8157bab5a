// The static peers file: until gossip discovers members (and alongside it, for
// peers that must always be configured), a list of trusted peers and where to
// reach them. One peer per line:
//
//   # comment
//   <name-or-key> <host>:<port>
//
// `<name-or-key>` is a name from authorized_keys/ or a base64 Ed25519 key that
// is trusted; `<host>` is an IPv4 address or a bracketed IPv6 address
// ([2001:db8::1]:51820). See docs/configuration.md.
import MeshBase
import MeshIdentity

public struct StaticPeer: Equatable, Sendable {
    public let nameOrKey: String
    public let endpoint: Endpoint
    public let line: Int
}

public struct StaticPeersError: Error, Equatable, CustomStringConvertible {
    public let line: Int
    public let message: String
    public var description: String { "line \(line): \(message)" }
}

public enum StaticPeers {
    /// Parses the file's text; the first bad line is an error that names it.
    public static func parse(_ text: String) throws(StaticPeersError) -> [StaticPeer] {
        var out: [StaticPeer] = []
        var seen = Set<String>()
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw StaticPeersError(line: n, message: "expected '<name-or-key> <address>:<port>', got \(fields.count) fields")
            }
            guard let e = Endpoint(String(fields[1])), e.port != 0 else {
                throw StaticPeersError(line: n, message: "'\(fields[1])' is not an endpoint (use 192.0.2.1:51820 or [2001:db8::1]:51820)")
            }
            let who = String(fields[0])
            guard seen.insert(who).inserted else { throw StaticPeersError(line: n, message: "'\(who)' is listed twice") }
            out.append(StaticPeer(nameOrKey: who, endpoint: e, line: n))
        }
        return out
    }
}
