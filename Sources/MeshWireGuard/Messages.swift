// WireGuard message formats (paper section 5.4, kernel messages.h). All
// integers are little-endian. Parsing is strict: a message of the wrong size
// for its type is rejected, never read past its end.
//
//   initiation (148): type=1 | 3 zero | sender u32 | ephemeral 32 | static 32+16 | timestamp 12+16 | mac1 16 | mac2 16
//   response    (92): type=2 | 3 zero | sender u32 | receiver u32 | ephemeral 32 | empty 0+16 | mac1 16 | mac2 16
//   cookie      (64): type=3 | 3 zero | receiver u32 | nonce 24 | cookie 16+16
//   transport (>=32): type=4 | 3 zero | receiver u32 | counter u64 | packet+16
import MeshBase

/// The kind of a datagram arriving on the WireGuard port, from its first bytes.
public enum MessageKind: Equatable, Sendable {
    case handshakeInitiation
    case handshakeResponse
    case cookieReply
    case transportData
    /// Not a WireGuard message (the control plane's, or garbage).
    case other

    /// Classifies by the first four bytes (type, then three zero bytes) and
    /// the exact sizes of the fixed-size messages.
    public static func classify(_ bytes: UnsafeRawBufferPointer) -> MessageKind {
        guard bytes.count >= 4, bytes[1] == 0, bytes[2] == 0, bytes[3] == 0 else { return .other }
        switch bytes[0] {
        case WireGuardProtocol.messageHandshakeInitiation where bytes.count == WireGuardProtocol.initiationSize: return .handshakeInitiation
        case WireGuardProtocol.messageHandshakeResponse where bytes.count == WireGuardProtocol.responseSize: return .handshakeResponse
        case WireGuardProtocol.messageHandshakeCookie where bytes.count == WireGuardProtocol.cookieReplySize: return .cookieReply
        case WireGuardProtocol.messageTransportData where bytes.count >= WireGuardProtocol.transportMinimumSize: return .transportData
        default: return .other
        }
    }
}

/// Little-endian field access on raw message bytes.
extension UnsafeRawBufferPointer {
    @inline(__always) func u32(at offset: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inline(__always) func u64(at offset: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    @inline(__always) func bytes32(at offset: Int) -> Bytes32 { Bytes32(pointer: baseAddress! + offset) }
    @inline(__always) func array(_ range: Range<Int>) -> [UInt8] { Array(self[range]) }
}

extension Array where Element == UInt8 {
    mutating func appendLE(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func append(_ b: Bytes32) { b.withUnsafeBytes { append(contentsOf: $0) } }
}

/// Byte offsets of the fields, for building and checking messages in place.
enum Layout {
    enum Initiation {
        static let sender = 4, ephemeral = 8, encryptedStatic = 40, encryptedTimestamp = 88, mac1 = 116, mac2 = 132
    }
    enum Response {
        static let sender = 4, receiver = 8, ephemeral = 12, encryptedNothing = 44, mac1 = 60, mac2 = 76
    }
    enum Cookie {
        static let receiver = 4, nonce = 8, encryptedCookie = 32
    }
    enum Transport {
        static let receiver = 4, counter = 8, payload = 16
    }
}
