// NAT-PMP (RFC 6886), the codec: asking the home router for its external
// address and for a UDP port mapping, sans-IO. The client (retransmission,
// renewal, deletion) is MeshCore.PortMapper.
//
//   external address request   version 0 | opcode 0                                        2 bytes
//   external address response  0 | 128 | result u16 | epoch u32 | address (IPv4) u32        12 bytes
//   UDP mapping request        0 | 1 | reserved u16 | internal port u16 | suggested port u16 | lifetime u32   12 bytes
//   UDP mapping response       0 | 129 | result u16 | epoch u32 | internal u16 | external u16 | lifetime u32 16 bytes
//
// Big-endian. A lifetime of 0 (and suggested port 0) deletes a mapping.
import MeshBase

public enum NATPMP {
    public static let port: UInt16 = 5351

    public enum Response: Equatable, Sendable {
        case externalAddress(epoch: UInt32, address: IPv4Address)
        case mapping(epoch: UInt32, internalPort: UInt16, externalPort: UInt16, lifetime: UInt32)
    }

    public enum Failure: Error, Equatable, Sendable {
        /// Not a NAT-PMP response of the size its opcode needs.
        case malformed
        /// The router refused: 1 unsupported version, 2 not authorized, 3 network failure, 4 out of resources, 5 unsupported opcode.
        case refused(code: UInt16)

        public var reason: String {
            switch self {
            case .malformed: "malformed"
            case .refused(let c):
                switch c {
                case 1: "unsupported version"
                case 2: "not authorized"
                case 3: "network failure"
                case 4: "out of resources"
                case 5: "unsupported opcode"
                default: "result \(c)"
                }
            }
        }
    }

    public static var externalAddressRequest: [UInt8] { [0, 0] }

    public static func mappingRequest(internalPort: UInt16, suggestedPort: UInt16, lifetime: UInt32) -> [UInt8] {
        var w = ByteWriter()
        w.u8(0); w.u8(1); w.u16(0)
        w.u16(internalPort); w.u16(suggestedPort); w.u32(lifetime)
        return w.bytes
    }

    /// Reads a response strictly: version 0, a response opcode, its exact size; a non-zero result is `.refused`.
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> Response {
        var r = ByteReader(bytes)
        do {
            guard try r.u8() == 0 else { throw Failure.malformed }
            let op = try r.u8()
            let result = try r.u16()
            switch op {
            case 128:
                guard bytes.count == 12 else { throw Failure.malformed }
                let epoch = try r.u32()
                let a = try r.u32()
                if result != 0 { throw Failure.refused(code: result) }
                return .externalAddress(epoch: epoch, address: IPv4Address(a))
            case 129:
                guard bytes.count == 16 else { throw Failure.malformed }
                let epoch = try r.u32()
                let inside = try r.u16(), outside = try r.u16()
                let lifetime = try r.u32()
                if result != 0 { throw Failure.refused(code: result) }
                return .mapping(epoch: epoch, internalPort: inside, externalPort: outside, lifetime: lifetime)
            default:
                throw Failure.malformed
            }
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure.malformed
        }
    }
}
