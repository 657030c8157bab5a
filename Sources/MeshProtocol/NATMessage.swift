// NAT traversal messages: the payload of envelopes of kind .natTraversal
// (docs/wire-protocol.md, docs/nat.md). Like every control-plane message they
// travel in a signed, replay-protected envelope, so their sender is known.
//
//   message = type u8 | fields
//   1 punch request   target key 32            "introduce me to target"
//   2 introduction    peer key 32 | endpoint    "peer is at endpoint (as I see it): probe it now"
//   3 relay request   peer key 32               "relay between me and peer"
//   4 relay grant     peer key 32 | endpoint    "send WireGuard for peer to endpoint"
//   5 relay refusal   peer key 32 | reason u8   1 not a relay, 2 peer unknown, 3 full, 4 no route to peer
//   6 observed        endpoint                  "your WireGuard datagrams reach me from endpoint"
import MeshBase

public enum NATMessage: Equatable, Sendable {
    case punchRequest(target: Bytes32)
    case introduction(peer: Bytes32, endpoint: Endpoint)
    case relayRequest(peer: Bytes32)
    case relayGrant(peer: Bytes32, endpoint: Endpoint)
    case relayRefusal(peer: Bytes32, reason: RefusalReason)
    /// From a public member to a kernel-mode member behind a NAT: where its
    /// kernel's WireGuard socket is seen (STUN cannot ask from that socket).
    case observedWireGuard(endpoint: Endpoint)

    public enum RefusalReason: UInt8, Sendable, CaseIterable, Error {
        case notARelay = 1, unknownPeer, full, noRouteToPeer
    }

    public var encoded: [UInt8] {
        var w = ByteWriter()
        switch self {
        case .punchRequest(let t): w.u8(1); w.key(t)
        case let .introduction(p, e): w.u8(2); w.key(p); w.endpoint(e)
        case .relayRequest(let p): w.u8(3); w.key(p)
        case let .relayGrant(p, e): w.u8(4); w.key(p); w.endpoint(e)
        case let .relayRefusal(p, r): w.u8(5); w.key(p); w.u8(r.rawValue)
        case .observedWireGuard(let e): w.u8(6); w.endpoint(e)
        }
        return w.bytes
    }

    /// Decodes a payload strictly: known type, every field, nothing trailing.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> NATMessage {
        var r = ByteReader(bytes)
        let m: NATMessage
        switch try r.u8() {
        case 1: m = .punchRequest(target: try r.key())
        case 2: m = .introduction(peer: try r.key(), endpoint: try r.endpoint())
        case 3: m = .relayRequest(peer: try r.key())
        case 4: m = .relayGrant(peer: try r.key(), endpoint: try r.endpoint())
        case 5:
            let p = try r.key()
            let raw = try r.u8()
            guard let reason = RefusalReason(rawValue: raw) else { throw WireError(.badValue, "relay refusal reason \(raw)") }
            m = .relayRefusal(peer: p, reason: reason)
        case 6: m = .observedWireGuard(endpoint: try r.endpoint())
        case let t: throw WireError(.unknownType, "NAT message type \(t)")
        }
        try r.expectEnd()
        return m
    }
}
