// A DeviceConfiguration snapshot → the `get=1` reply, byte for byte as
// wireguard-go device/uapi.go (IpcGetOperation, then IpcHandle's errno line)
// writes it, so `wg show` / `wg showconf` read our engine as they read
// wireguard-go:
//
//   private_key=<64 hex>          omitted when unset or all zeros
//   listen_port=<n>               omitted when unset or 0
//   fwmark=<n>                    omitted when unset or 0
//   per peer, in the snapshot's order:
//     public_key=<64 hex>
//     preshared_key=<64 hex>      always; all zeros when none
//     protocol_version=1          always
//     endpoint=<ip:port | [v6]:port>        omitted when unknown
//     last_handshake_time_sec=<n>           always; 0 when never
//     last_handshake_time_nsec=<n>          always; 0 when never
//     tx_bytes=<n>
//     rx_bytes=<n>
//     persistent_keepalive_interval=<n>     always; 0 when off
//     allowed_ip=<addr>/<bits>              one line each, in the snapshot's order
//   errno=0
//   (blank line)
//
// Addresses are written as Go's net/netip writes them: RFC 5952 for IPv6,
// except that an IPv4-mapped address is `::ffff:a.b.c.d`.
import MeshBase
import MeshCrypto

extension UAPI {
    /// The complete reply to `get=1` for `snapshot`, ending in `errno=0` and
    /// the blank line. The change-only fields of the model (replacePeers,
    /// remove, updateOnly, replaceAllowedIPs) are ignored. The reply holds
    /// the private key in hex, as the protocol requires: send it, do not log
    /// it.
    public static func formatGet(_ snapshot: DeviceConfiguration) -> String {
        // An upper bound on the reply's size, so its buffer never grows (a
        // growing array frees its old storage, key included, unwiped).
        let allowedIPs = snapshot.peers.reduce(0) { $0 + $1.allowedIPs.count }
        var out = UAPIOutput(capacity: 256 + 512 * snapshot.peers.count + 64 * allowedIPs)
        if let key = snapshot.privateKey, key.count == 32 {
            key.withUnsafeBytes { raw in
                if !ConstantTime.isZero(raw) { out.key("private_key", raw) }
            }
        }
        if let port = snapshot.listenPort, port != 0 { out.line("listen_port", "\(port)") }
        if let mark = snapshot.firewallMark, mark != 0 { out.line("fwmark", "\(mark)") }
        for peer in snapshot.peers {
            peer.publicKey.withUnsafeBytes { out.key("public_key", $0) }
            (peer.presharedKey ?? .zero).withUnsafeBytes { out.key("preshared_key", $0) }
            out.line("protocol_version", "\(peer.protocolVersion ?? 1)")
            if let endpoint = peer.endpoint { out.line("endpoint", goText(endpoint)) }
            let (seconds, nanoseconds) = unixTime(peer.lastHandshake)
            out.line("last_handshake_time_sec", "\(seconds)")
            out.line("last_handshake_time_nsec", "\(nanoseconds)")
            out.line("tx_bytes", "\(peer.transmittedBytes)")
            out.line("rx_bytes", "\(peer.receivedBytes)")
            out.line("persistent_keepalive_interval", "\(peer.persistentKeepaliveInterval ?? 0)")
            for prefix in peer.allowedIPs { out.line("allowed_ip", goText(prefix)) }
        }
        out.bytes += formatErrno(0).utf8
        return out.finish()
    }

    /// The last handshake as wireguard-go reports it: whole seconds and the
    /// nanoseconds within that second, both from a nanosecond count since the
    /// epoch; 0/0 for never. A denormalized WallTime is normalized; a time
    /// before the epoch is written as 0/0, since `wg` reads only unsigned
    /// digits.
    static func unixTime(_ time: WallTime?) -> (seconds: Int64, nanoseconds: Int64) {
        guard let time else { return (0, 0) }
        let billion: Int64 = 1_000_000_000
        var carry = time.nanoseconds / billion
        var nanos = time.nanoseconds % billion
        if nanos < 0 { nanos += billion; carry -= 1 }
        let (seconds, overflow) = time.seconds.addingReportingOverflow(carry)
        if overflow { return carry > 0 ? (.max, billion - 1) : (0, 0) }
        if seconds < 0 { return (0, 0) }
        return (seconds, nanos)
    }

    /// An address as Go's netip.Addr.String writes it.
    static func goText(_ address: IPAddress) -> String {
        switch address {
        case .v4(let a): return a.description
        case .v6(let a):
            if a.high == 0 && a.low >> 32 == 0xffff {
                return "::ffff:" + IPv4Address(UInt32(truncatingIfNeeded: a.low)).description
            }
            return a.description
        }
    }

    /// An endpoint as Go's netip.AddrPort.String writes it.
    static func goText(_ endpoint: Endpoint) -> String {
        endpoint.address.isIPv4 ? "\(goText(endpoint.address)):\(endpoint.port)" : "[\(goText(endpoint.address))]:\(endpoint.port)"
    }

    /// A prefix as Go's netip.Prefix.String writes it.
    static func goText(_ prefix: IPPrefix) -> String { "\(goText(prefix.address))/\(prefix.length)" }
}

/// The reply under construction. Its bytes include the private key in hex,
/// so they are wiped once copied into the returned String.
private struct UAPIOutput {
    var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func line(_ key: String, _ value: String) {
        bytes += key.utf8
        bytes.append(UInt8(ascii: "="))
        bytes += value.utf8
        bytes.append(UInt8(ascii: "\n"))
    }

    /// `key=<lowercase hex of raw>`.
    mutating func key(_ key: String, _ raw: UnsafeRawBufferPointer) {
        let digits: StaticString = "0123456789abcdef"
        bytes += key.utf8
        bytes.append(UInt8(ascii: "="))
        digits.withUTF8Buffer { hex in
            for b in raw {
                bytes.append(hex[Int(b >> 4)])
                bytes.append(hex[Int(b & 15)])
            }
        }
        bytes.append(UInt8(ascii: "\n"))
    }

    mutating func finish() -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        ConstantTime.wipe(&bytes)
        return text
    }
}
