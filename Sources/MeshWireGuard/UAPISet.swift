// The `set=1` body → a DeviceConfiguration change.
//
// Keys and their values, exactly as wireguard-go device/uapi.go accepts them
// (handleDeviceLine, handlePublicKeyLine, handlePeerLine); every refusal is
// EINVAL there, except a line without "=" (EPROTO):
//
//   device keys (before the first public_key)
//     private_key=<64 hex>        all zeros removes the key
//     listen_port=<0…65535>       0 = pick a random port
//     fwmark=<0…4294967295>       0 clears it
//     replace_peers=true          only "true"
//   peer keys (after public_key=<64 hex>, which starts a peer)
//     update_only=true            do not create the peer
//     remove=true                 remove the peer
//     preshared_key=<64 hex>      all zeros clears it
//     endpoint=<a.b.c.d:port | [v6]:port>
//     persistent_keepalive_interval=<0…65535>   0 = off
//     replace_allowed_ips=true    drops the allowed IPs set so far, then adds
//     allowed_ip=<addr>/<bits>    host bits are masked, as wireguard-go's trie does
//     protocol_version=1          only 1
//
// Hex is read in either case, as Go's hex.DecodeString does (`wg` writes
// lowercase); numbers are ASCII decimal digits (leading zeros allowed, no
// sign), as strconv.ParseUint(_, 10, n) reads them. Endpoints and prefixes
// are numeric, without IPv6 zones (our Endpoint has none); a prefix needs its
// "/bits", without leading zeros (as Go's netip.ParsePrefix).
//
// Order matters as it does in wireguard-go, which applies lines one by one:
// a later listen_port wins; `replace_allowed_ips` forgets the allowed IPs
// listed before it for that peer. A public key listed twice yields two
// entries in `peers`, to be applied in order. Unlike wireguard-go, nothing
// is applied when any line is refused: the result is all or nothing.
import MeshBase
import MeshCrypto

extension UAPI {
    /// The change a `set=1` request asks for. Throws the errno wireguard-go
    /// would reply with; messages name the line (the `set=1` line is line 1)
    /// and never contain key material.
    public static func parseSet(_ request: UAPISetRequest) throws(UAPIError) -> DeviceConfiguration {
        let result: Result<DeviceConfiguration, UAPIError> = request.body.withUnsafeBytes { body in
            var parser = SetParser()
            var lineStart = 0
            var i = 0
            while i <= body.count {
                if i == body.count || body[i] == UInt8(ascii: "\n") {
                    if i == body.count && lineStart == i { break }   // body ended with "\n"
                    var end = i
                    if end > lineStart && body[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                    do throws(UAPIError) {
                        try parser.parse(line: UnsafeRawBufferPointer(rebasing: body[lineStart..<end]))
                    } catch {
                        return .failure(error)
                    }
                    lineStart = i + 1
                }
                i += 1
            }
            return .success(parser.finish())
        }
        return try result.get()
    }

    /// `parseSet` of a body given as lines (without their newlines).
    public static func parseSet<S: Sequence>(lines: S) throws(UAPIError) -> DeviceConfiguration where S.Element: StringProtocol {
        try parseSet(UAPISetRequest(lines: lines))
    }
}

/// Parses set lines in order into a DeviceConfiguration.
private struct SetParser {
    var device = DeviceConfiguration()
    /// The peer being configured (after its public_key line).
    var peer: PeerConfiguration?
    /// The `set=1` line is line 1.
    var lineNumber = 1

