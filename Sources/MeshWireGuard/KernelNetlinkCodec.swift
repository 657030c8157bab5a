// The in-kernel WireGuard's generic netlink messages (linux/wireguard.h),
// encoded and decoded in Swift as bytes, so that they are tested against byte
// fixtures and fed hostile input without a kernel. The conversation itself
// (socket, sequence numbers, acks, multi-part dumps) goes through libnl in
// MeshNetlink.
//
//   message   = nlmsghdr(16) | genlmsghdr(4: cmd, version 1, 0) | attributes
//   attribute = len u16 | type u16 (NLA_F_NESTED 0x8000) | payload | pad to 4
//
// WG_CMD_SET_DEVICE: a change too big for one message is split (kernel doc in
// wireguard.h): the device attributes and flags go in the first message only;
// a peer cut off in its allowed IPs continues in the next message with only
// its public key and the remaining allowed IPs (no flags, so
// REPLACE_ALLOWEDIPS is not applied twice).
// WG_CMD_GET_DEVICE (a dump): a peer may be split the same way across
// messages; consecutive entries with the same public key are merged.
import MeshBase
import MeshCrypto

public enum WireGuardNetlink {
    // linux/wireguard.h (stable UAPI; checked against the header in MeshNetlinkTests).
    public static let familyName = "wireguard"
    public static let genlVersion: UInt8 = 1
    public static let cmdGetDevice: UInt8 = 0
    public static let cmdSetDevice: UInt8 = 1
    enum DeviceAttr: UInt16 { case ifindex = 1, ifname, privateKey, publicKey, flags, listenPort, fwmark, peers }
    enum PeerAttr: UInt16 {
        case publicKey = 1, presharedKey, flags, endpoint, persistentKeepaliveInterval, lastHandshakeTime,
             rxBytes, txBytes, allowedIPs, protocolVersion
    }
    enum AllowedIPAttr: UInt16 { case family = 1, ipaddr, cidrMask }
    static let deviceReplacePeers: UInt32 = 1 << 0
    static let peerRemoveMe: UInt32 = 1 << 0
    static let peerReplaceAllowedIPs: UInt32 = 1 << 1
    static let peerUpdateOnly: UInt32 = 1 << 2

    // linux/netlink.h
    static let nlmsgHeaderSize = 16
    static let genlHeaderSize = 4
    public static let flagRequest: UInt16 = 0x1
    public static let flagAck: UInt16 = 0x4
    public static let flagDump: UInt16 = 0x300
    static let nestedFlag: UInt16 = 0x8000
    static let afInet: UInt16 = 2
    static let afInet6: UInt16 = 10

    /// Default message size: what the kernel's and libnl's receive buffers take comfortably.
    public static let defaultMessageSize = 8192
}

public struct NetlinkCodecError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Builds netlink messages with a hard size limit; `put` reports when an attribute does not fit.
struct NetlinkWriter {
    private(set) var bytes: [UInt8] = []
    let limit: Int
    private var nests: [Int] = []

    init(limit: Int, type: UInt16, flags: UInt16, command: UInt8) {
        self.limit = limit
        bytes.reserveCapacity(limit)
        appendU32(0)                       // length, set in finish()
        appendU16(type); appendU16(flags)
        appendU32(0); appendU32(0)         // sequence and port: libnl fills them in
        bytes += [command, WireGuardNetlink.genlVersion, 0, 0]
    }

