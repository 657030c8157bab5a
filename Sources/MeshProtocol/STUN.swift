// STUN (RFC 8489) Binding, the part a NAT-traversing client needs: the
// request it sends and a strict reading of the answer (XOR-MAPPED-ADDRESS,
// else MAPPED-ADDRESS). Sans-IO: bytes in, values out; the caller owns the
// socket, the retransmissions and the clock. Checked against RFC 5769's
// sample responses (IPv4 and IPv6) in Tests/MeshProtocolTests/STUNTests.
//
// Strict: a datagram that is not exactly one well-formed STUN message for the
// transaction we asked (header, magic cookie, length, 4-byte aligned
// attributes, a correct FINGERPRINT when there is one, no unknown
// comprehension-required attribute) is refused with a reason, never half-read.
import MeshBase

public enum STUN {
    public static let magicCookie: UInt32 = 0x2112_A442
    public static let headerSize = 20
    static let bindingRequest: UInt16 = 0x0001
    static let bindingSuccess: UInt16 = 0x0101
    static let bindingError: UInt16 = 0x0111
    static let fingerprintXor: UInt32 = 0x5354_554E

    enum Attribute: UInt16 {
        case mappedAddress = 0x0001
        case username = 0x0006
        case messageIntegrity = 0x0008
        case errorCode = 0x0009
        case unknownAttributes = 0x000A
        case realm = 0x0014
        case nonce = 0x0015
        case messageIntegritySHA256 = 0x001C
        case passwordAlgorithm = 0x001D
        case userhash = 0x001E
        case xorMappedAddress = 0x0020
        case software = 0x8022
        case fingerprint = 0x8028
    }

    /// Why a datagram was not taken as the answer to our request.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notSTUN(String)
        case otherTransaction
        case malformed(String)
        case badFingerprint
        case unknownRequiredAttribute(UInt16)
        case errorResponse(code: Int, reason: String)
        case noAddress