    mutating func parse(line: UnsafeRawBufferPointer) throws(UAPIError) {
        lineNumber += 1
        guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else {
            if line.isEmpty { throw error(UAPIError.Errno.EPROTO, "blank line inside a set body") }
            // wireguard-go quotes the line; it may hold a key, so we do not.
            throw error(UAPIError.Errno.EPROTO, "failed to parse line: expected key=value")
        }
        let key = UnsafeRawBufferPointer(rebasing: line[..<equals])
        let value = UnsafeRawBufferPointer(rebasing: line[(equals + 1)...])
        let name = String(decoding: key, as: UTF8.self)   // not secret; invalid UTF-8 matches no key

        if name == "public_key" {
            if let peer { device.peers.append(peer) }
            guard let publicKey = Self.key(value) else {
                throw invalid("failed to get peer by public key: expected 64 hex digits")
            }
            peer = PeerConfiguration(publicKey: publicKey)
            return
        }
        if peer == nil {
            try parseDevice(name, key, value)
        } else {
            try parsePeer(name, key, value)
        }
    }

    mutating func parseDevice(_ name: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(UAPIError) {
        switch name {
        case "private_key":
            var ok = false
            let secret = SecretBytes(count: 32) { ok = Self.hex(value, into: $0) }
            guard ok else { throw invalid("failed to set private_key: expected 64 hex digits") }
            device.privateKey = secret
        case "listen_port":
            guard let port = Self.decimal(value, max: UInt64(UInt16.max)) else {
                throw invalid("failed to parse listen_port: \(Self.quoted(value)) is not a number from 0 to 65535")
            }
            device.listenPort = UInt16(port)
        case "fwmark":
            guard let mark = Self.decimal(value, max: UInt64(UInt32.max)) else {
                throw invalid("invalid fwmark: \(Self.quoted(value)) is not a number from 0 to 4294967295")
            }
            device.firewallMark = UInt32(mark)
        case "replace_peers":
            guard Self.isTrue(value) else { throw invalid("failed to set replace_peers, invalid value: \(Self.quoted(value))") }
            device.replacePeers = true
        default:
            throw invalid("invalid UAPI device key: \(Self.keyName(key))")
        }
    }

    mutating func parsePeer(_ name: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(UAPIError) {
        // Taken out of `peer` while edited, so appending to its allowed IPs
        // never copies the array (a peer may list hundreds of thousands).
        guard var p = peer.take() else { return }
        switch name {
        case "update_only":
            guard Self.isTrue(value) else { throw invalid("failed to set update only, invalid value: \(Self.quoted(value))") }
            p.updateOnly = true
        case "remove":
            guard Self.isTrue(value) else { throw invalid("failed to set remove, invalid value: \(Self.quoted(value))") }
            p.remove = true
        case "preshared_key":
            guard let psk = Self.key(value) else { throw invalid("failed to set preshared key: expected 64 hex digits") }
            p.presharedKey = psk
        case "endpoint":
            guard let endpoint = Endpoint(String(decoding: value, as: UTF8.self)) else {
                throw invalid("failed to set endpoint \(Self.quoted(value)): expected a.b.c.d:port or [v6]:port")
            }
            p.endpoint = endpoint
        case "persistent_keepalive_interval":
            guard let seconds = Self.decimal(value, max: UInt64(UInt16.max)) else {
                throw invalid("failed to set persistent keepalive interval: \(Self.quoted(value)) is not a number from 0 to 65535")
            }
            p.persistentKeepaliveInterval = UInt16(seconds)
        case "replace_allowed_ips":
            guard Self.isTrue(value) else { throw invalid("failed to replace allowedips, invalid value: \(Self.quoted(value))") }
            p.replaceAllowedIPs = true
            p.allowedIPs.removeAll()
        case "allowed_ip":
            guard let prefix = Self.prefix(value) else {
                throw invalid("failed to set allowed ip: \(Self.quoted(value)) is not address/bits")
            }
            p.allowedIPs.append(prefix)
        case "protocol_version":
            guard value.elementsEqual("1".utf8) else { throw invalid("invalid protocol version: \(Self.quoted(value))") }
            p.protocolVersion = 1
        default:
            throw invalid("invalid UAPI peer key: \(Self.keyName(key))")
        }
        peer = p
    }

    mutating func finish() -> DeviceConfiguration {
        if let peer { device.peers.append(peer) }
        peer = nil
        return device
    }

    // MARK: - Errors

    func error(_ errno: Int32, _ message: String) -> UAPIError {
        UAPIError(errno: errno, message: "line \(lineNumber): \(message)")
    }

    func invalid(_ message: String) -> UAPIError { error(UAPIError.Errno.EINVAL, message) }

    /// A key name for a message: shown only when it looks like a key name
    /// (lowercase letters and "_", at most 32), so that a key pasted in the
    /// wrong place is never echoed.
    static func keyName(_ key: UnsafeRawBufferPointer) -> String {
        let plausible = key.count <= 32 && key.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "_") }
        return plausible ? "\"\(String(decoding: key, as: UTF8.self))\"" : "(\(key.count) bytes, not shown)"
    }

