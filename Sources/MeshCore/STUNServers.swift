// STUN servers as the user writes them: `--stun-server` and the configuration
// file's `stun-servers`:
//
//   stun.example.com:3478     a name, resolved to its addresses
//   192.0.2.1:3478            an IPv4 endpoint
//   [2001:db8::1]:3478        an IPv6 endpoint (brackets required: without
//                             them a trailing ":3478" would read as part of the address)
//   stun.example.com          the port defaults to 3478 (RFC 8489 §18.1, "stun")
//   stun:stun.example.com:3478  the same, as a STUN URI (RFC 7064), as WebRTC configurations write it
import MeshBase

public struct STUNServerSpec: Hashable, Sendable, CustomStringConvertible {
    public enum Host: Hashable, Sendable {
        case address(IPAddress)
        case name(String)
    }

    public let host: Host
    public let port: UInt16

    /// The "stun" port, RFC 8489 §18.1.
    public static let defaultPort: UInt16 = 3478

    public init(host: Host, port: UInt16 = STUNServerSpec.defaultPort) { self.host = host; self.port = port }

    /// Parses one server; nil when it is none of the forms above (`problem(_:)` says why).
    public init?(_ text: String) {
        var t = Substring(text.trimmingCharacters(in: " \t\r"))
        if t.hasPrefix("stun:") { t = t.dropFirst(5) }
        guard !t.isEmpty else { return nil }
        let hostText: Substring
        var portText: Substring?
        if t.hasPrefix("[") {
            guard let close = t.firstIndex(of: "]") else { return nil }
            hostText = t[t.index(after: t.startIndex)..<close]
            let rest = t[t.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
            guard let a = IPv6Address(String(hostText)) else { return nil }
            host = .address(.v6(a))
        } else {
            // More than one colon without brackets would be a bare IPv6 address: refused as ambiguous.
            guard t.filter({ $0 == ":" }).count <= 1 else { return nil }
            if let colon = t.firstIndex(of: ":") {
                hostText = t[..<colon]
                portText = t[t.index(after: colon)...]
            } else {
                hostText = t
            }
            if let a = IPv4Address(String(hostText)) {
                host = .address(.v4(a))
            } else {
                // A name's last label is never all digits (RFC 3696 §2), so "192.0.2" is no name
                // (getaddrinfo would read it as the address 192.0.0.2).
                let name = String(hostText)
                guard Seed.isHostName(name), let last = name.split(separator: ".").last,
                      !last.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
                host = .name(name.lowercased())
            }
        }
        if let p = portText {
            guard (1...5).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(p), (1...65535).contains(n) else { return nil }
            port = UInt16(n)
        } else {
            port = Self.defaultPort
        }
    }

    /// Why `text` is not a STUN server, phrased for the user.
    public static func problem(_ text: String) -> String {
        "'\(text)' is not a STUN server (use stun.example.com:3478, 192.0.2.1:3478 or [2001:db8::1]:3478)"
    }

    /// The endpoint when the host is an address (a name needs resolving first).
    public var endpoint: Endpoint? {
        if case .address(let a) = host { return Endpoint(a, port: port) }
        return nil
    }

    public var description: String {
        switch host {
        case .address(let a): Endpoint(a, port: port).description
        case .name(let n): "\(n):\(port)"
        }
    }
}
