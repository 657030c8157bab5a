// A member record: what a node says about itself, signed with its identity
// key, so no member relaying gossip can forge or alter another's record
// (docs/wire-protocol.md). Mesh addresses are not carried: every receiver
// derives them from the identity key.
//
//   record = version u8 (1) | identity key 32 | incarnation u64
//          | control endpoint | count u8 | WireGuard endpoints... | flags u8
//          | signature 64 (Ed25519 over "meshguard record v1" || all before it)
import MeshBase
import MeshCrypto
import MeshIdentity

public struct MemberRecord: Equatable, Sendable {
    public static let version: UInt8 = 1
    static let context = Array("meshguard record v1".utf8)
    /// At most this many WireGuard endpoints (candidates) per record.
    public static let maxEndpoints = 16

    public let identity: IdentityPublicKey
    public let incarnation: UInt64
    /// Where the node's control plane (SWIM, STUN, relay) listens.
    public let controlEndpoint: Endpoint
    /// Where its WireGuard listens: candidates (local, reflexive, mapped).
    public let wireGuardEndpoints: [Endpoint]
    /// Bit 0: the node runs the kernel data plane.
    public let flags: UInt8
    public let signature: [UInt8]

    /// Creates and signs a record for `identity`.
    public init(identity: Identity, incarnation: UInt64, controlEndpoint: Endpoint, wireGuardEndpoints: [Endpoint], flags: UInt8 = 0) {
        precondition(wireGuardEndpoints.count <= Self.maxEndpoints, "too many endpoints in a member record")
        self.identity = identity.publicKey
        self.incarnation = incarnation
        self.controlEndpoint = controlEndpoint
        self.wireGuardEndpoints = wireGuardEndpoints
        self.flags = flags
        var w = ByteWriter()
        MemberRecord.writeBody(&w, identity.publicKey, incarnation, controlEndpoint, wireGuardEndpoints, flags)
        signature = identity.signingKey.sign(MemberRecord.context + w.bytes)
    }

    private init(identity: IdentityPublicKey, incarnation: UInt64, controlEndpoint: Endpoint, wireGuardEndpoints: [Endpoint],
                 flags: UInt8, signature: [UInt8]) {
        self.identity = identity; self.incarnation = incarnation; self.controlEndpoint = controlEndpoint
        self.wireGuardEndpoints = wireGuardEndpoints; self.flags = flags; self.signature = signature
    }

    static func writeBody(_ w: inout ByteWriter, _ key: IdentityPublicKey, _ incarnation: UInt64, _ control: Endpoint,
                          _ endpoints: [Endpoint], _ flags: UInt8) {
        w.u8(version)
        w.key(key.raw)
        w.u64(incarnation)
        w.endpoint(control)
        w.u8(UInt8(endpoints.count))
        for e in endpoints { w.endpoint(e) }
        w.u8(flags)
    }

    public var encoded: [UInt8] {
        var w = ByteWriter()
        MemberRecord.writeBody(&w, identity, incarnation, controlEndpoint, wireGuardEndpoints, flags)
        w.raw(signature)
        return w.bytes
    }

    /// Decodes and verifies a record (signature by the identity it names).
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> MemberRecord {
        var r = ByteReader(bytes)
        let record = try read(&r)
        try r.expectEnd()
        return record
    }

    static func read(_ r: inout ByteReader) throws(WireError) -> MemberRecord {
        let start = r.offset
        let v = try r.u8()
        guard v == version else { throw WireError(.unsupportedVersion, "record version \(v)") }
        let raw = try r.key()
        guard let key = try? IdentityPublicKey(raw: raw) else { throw WireError(.badValue, "identity key is not a curve point") }
        let incarnation = try r.u64()
        let control = try r.endpoint()
        let n = Int(try r.u8())
        guard n <= maxEndpoints else { throw WireError(.tooLarge, "\(n) endpoints") }
        var endpoints: [Endpoint] = []
        for _ in 0..<n { endpoints.append(try r.endpoint()) }
        let flags = try r.u8()
        let body = Array(r.bytes[start..<r.offset])
        let signature = Array(try r.take(64))
        guard Ed25519.verify(signature: signature, message: context + body, publicKey: raw) else {
            throw WireError(.badSignature, "member record of \(key.abbreviated)")
        }
        return MemberRecord(identity: key, incarnation: incarnation, controlEndpoint: control, wireGuardEndpoints: endpoints,
                            flags: flags, signature: signature)
    }
}
