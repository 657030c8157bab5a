import Foundation
import MeshBase
@testable import MeshLinux

/// A test-specific failure with a message.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Payload for datagram `i` of a batch test: `size` bytes, a recognisable pattern.
func pattern(_ i: Int, size: Int) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i &* 7 &+ 1) }
}

/// Receives from a nonblocking socket until `want` datagrams arrived or
/// `timeout` passed, calling `each(slot, batch)` per datagram in arrival order.
func receiveAll(_ socket: UDPSocket, batch: DatagramBatch, want: Int, timeout: Duration = .seconds(3),
                _ each: (Int, DatagramBatch) throws -> Void) throws -> Int {
    var got = 0
    let deadline = MonotonicClock.now() + timeout
    let poller = Poller([socket.fileDescriptor])
    while got < want {
        let left = deadline - MonotonicClock.now()
        guard left > .zero else { break }
        _ = try poller.wait(timeout: left)
        let n = try socket.receive(into: batch)
        for i in 0..<n { try each(i, batch) }
        got += n
    }
    return got
}

/// Runs a command (e.g. `ip addr add …`); throws with its stderr on failure.
@discardableResult
func run(_ path: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    p.waitUntilExit()
    let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    guard p.terminationStatus == 0 else { throw TestFailure("\(path) \(args.joined(separator: " ")): \(e)") }
    return o
}

func ip(_ args: String...) throws { try run("/usr/sbin/ip", args) }

// MARK: Building and parsing IP packets (RFC 791, RFC 8200, RFC 768)

/// The Internet checksum (RFC 1071) of `bytes`, starting from `initial`.
func internetChecksum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 {
    var sum = initial
    var i = 0
    while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
    if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func read16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }

/// A UDP datagram with its checksum over the pseudo-header `pseudo`.
func udpSegment(srcPort: UInt16, dstPort: UInt16, payload: [UInt8], pseudo: [UInt8]) -> [UInt8] {
    var udp = be16(srcPort) + be16(dstPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    var c = internetChecksum(pseudo + udp)
    if c == 0 { c = 0xffff }   // RFC 768: a computed zero is sent as all ones
    udp[6] = UInt8(c >> 8); udp[7] = UInt8(c & 0xff)
    return udp
}

/// An IPv4 packet carrying a UDP datagram, both checksums computed.
func ipv4UDP(src: IPv4Address, dst: IPv4Address, srcPort: UInt16, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
    let udpLength = UInt16(8 + payload.count)
    let pseudo = src.octets + dst.octets + [0, 17] + be16(udpLength)
    let udp = udpSegment(srcPort: srcPort, dstPort: dstPort, payload: payload, pseudo: pseudo)
    var header: [UInt8] = [0x45, 0] + be16(UInt16(20 + udp.count)) + [0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0] + src.octets + dst.octets
    let c = internetChecksum(header)
    header[10] = UInt8(c >> 8); header[11] = UInt8(c & 0xff)
    return header + udp
}

/// An IPv6 packet carrying a UDP datagram (checksum mandatory in IPv6).
func ipv6UDP(src: IPv6Address, dst: IPv6Address, srcPort: UInt16, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
    let udpLength = UInt32(8 + payload.count)
    let pseudo = src.bytes + dst.bytes + [UInt8(udpLength >> 24), UInt8(udpLength >> 16 & 0xff), UInt8(udpLength >> 8 & 0xff), UInt8(udpLength & 0xff), 0, 0, 0, 17]
    let udp = udpSegment(srcPort: srcPort, dstPort: dstPort, payload: payload, pseudo: pseudo)
    let header: [UInt8] = [0x60, 0, 0, 0] + be16(UInt16(udp.count)) + [17, 64] + src.bytes + dst.bytes
    return header + udp
}

/// What a test needs to know about a UDP-in-IP packet read from TUN.
struct ParsedUDP: Equatable {
    var source: Endpoint
    var destination: Endpoint
    var payload: [UInt8]
    var checksumsValid: Bool
}

/// Parses an IPv4 or IPv6 packet carrying UDP; nil for anything else.
func parseUDP(_ p: [UInt8]) -> ParsedUDP? {
    guard let first = p.first else { return nil }
    switch first >> 4 {
    case 4:
        guard p.count >= 28, p[9] == 17 else { return nil }
        let ihl = Int(first & 0x0f) * 4
        guard ihl >= 20, p.count >= ihl + 8, Int(read16(p, 2)) == p.count else { return nil }
        let src = IPv4Address(p[12], p[13], p[14], p[15]), dst = IPv4Address(p[16], p[17], p[18], p[19])
        let udp = Array(p[ihl...])
        let headerOK = internetChecksum(Array(p[0..<ihl])) == 0
        let pseudo = src.octets + dst.octets + [0, 17] + be16(UInt16(udp.count))
        let udpOK = read16(udp, 6) == 0 || internetChecksum(pseudo + udp) == 0
        return ParsedUDP(source: Endpoint(.v4(src), port: read16(udp, 0)), destination: Endpoint(.v4(dst), port: read16(udp, 2)),
                         payload: Array(udp[8...]), checksumsValid: headerOK && udpOK)
    case 6:
        guard p.count >= 48, p[6] == 17, Int(read16(p, 4)) + 40 == p.count else { return nil }
        let src = IPv6Address(bytes: p[8..<24])!, dst = IPv6Address(bytes: p[24..<40])!
        let udp = Array(p[40...])
        let n = UInt32(udp.count)
        let pseudo = src.bytes + dst.bytes + [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), 0, 0, 0, 17]
        return ParsedUDP(source: Endpoint(.v6(src), port: read16(udp, 0)), destination: Endpoint(.v6(dst), port: read16(udp, 2)),
                         payload: Array(udp[8...]), checksumsValid: internetChecksum(pseudo + udp) == 0)
    default:
        return nil
    }
}