    private mutating func appendU16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    private mutating func appendU32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }

    static func aligned(_ n: Int) -> Int { (n + 3) & ~3 }

    /// Room for an attribute with `payload` bytes, plus what open nests will add.
    func fits(_ payload: Int) -> Bool { bytes.count + 4 + NetlinkWriter.aligned(payload) <= limit }

    mutating func put(_ type: UInt16, _ payload: [UInt8]) -> Bool {
        guard fits(payload.count) else { return false }
        appendU16(UInt16(4 + payload.count)); appendU16(type)
        bytes += payload
        bytes += [UInt8](repeating: 0, count: NetlinkWriter.aligned(payload.count) - payload.count)
        return true
    }

    mutating func putU16(_ type: UInt16, _ v: UInt16) -> Bool { withUnsafeBytes(of: v.littleEndian) { put(type, Array($0)) } }
    mutating func putU32(_ type: UInt16, _ v: UInt32) -> Bool { withUnsafeBytes(of: v.littleEndian) { put(type, Array($0)) } }

    /// Opens a nested attribute; false when not even its header fits.
    mutating func beginNest(_ type: UInt16) -> Bool {
        guard fits(0) else { return false }
        nests.append(bytes.count)
        appendU16(0); appendU16(type | WireGuardNetlink.nestedFlag)
        return true
    }

    mutating func endNest() {
        let start = nests.removeLast()
        let len = UInt16(bytes.count - start)
        bytes[start] = UInt8(len & 0xff); bytes[start + 1] = UInt8(len >> 8)
    }

    /// Drops the innermost open nest and everything in it.
    mutating func cancelNest() {
        let start = nests.removeLast()
        bytes.removeSubrange(start...)
    }

    mutating func finish() -> [UInt8] {
        precondition(nests.isEmpty, "unbalanced netlink nests")
        let n = UInt32(bytes.count)
        withUnsafeBytes(of: n.littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
        return bytes
    }
}

/// A strict reader of netlink attributes: every length is checked against its container.
struct NetlinkAttributes: Sequence {
    struct Attribute { let type: UInt16; let payload: ArraySlice<UInt8> }
    let bytes: ArraySlice<UInt8>

    func makeIterator() -> AnyIterator<Attribute> {
        var offset = bytes.startIndex
        let end = bytes.endIndex
        return AnyIterator {
            guard offset + 4 <= end else { return nil }
            let len = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & 0x3fff
            guard len >= 4, offset + len <= end else { offset = end; return nil }
            let a = Attribute(type: type, payload: bytes[(offset + 4)..<(offset + len)])
            offset += NetlinkWriter.aligned(len)
            return a
        }
    }

    /// Validates the whole chain: lengths consistent and nothing left over but padding.
    static func validate(_ bytes: ArraySlice<UInt8>) -> Bool {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            guard offset + 4 <= bytes.endIndex else { return false }
            let len = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            guard len >= 4, offset + len <= bytes.endIndex else { return false }
            offset += NetlinkWriter.aligned(len)
        }
        return true
    }
}

extension ArraySlice where Element == UInt8 {
    func u16() -> UInt16? { count == 2 ? UInt16(self[startIndex]) | UInt16(self[startIndex + 1]) << 8 : nil }
    func u32() -> UInt32? { count == 4 ? (0..<4).reduce(UInt32(0)) { $0 | UInt32(self[startIndex + $1]) << (8 * UInt32($1)) } : nil }
    func u64() -> UInt64? { count == 8 ? (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[startIndex + $1]) << (8 * UInt64($1)) } : nil }
}

extension WireGuardNetlink {
    /// The WG_CMD_GET_DEVICE dump request for `interface`.
    public static func getDeviceRequest(interface: String, family: UInt16) -> [UInt8] {
        var w = NetlinkWriter(limit: 256, type: family, flags: flagRequest | flagDump, command: cmdGetDevice)
        _ = w.put(DeviceAttr.ifname.rawValue, Array(interface.utf8) + [0])
        return w.finish()
    }