    /// A non-secret value for a message, sanitized and cut short.
    static func quoted(_ value: UnsafeRawBufferPointer) -> String { "\"\(UAPIError.sanitized(value, limit: 48))\"" }

    // MARK: - Values

    static func isTrue(_ value: UnsafeRawBufferPointer) -> Bool { value.elementsEqual("true".utf8) }

    /// ASCII decimal digits (at least one, leading zeros allowed) up to `max`.
    static func decimal(_ value: UnsafeRawBufferPointer, max: UInt64) -> UInt64? {
        guard !value.isEmpty else { return nil }
        var n: UInt64 = 0
        for b in value {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + UInt64(b - UInt8(ascii: "0"))   // n <= max <= UInt32.max before this, so no overflow
            if n > max { return nil }
        }
        return n
    }

    /// A 32-byte public value (public or preshared key) from 64 hex digits.
    static func key(_ value: UnsafeRawBufferPointer) -> Bytes32? {
        var key = Bytes32.zero
        let ok = key.withUnsafeMutableBytes { hex(value, into: $0) }
        return ok ? key : nil
    }

    /// Decodes exactly `2 * out.count` hex digits (either case) into `out`.
    /// On failure `out` may hold part of the value; callers discard it.
    static func hex(_ value: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard value.count == 2 * out.count else { return false }
        var bad: UInt8 = 0
        for i in 0..<out.count {
            let (hi, badHi) = nibble(value[2 * i])
            let (lo, badLo) = nibble(value[2 * i + 1])
            out[i] = hi << 4 | lo
            bad |= badHi | badLo
        }
        return bad == 0
    }

    /// The value of one hex digit and whether it was not one; no branch on
    /// the digit, since keys pass through here.
    static func nibble(_ c: UInt8) -> (value: UInt8, bad: UInt8) {
        let digit = c &- UInt8(ascii: "0")                 // 0…9 when a digit
        let letter = (c | 0x20) &- UInt8(ascii: "a")       // 0…5 when a–f or A–F
        let isDigit = UInt8(truncatingIfNeeded: (UInt16(digit) &- 10) >> 8)   // 0xff when digit < 10
        let isLetter = UInt8(truncatingIfNeeded: (UInt16(letter) &- 6) >> 8)  // 0xff when letter < 6
        let value = (digit & isDigit) | ((letter &+ 10) & isLetter)
        return (value, ~(isDigit | isLetter) & 1)
    }

    /// `address/bits`: a numeric IPv4 or IPv6 address (no zone) and a prefix
    /// length without sign or leading zeros, at most the address width.
    static func prefix(_ value: UnsafeRawBufferPointer) -> IPPrefix? {
        guard let slash = value.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let bitsText = value[(slash + 1)...]
        guard (1...3).contains(bitsText.count),
              bitsText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              bitsText.count == 1 || bitsText.first != UInt8(ascii: "0"),
              let address = IPAddress(String(decoding: UnsafeRawBufferPointer(rebasing: value[..<slash]), as: UTF8.self))
        else { return nil }
        let bits = bitsText.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return IPPrefix(address, length: bits)
    }
}
