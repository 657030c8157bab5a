// A strict byte writer and reader for the control-plane wire format
// (docs/wire-protocol.md). Big-endian integers. The reader never reads past
// its end: every access checks the remaining length and throws instead.
import MeshBase

public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        case truncated, trailingBytes, badMagic, unsupportedVersion, unknownType, badValue, badSignature,
             untrustedSender, replayed, staleRecord, forgedRecord, tooLarge,
             /// An accusation (suspect, dead, left) at an incarnation the accused never signed:
             /// a lie that, believed, could never be refuted.
             unsignedIncarnation
    }
    public let reason: Reason
    public let detail: String
    public init(_ reason: Reason, _ detail: String = "") { self.reason = reason; self.detail = detail }
    public var description: String { detail.isEmpty ? reason.rawValue : "\(reason.rawValue): \(detail)" }
}

struct ByteWriter {
    private(set) var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func key(_ k: Bytes32) { bytes += k.bytes }
    /// A length-prefixed (u16) byte string.
    mutating func blob(_ b: [UInt8]) { u16(UInt16(b.count)); bytes += b }

    mutating func endpoint(_ e: Endpoint) {
        switch e.address {
        case .v4(let a): u8(4); raw(a.octets)
        case .v6(let a): u8(6); raw(a.bytes)
        }
        u16(e.port)
    }
}

struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func take(_ n: Int) throws(WireError) -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw WireError(.truncated) }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }
    mutating func u8() throws(WireError) -> UInt8 { try take(1).first! }
    mutating func u16() throws(WireError) -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
    mutating func u32() throws(WireError) -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64() throws(WireError) -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func key() throws(WireError) -> Bytes32 { Bytes32(try take(32))! }
    mutating func blob(max: Int) throws(WireError) -> [UInt8] {
        let n = Int(try u16())
        guard n <= max else { throw WireError(.tooLarge, "\(n) > \(max) bytes") }
        return Array(try take(n))
    }

    mutating func endpoint() throws(WireError) -> Endpoint {
        let family = try u8()
        let address: IPAddress
        switch family {
        case 4:
            let b = try take(4)
            address = .v4(IPv4Address(b[b.startIndex], b[b.startIndex + 1], b[b.startIndex + 2], b[b.startIndex + 3]))
        case 6:
            address = .v6(IPv6Address(bytes: try take(16))!)
        default:
            throw WireError(.badValue, "address family \(family)")
        }
        return Endpoint(address, port: try u16())
    }

    func expectEnd() throws(WireError) {
        guard remaining == 0 else { throw WireError(.trailingBytes, "\(remaining) bytes") }
    }
}