    /// WG_CMD_SET_DEVICE messages for `change`, each at most `messageSize` bytes.
    public static func setDeviceMessages(interface: String, family: UInt16, change: DeviceConfiguration,
                                         messageSize: Int = defaultMessageSize) throws(NetlinkCodecError) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var peerIndex = 0
        var ipIndex = 0          // resume point within the current peer's allowed IPs
        var first = true
        repeat {
            var w = NetlinkWriter(limit: messageSize, type: family, flags: flagRequest | flagAck, command: cmdSetDevice)
            guard w.put(DeviceAttr.ifname.rawValue, Array(interface.utf8) + [0]) else { throw NetlinkCodecError("message size \(messageSize) too small") }
            if first {
                var ok = true
                if let k = change.privateKey { ok = ok && w.put(DeviceAttr.privateKey.rawValue, k.unsafeExportedBytes()) }
                if let p = change.listenPort { ok = ok && w.putU16(DeviceAttr.listenPort.rawValue, p) }
                if let m = change.firewallMark { ok = ok && w.putU32(DeviceAttr.fwmark.rawValue, m) }
                if change.replacePeers { ok = ok && w.putU32(DeviceAttr.flags.rawValue, deviceReplacePeers) }
                guard ok else { throw NetlinkCodecError("message size \(messageSize) too small") }
            }
            let progressBefore = (peerIndex, ipIndex)
            if peerIndex < change.peers.count, w.beginNest(DeviceAttr.peers.rawValue) {
                var nestIndex: UInt16 = 0
                peers: while peerIndex < change.peers.count {
                    let p = change.peers[peerIndex]
                    guard w.beginNest(nestIndex) else { break }
                    guard w.put(PeerAttr.publicKey.rawValue, p.publicKey.bytes) else { w.cancelNest(); break }
                    if ipIndex == 0 {
                        guard putPeerFields(&w, p) else { w.cancelNest(); break }
                    }
                    if !p.remove && ipIndex < p.allowedIPs.count {
                        guard w.beginNest(PeerAttr.allowedIPs.rawValue) else { w.cancelNest(); break }
                        var ipNest: UInt16 = 0
                        while ipIndex < p.allowedIPs.count {
                            guard putAllowedIP(&w, p.allowedIPs[ipIndex], index: ipNest) else {
                                // Full: close what we have; the rest goes in the next message.
                                w.endNest(); w.endNest()
                                break peers
                            }
                            ipIndex += 1; ipNest &+= 1
                        }
                        w.endNest()
                    }
                    w.endNest()
                    peerIndex += 1; ipIndex = 0; nestIndex &+= 1
                }
                w.endNest()
            }
            // The first message may carry only the device attributes; a later
            // one that cannot take a single peer (or allowed IP) never will.
            if !first && progressBefore == (peerIndex, ipIndex) {
                throw NetlinkCodecError("message size \(messageSize) too small for one peer")
            }
            messages.append(w.finish())
            first = false
        } while peerIndex < change.peers.count
        return messages
    }

    private static func putPeerFields(_ w: inout NetlinkWriter, _ p: PeerConfiguration) -> Bool {
        var flags: UInt32 = 0
        if p.remove { flags |= peerRemoveMe }
        if p.replaceAllowedIPs { flags |= peerReplaceAllowedIPs }
        if p.updateOnly { flags |= peerUpdateOnly }
        var ok = true
        if flags != 0 { ok = ok && w.putU32(PeerAttr.flags.rawValue, flags) }
        if p.remove { return ok }
        if let k = p.presharedKey { ok = ok && w.put(PeerAttr.presharedKey.rawValue, k.bytes) }
        if let e = p.endpoint { ok = ok && w.put(PeerAttr.endpoint.rawValue, sockaddr(e)) }
        if let k = p.persistentKeepaliveInterval { ok = ok && w.putU16(PeerAttr.persistentKeepaliveInterval.rawValue, k) }
        return ok
    }

    private static func putAllowedIP(_ w: inout NetlinkWriter, _ prefix: IPPrefix, index: UInt16) -> Bool {
        let (family, addr): (UInt16, [UInt8])
        switch prefix.address {
        case .v4(let a): (family, addr) = (afInet, a.octets)
        case .v6(let a): (family, addr) = (afInet6, a.bytes)
        }
        // Check the whole entry fits before writing any of it: 4 + 8 + (4+addr) + 8.
        guard w.fits(8 + 4 + addr.count + 8), w.beginNest(index) else { return false }
        _ = w.putU16(AllowedIPAttr.family.rawValue, family)
        _ = w.put(AllowedIPAttr.ipaddr.rawValue, addr)
        _ = w.put(AllowedIPAttr.cidrMask.rawValue, [UInt8(prefix.length)])
        w.endNest()
        return true
    }

    /// struct sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes): family in host
    /// order, port and address in network order.
    static func sockaddr(_ e: Endpoint) -> [UInt8] {
        var out: [UInt8] = []
        switch e.address {
        case .v4(let a):
            withUnsafeBytes(of: afInet.littleEndian) { out += $0 }
            out += [UInt8(e.port >> 8), UInt8(e.port & 0xff)]
            out += a.octets
            out += [UInt8](repeating: 0, count: 8)
        case .v6(let a):
            withUnsafeBytes(of: afInet6.littleEndian) { out += $0 }
            out += [UInt8(e.port >> 8), UInt8(e.port & 0xff)]
            out += [0, 0, 0, 0]                 // flow info
            out += a.bytes
            out += [0, 0, 0, 0]                 // scope id
        }
        return out
    }

    static func endpoint(fromSockaddr b: ArraySlice<UInt8>) -> Endpoint? {
        guard b.count >= 2 else { return nil }
        let family = UInt16(b[b.startIndex]) | UInt16(b[b.startIndex + 1]) << 8
        let s = b.startIndex
        if family == afInet, b.count >= 8 {
            let port = UInt16(b[s + 2]) << 8 | UInt16(b[s + 3])
            return Endpoint(.v4(IPv4Address(b[s + 4], b[s + 5], b[s + 6], b[s + 7])), port: port)
        }
        if family == afInet6, b.count >= 24, let a = IPv6Address(bytes: b[(s + 8)..<(s + 24)]) {
            let port = UInt16(b[s + 2]) << 8 | UInt16(b[s + 3])
            return Endpoint(IPAddress.v6(a).unmapped, port: port)
        }
        return nil
    }

    /// Parses the messages of a WG_CMD_GET_DEVICE dump into a snapshot,
    /// merging a peer split across messages. Strict: any malformed message
    /// throws (a kernel reply that does not parse is a bug to report, not to guess at).
    public static func parseGetDevice(_ messages: [[UInt8]]) throws(NetlinkCodecError) -> DeviceConfiguration {
        var device = DeviceConfiguration()
        for m in messages {
            guard m.count >= nlmsgHeaderSize + genlHeaderSize else { throw NetlinkCodecError("short netlink message") }
            let len = Int(m[0]) | Int(m[1]) << 8 | Int(m[2]) << 16 | Int(m[3]) << 24
            guard len >= nlmsgHeaderSize + genlHeaderSize, len <= m.count else { throw NetlinkCodecError("bad netlink message length") }
            let attrs = m[(nlmsgHeaderSize + genlHeaderSize)..<len]
            guard NetlinkAttributes.validate(attrs) else { throw NetlinkCodecError("malformed attributes") }
            for a in NetlinkAttributes(bytes: attrs) {
                switch DeviceAttr(rawValue: a.type) {
                case .privateKey:
                    guard a.payload.count == 32 else { throw NetlinkCodecError("bad private key") }
                    if !a.payload.allSatisfy({ $0 == 0 }) { device.privateKey = SecretBytes(copying: a.payload) }
                case .publicKey:
                    guard let k = Bytes32(a.payload) else { throw NetlinkCodecError("bad public key") }
                    if !k.isZero { device.publicKey = k }
                case .listenPort:
                    guard let p = a.payload.u16() else { throw NetlinkCodecError("bad listen port") }
                    device.listenPort = p
                case .fwmark:
                    guard let f = a.payload.u32() else { throw NetlinkCodecError("bad fwmark") }
                    device.firewallMark = f
                case .peers:
                    guard NetlinkAttributes.validate(a.payload) else { throw NetlinkCodecError("malformed peers") }
                    for entry in NetlinkAttributes(bytes: a.payload) {
                        let peer = try parsePeer(entry.payload)
                        if let last = device.peers.last, last.publicKey == peer.publicKey {
                            device.peers[device.peers.count - 1].allowedIPs += peer.allowedIPs
                        } else {
                            device.peers.append(peer)
                        }
                    }
                default:
                    continue   // ifindex, ifname, flags, and attributes newer than us
                }
            }
        }
        return device
    }

    private static func parsePeer(_ bytes: ArraySlice<UInt8>) throws(NetlinkCodecError) -> PeerConfiguration {
        guard NetlinkAttributes.validate(bytes) else { throw NetlinkCodecError("malformed peer") }
        var key: Bytes32?
        var p = PeerConfiguration(publicKey: .zero)
        for a in NetlinkAttributes(bytes: bytes) {
            switch PeerAttr(rawValue: a.type) {
            case .publicKey: key = Bytes32(a.payload)
            case .presharedKey:
                guard let k = Bytes32(a.payload) else { throw NetlinkCodecError("bad preshared key") }
                if !k.isZero { p.presharedKey = k }
            case .endpoint: p.endpoint = endpoint(fromSockaddr: a.payload)
            case .persistentKeepaliveInterval: p.persistentKeepaliveInterval = a.payload.u16()
            case .lastHandshakeTime:
                guard a.payload.count == 16, let s = a.payload.prefix(8).u64(), let ns = a.payload.suffix(8).u64() else {
                    throw NetlinkCodecError("bad handshake time")
                }
                if s != 0 || ns != 0 { p.lastHandshake = WallTime(seconds: Int64(bitPattern: s), nanoseconds: Int64(bitPattern: ns)) }
            case .rxBytes: p.receivedBytes = a.payload.u64() ?? 0
            case .txBytes: p.transmittedBytes = a.payload.u64() ?? 0
            case .protocolVersion: p.protocolVersion = a.payload.u32().map(Int.init)
            case .allowedIPs:
                guard NetlinkAttributes.validate(a.payload) else { throw NetlinkCodecError("malformed allowed IPs") }
                for entry in NetlinkAttributes(bytes: a.payload) {
                    p.allowedIPs.append(try parseAllowedIP(entry.payload))
                }
            default: continue
            }
        }
        guard let key else { throw NetlinkCodecError("peer without public key") }
        p.publicKey = key
        return p
    }

    private static func parseAllowedIP(_ bytes: ArraySlice<UInt8>) throws(NetlinkCodecError) -> IPPrefix {
        guard NetlinkAttributes.validate(bytes) else { throw NetlinkCodecError("malformed allowed IP") }
        var family: UInt16?, addr: ArraySlice<UInt8>?, cidr: UInt8?
        for a in NetlinkAttributes(bytes: bytes) {
            switch AllowedIPAttr(rawValue: a.type) {
            case .family: family = a.payload.u16()
            case .ipaddr: addr = a.payload
            case .cidrMask: cidr = a.payload.first
            default: continue
            }
        }
        let address: IPAddress
        switch (family, addr) {
        case (afInet?, let b?) where b.count == 4: address = .v4(IPv4Address(b[b.startIndex], b[b.startIndex + 1], b[b.startIndex + 2], b[b.startIndex + 3]))
        case (afInet6?, let b?) where b.count == 16: address = .v6(IPv6Address(bytes: b)!)
        default: throw NetlinkCodecError("bad allowed IP address")
        }
        guard let c = cidr, let prefix = IPPrefix(address, length: Int(c)) else { throw NetlinkCodecError("bad allowed IP mask") }
        return prefix
    }
}