        public var description: String {
            switch self {
            case .notSTUN(let why): "not a STUN message: \(why)"
            case .otherTransaction: "a STUN message for another transaction"
            case .malformed(let why): "malformed STUN message: \(why)"
            case .badFingerprint: "STUN FINGERPRINT does not match"
            case .unknownRequiredAttribute(let t): "unknown comprehension-required STUN attribute 0x\(String(t, radix: 16))"
            case .errorResponse(let code, let reason): "STUN error \(code) \(reason)"
            case .noAddress: "STUN success response without a mapped address"
            }
        }
    }

    /// A Binding request for `transactionID` (12 bytes), with a FINGERPRINT.
    public static func bindingRequest(transactionID: [UInt8]) -> [UInt8] {
        precondition(transactionID.count == 12, "a STUN transaction ID is 12 bytes")
        var m = header(type: bindingRequest, length: 8, transactionID: transactionID)
        appendFingerprint(&m)
        return m
    }

    /// True when `bytes` could be a STUN message at all (first two bits zero, magic cookie):
    /// how a socket shared with other protocols tells STUN apart (RFC 8489 §6).
    public static func looksLikeSTUN(_ bytes: [UInt8]) -> Bool {
        bytes.count >= headerSize && bytes[0] & 0xC0 == 0 && readU32(bytes, 4) == magicCookie
    }

    /// The mapped address in the answer to the Binding request `transactionID`.
    public static func parseBindingResponse(_ bytes: [UInt8], transactionID: [UInt8]) throws(Failure) -> Endpoint {
        guard bytes.count >= headerSize else { throw .notSTUN("\(bytes.count) bytes, shorter than the header") }
        guard bytes[0] & 0xC0 == 0 else { throw .notSTUN("the first two bits are not zero") }
        guard readU32(bytes, 4) == magicCookie else { throw .notSTUN("no magic cookie") }
        let type = readU16(bytes, 0)
        let length = Int(readU16(bytes, 2))
        guard length % 4 == 0 else { throw .malformed("length \(length) is not a multiple of 4") }
        guard headerSize + length == bytes.count else { throw .malformed("length \(length) but \(bytes.count - headerSize) bytes follow the header") }
        guard Array(bytes[8..<20]) == transactionID else { throw .otherTransaction }
        guard type == bindingSuccess || type == bindingError else {
            throw .malformed("message type 0x\(String(type, radix: 16)) is not a Binding response")
        }

        var mapped: Endpoint?, xorMapped: Endpoint?
        var error: (Int, String)?
        var offset = headerSize
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { throw .malformed("attribute header cut short") }
            let attrType = readU16(bytes, offset)
            let attrLength = Int(readU16(bytes, offset + 2))
            let valueStart = offset + 4
            let padded = (attrLength + 3) & ~3
            guard valueStart + padded <= bytes.count else { throw .malformed("attribute 0x\(String(attrType, radix: 16)) runs past the end") }
            let value = Array(bytes[valueStart..<valueStart + attrLength])
            switch Attribute(rawValue: attrType) {
            case .xorMappedAddress?:
                if xorMapped == nil { xorMapped = try address(value, xorWith: Array(bytes[4..<20])) }
            case .mappedAddress?:
                if mapped == nil { mapped = try address(value, xorWith: nil) }
            case .errorCode?:
                guard value.count >= 4 else { throw .malformed("ERROR-CODE shorter than 4 bytes") }
                let code = Int(value[2] & 0x07) * 100 + Int(value[3])
                error = (code, String(decoding: value[4...], as: UTF8.self))
            case .fingerprint?:
                guard attrLength == 4, valueStart + 4 == bytes.count else { throw .malformed("FINGERPRINT is not the last 4-byte attribute") }
                var prefix = Array(bytes[..<offset])
                prefix[2] = UInt8(truncatingIfNeeded: (offset + 8 - headerSize) >> 8)
                prefix[3] = UInt8(truncatingIfNeeded: offset + 8 - headerSize)
                guard CRC32.checksum(prefix) ^ fingerprintXor == readU32(bytes, valueStart) else { throw .badFingerprint }
            case .some:
                break   // known, not needed without authentication
            case nil:
                if attrType < 0x8000 { throw .unknownRequiredAttribute(attrType) }
            }
            offset = valueStart + padded
        }
        if type == bindingError {
            throw .errorResponse(code: error?.0 ?? 0, reason: error?.1 ?? "")
        }
        guard let endpoint = xorMapped ?? mapped else { throw .noAddress }
        return endpoint
    }

    // MARK: Pieces

    static func header(type: UInt16, length: Int, transactionID: [UInt8]) -> [UInt8] {
        var m: [UInt8] = []
        m.reserveCapacity(headerSize + length)
        appendU16(&m, type)
        appendU16(&m, UInt16(length))
        appendU32(&m, magicCookie)
        m += transactionID
        return m
    }

    /// Appends FINGERPRINT; the header's length must already count it.
    static func appendFingerprint(_ m: inout [UInt8]) {
        let crc = CRC32.checksum(m) ^ fingerprintXor
        appendU16(&m, Attribute.fingerprint.rawValue)
        appendU16(&m, 4)
        appendU32(&m, crc)
    }

    /// (XOR-)MAPPED-ADDRESS: reserved byte, family (1 IPv4, 2 IPv6), port, address.
    static func address(_ v: [UInt8], xorWith key: [UInt8]?) throws(Failure) -> Endpoint {
        guard v.count >= 4 else { throw .malformed("address attribute shorter than 4 bytes") }
        let family = v[1]
        var port = readU16(v, 2)
        if key != nil { port ^= UInt16(magicCookie >> 16) }
        switch (family, v.count) {
        case (1, 8):
            var a = Array(v[4..<8])
            if let key { for i in 0..<4 { a[i] ^= key[i] } }
            return Endpoint(.v4(IPv4Address(a[0], a[1], a[2], a[3])), port: port)
        case (2, 20):
            var a = Array(v[4..<20])
            if let key { for i in 0..<16 { a[i] ^= key[i] } }
            var high: UInt64 = 0, low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(a[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(a[i]) }
            return Endpoint(.v6(IPv6Address(high: high, low: low)), port: port)
        default:
            throw .malformed("address family \(family) with \(v.count) bytes")
        }
    }

    static func readU16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
    static func readU32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
    static func appendU16(_ m: inout [UInt8], _ v: UInt16) { m.append(UInt8(v >> 8)); m.append(UInt8(v & 0xFF)) }
    static func appendU32(_ m: inout [UInt8], _ v: UInt32) {
        m.append(UInt8(v >> 24)); m.append(UInt8(v >> 16 & 0xFF)); m.append(UInt8(v >> 8 & 0xFF)); m.append(UInt8(v & 0xFF))
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as STUN's FINGERPRINT uses.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
