// Seeds: where a node first looks for the mesh. Given as `--seed` (repeatable),
// in the seeds file of the configuration directory (one per line, `#`
// comments), or found in DNS:
//
//   192.0.2.1:51821          an IPv4 endpoint
//   [2001:db8::1]:51821      an IPv6 endpoint
//   seed.example.com:51821   a name, resolved to its A and AAAA addresses
//   dns:example.com          _meshguard._udp.example.com: SRV records (target
//                            and port), and TXT records of the form
//                            "seed=<host>:<port>"
import MeshBase

public enum Seed: Hashable, Sendable, CustomStringConvertible {
    case endpoint(Endpoint)
    case host(String, port: UInt16)
    case dns(domain: String)

    public static let defaultPort: UInt16 = 51821
    /// The DNS name whose SRV and TXT records list seeds of `domain`.
    public static func serviceName(_ domain: String) -> String { "_meshguard._udp." + domain }

    /// Parses one seed; nil when it is none of the forms above.
    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: " \t\r")
        if t.hasPrefix("dns:") {
            let d = String(t.dropFirst(4))
            guard Seed.isHostName(d) else { return nil }
            self = .dns(domain: d)
            return
        }
        if let e = Endpoint(t) { self = .endpoint(e); return }
        guard let colon = t.lastIndex(of: ":"), let port = UInt16(t[t.index(after: colon)...]), port != 0 else { return nil }
        let host = String(t[..<colon])
        guard Seed.isHostName(host) else { return nil }
        self = .host(host, port: port)
    }

    /// RFC 1123 host names: letters, digits, '-' and '.', labels of 1-63, at most 253.
    static func isHostName(_ s: String) -> Bool {
        guard (1...253).contains(s.utf8.count) else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }

    public var description: String {
        switch self {
        case .endpoint(let e): return e.description
        case .host(let h, let p): return "\(h):\(p)"
        case .dns(let d): return "dns:\(d)"
        }
    }

    /// Parses a seeds file; the first bad line is an error naming it.
    public static func parseFile(_ text: String) throws(StaticPeersError) -> [Seed] {
        var out: [Seed] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let t = String(line).trimmingCharacters(in: " \t\r")
            if t.isEmpty { continue }
            guard let s = Seed(t) else {
                throw StaticPeersError(line: i + 1, message: "'\(t)' is not a seed (use 192.0.2.1:51821, [2001:db8::1]:51821, host.example:51821 or dns:example.com)")
            }
            out.append(s)
        }
        return out
    }

    /// Seeds named by the TXT strings of `_meshguard._udp.<domain>` ("seed=<host>:<port>").
    public static func fromTXT(_ strings: [String]) -> [Seed] {
        strings.flatMap { $0.split(separator: " ") }.compactMap { item in
            item.hasPrefix("seed=") ? Seed(String(item.dropFirst(5))) : nil
        }.filter { if case .dns = $0 { return false } else { return true } }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        return String(drop(while: { chars.contains($0) }).reversed().drop(while: { chars.contains($0) }).reversed())
    }
}
