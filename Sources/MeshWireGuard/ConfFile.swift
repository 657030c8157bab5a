// wg(8) configuration files (`wg setconf` / `wg showconf` format):
//
//   [Interface]
//   PrivateKey = <base64>
//   ListenPort = 51820
//   FwMark = 0x10 | off
//   [Peer]
//   PublicKey = <base64>
//   PresharedKey = <base64>
//   Endpoint = 192.0.2.1:51820 | [2001:db8::1]:51820
//   PersistentKeepalive = 25 | off
//   AllowedIPs = 10.0.0.1/32, fd00::1/128
//
// Parsed into a DeviceConfiguration as `wg setconf` applies it: replace peers,
// replace each peer's allowed IPs. Used by the benchmarks to apply exactly the
// file `wg setconf` applies. Keys and section names are case-insensitive, as in wg.
import MeshBase
import MeshCrypto

public struct ConfFileError: Error, Equatable, CustomStringConvertible {
    public let line: Int
    public let message: String
    public var description: String { "line \(line): \(message)" }
}

public enum ConfFile {
    public static func parse(_ text: String) throws(ConfFileError) -> DeviceConfiguration {
        var device = DeviceConfiguration(replacePeers: true)
        var section = ""
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.filter { $0 != " " && $0 != "\t" && $0 != "\r" }
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("[") {
                section = trimmed.lowercased()
                guard section == "[interface]" || section == "[peer]" else { throw ConfFileError(line: n, message: "unknown section \(trimmed)") }
                if section == "[peer]" { device.peers.append(PeerConfiguration(publicKey: .zero, replaceAllowedIPs: true)) }
                continue
            }
            guard let eq = trimmed.firstIndex(of: "=") else { throw ConfFileError(line: n, message: "expected key = value") }
            let key = trimmed[..<eq].lowercased()
            let value = String(trimmed[trimmed.index(after: eq)...])
            func bad(_ what: String) -> ConfFileError { ConfFileError(line: n, message: "invalid \(what)") }
            func key32(_ what: String) throws(ConfFileError) -> Bytes32 {
                guard let k = Bytes32(base64: value) else { throw bad(what) }
                return k
            }
            switch (section, key) {
            case ("[interface]", "privatekey"):
                guard let raw = Base64.decode(value), raw.count == 32 else { throw bad("private key") }
                device.privateKey = SecretBytes(copying: raw)
            case ("[interface]", "listenport"):
                guard let p = UInt16(value) else { throw bad("listen port") }
                device.listenPort = p
            case ("[interface]", "fwmark"):
                if value.lowercased() == "off" { device.firewallMark = 0; continue }
                let v = value.lowercased().hasPrefix("0x") ? UInt32(value.dropFirst(2), radix: 16) : UInt32(value)
                guard let m = v else { throw bad("fwmark") }
                device.firewallMark = m
            case ("[peer]", "publickey"): device.peers[device.peers.count - 1].publicKey = try key32("public key")
            case ("[peer]", "presharedkey"): device.peers[device.peers.count - 1].presharedKey = try key32("preshared key")
            case ("[peer]", "endpoint"):
                guard let e = Endpoint(value) else { throw bad("endpoint (use a numeric address)") }
                device.peers[device.peers.count - 1].endpoint = e
            case ("[peer]", "persistentkeepalive"):
                if value.lowercased() == "off" { device.peers[device.peers.count - 1].persistentKeepaliveInterval = 0; continue }
                guard let k = UInt16(value) else { throw bad("persistent keepalive") }
                device.peers[device.peers.count - 1].persistentKeepaliveInterval = k
            case ("[peer]", "allowedips"):
                for item in value.split(separator: ",") where !item.isEmpty {
                    guard let p = IPPrefix(String(item)) else { throw bad("allowed IP '\(item)'") }
                    device.peers[device.peers.count - 1].allowedIPs.append(p)
                }
            default:
                throw ConfFileError(line: n, message: section.isEmpty ? "key outside a section" : "unknown key \(trimmed[..<eq])")
            }
        }
        if let i = device.peers.firstIndex(where: { $0.publicKey.isZero }) {
            throw ConfFileError(line: 0, message: "peer \(i + 1) has no PublicKey")
        }
        return device
    }
}