/// What a test needs to know about a TCP-in-IP packet.
struct ParsedTCP {
    var source: Endpoint
    var destination: Endpoint
    var seq: UInt32
    var ack: UInt32
    var flags: UInt8
    var headerLength: Int
    var payload: [UInt8]
    var checksumValid: Bool
    var ipv4ID: UInt16?
    var ipv4HeaderValid: Bool
}

func read32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(read16(b, at)) << 16 | UInt32(read16(b, at + 2)) }
func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }

/// Parses an IPv4 or IPv6 (no extension headers) packet carrying TCP.
func parseTCP(_ p: [UInt8]) -> ParsedTCP? {
    guard let first = p.first else { return nil }
    let ipLength: Int, src: IPAddress, dst: IPAddress, pseudoBase: [UInt8]
    switch first >> 4 {
    case 4:
        guard p.count >= 40, p[9] == 6, Int(read16(p, 2)) == p.count else { return nil }
        ipLength = Int(first & 0x0f) * 4
        let s = IPv4Address(p[12], p[13], p[14], p[15]), d = IPv4Address(p[16], p[17], p[18], p[19])
        src = .v4(s); dst = .v4(d)
        pseudoBase = s.octets + d.octets + [0, 6] + be16(UInt16(p.count - ipLength))
    case 6:
        guard p.count >= 60, p[6] == 6, Int(read16(p, 4)) + 40 == p.count else { return nil }
        ipLength = 40
        let s = IPv6Address(bytes: p[8..<24])!, d = IPv6Address(bytes: p[24..<40])!
        src = .v6(s); dst = .v6(d)
        pseudoBase = s.bytes + d.bytes + be32(UInt32(p.count - 40)) + [0, 0, 0, 6]
    default:
        return nil
    }
    let tcp = Array(p[ipLength...])
    let hl = Int(tcp[12] >> 4) * 4
    guard hl >= 20, tcp.count >= hl else { return nil }
    return ParsedTCP(source: Endpoint(src, port: read16(tcp, 0)), destination: Endpoint(dst, port: read16(tcp, 2)),
                     seq: read32(tcp, 4), ack: read32(tcp, 8), flags: tcp[13], headerLength: hl,
                     payload: Array(tcp[hl...]), checksumValid: internetChecksum(pseudoBase + tcp) == 0,
                     ipv4ID: first >> 4 == 4 ? read16(p, 4) : nil,
                     ipv4HeaderValid: first >> 4 != 4 || internetChecksum(Array(p[0..<ipLength])) == 0)
}

/// A TCP segment in IPv4 with both checksums; `options` must be a multiple of 4 bytes.
func ipv4TCP(src: IPv4Address, dst: IPv4Address, srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32,
             flags: UInt8, window: UInt16 = 65535, options: [UInt8] = [], payload: [UInt8] = [], id: UInt16 = 0x1234) -> [UInt8] {
    let hl = 20 + options.count
    var tcp = be16(srcPort) + be16(dstPort) + be32(seq) + be32(ack) + [UInt8(hl / 4) << 4, flags] + be16(window) + [0, 0, 0, 0] + options + payload
    let pseudo = src.octets + dst.octets + [0, 6] + be16(UInt16(tcp.count))
    let c = internetChecksum(pseudo + tcp)
    tcp[16] = UInt8(c >> 8); tcp[17] = UInt8(c & 0xff)
    var header: [UInt8] = [0x45, 0] + be16(UInt16(20 + tcp.count)) + be16(id) + [0x40, 0x00, 64, 6, 0, 0] + src.octets + dst.octets
    let hc = internetChecksum(header)
    header[10] = UInt8(hc >> 8); header[11] = UInt8(hc & 0xff)
    return header + tcp
}

/// A TCP segment in IPv6 with its checksum.
func ipv6TCP(src: IPv6Address, dst: IPv6Address, srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32,
             flags: UInt8, options: [UInt8] = [], payload: [UInt8] = []) -> [UInt8] {
    let hl = 20 + options.count
    var tcp = be16(srcPort) + be16(dstPort) + be32(seq) + be32(ack) + [UInt8(hl / 4) << 4, flags] + be16(65535) + [0, 0, 0, 0] + options + payload
    let pseudo = src.bytes + dst.bytes + be32(UInt32(tcp.count)) + [0, 0, 0, 6]
    let c = internetChecksum(pseudo + tcp)
    tcp[16] = UInt8(c >> 8); tcp[17] = UInt8(c & 0xff)
    return [0x60, 0, 0, 0] + be16(UInt16(tcp.count)) + [6, 64] + src.bytes + dst.bytes + tcp
}
