// SWIM messages (Das, Gupta, Motivala 2002) with Lifeguard's nack (Dadgar,
// Phillips, Currey 2018), as a Swift enum. This file fixes what a message
// says and how many bytes it takes; the authenticated codec that puts it on
// the wire comes later and is checked against `encodedSize`.
//
// Assumed binary layout (big-endian integers; sizes in bytes):
//
//   packet    type:1 sender:32 body updateCount:1 update*
//   body      ping     seq:4 target:32
//             ack      seq:4
//             nack     seq:4
//             pingReq  seq:4 target:32 targetEndpoint wantNack:1
//             gossip   (empty)
//             pushPull exchange:4 flags:1 part:2 parts:2 count:2 entry*
//   update    kind:1 member:32 incarnation:8, then
//             alive    endpoint metadataLength:2 metadata
//             suspect  from:32
//             dead     from:32
//             left     (nothing)
//   entry     member:32 status:1 incarnation:8 endpoint metadataLength:2 metadata
//   endpoint  family:1 address:4|16 port:2          (7 for IPv4, 19 for IPv6)
//
// The authentication envelope (signature or MAC, replay counter) is outside
// this layout: it is per packet and constant, so the codec adds it to the
// budget rather than to each message.

import MeshBase

/// What a member's state is on the wire (push-pull entries).
public enum MemberStatus: UInt8, Hashable, Sendable {
    case alive = 0, suspect = 1, dead = 2, left = 3
}

/// One piece of gossip about one member, piggybacked on any message.
public enum GossipUpdate: Hashable, Sendable {
    /// The member is alive at `incarnation`, reachable at `endpoint`, with its owner's `metadata`.
    case alive(member: Bytes32, incarnation: UInt64, endpoint: Endpoint, metadata: [UInt8])
    /// `from` suspects the member at `incarnation`.
    case suspect(member: Bytes32, incarnation: UInt64, from: Bytes32)
    /// `from` declared the member dead at `incarnation`.
    case dead(member: Bytes32, incarnation: UInt64, from: Bytes32)
    /// The member left gracefully at `incarnation` (only the member itself says this).
    case left(member: Bytes32, incarnation: UInt64)

    public var member: Bytes32 {
        switch self {
        case .alive(let m, _, _, _), .suspect(let m, _, _), .dead(let m, _, _), .left(let m, _): return m
        }
    }

    public var incarnation: UInt64 {
        switch self {
        case .alive(_, let i, _, _), .suspect(_, let i, _), .dead(_, let i, _), .left(_, let i): return i
        }
    }

    /// Bytes in the layout above.
    public var encodedSize: Int {
        switch self {
        case .alive(_, _, let e, let meta): return 41 + e.encodedSize + 2 + meta.count
        case .suspect, .dead: return 41 + 32
        case .left: return 41
        }
    }
}

/// One member in a push-pull state exchange.
public struct MemberEntry: Hashable, Sendable {
    public var member: Bytes32
    public var incarnation: UInt64
    public var status: MemberStatus
    public var endpoint: Endpoint
    public var metadata: [UInt8]

    public init(member: Bytes32, incarnation: UInt64, status: MemberStatus, endpoint: Endpoint, metadata: [UInt8]) {
        self.member = member; self.incarnation = incarnation; self.status = status
        self.endpoint = endpoint; self.metadata = metadata
    }

    public var encodedSize: Int { 32 + 1 + 8 + endpoint.encodedSize + 2 + metadata.count }
}

/// One part of a push-pull state exchange. A full state larger than a message
/// is cut into `parts` messages; the receiver merges each part as it comes.
public struct PushPull: Hashable, Sendable {
    /// Chosen by the requester; the reply repeats it, and a node answers each exchange once.
    public var exchange: UInt32
    /// False for the request (the receiver answers with its own state), true for the answer.
    public var isReply: Bool
    /// True when the requester is joining (for statistics and logs; merging is the same).
    public var isJoin: Bool
    public var part: UInt16
    public var parts: UInt16
    public var entries: [MemberEntry]

    public init(exchange: UInt32, isReply: Bool, isJoin: Bool, part: UInt16, parts: UInt16, entries: [MemberEntry]) {
        self.exchange = exchange; self.isReply = isReply; self.isJoin = isJoin
        self.part = part; self.parts = parts; self.entries = entries
    }

    /// Bytes of the push-pull body without entries.
    public static let headerSize = 4 + 1 + 2 + 2 + 2
}

/// The SWIM protocol messages.
public enum SWIMMessage: Hashable, Sendable {
    /// Direct probe of `target`; answered by an ack with the same sequence number.
    case ping(sequence: UInt32, target: Bytes32)
    /// Answer to a ping, or relayed back by the member that probed indirectly.
    case ack(sequence: UInt32)
    /// Lifeguard: the relay got no ack from the target in time (tells the requester the relay is fine).
    case nack(sequence: UInt32)
    /// Ask the receiver to probe `target` and relay the ack (and a nack when `wantNack`).
    case pingReq(sequence: UInt32, target: Bytes32, targetEndpoint: Endpoint, wantNack: Bool)
    /// Nothing but piggybacked updates.
    case gossip
    /// Anti-entropy: (part of) a full state exchange.
    case pushPull(PushPull)

    /// Bytes of the body in the layout above.
    public var encodedSize: Int {
        switch self {
        case .ping: return 4 + 32
        case .ack, .nack: return 4
        case .pingReq(_, _, let e, _): return 4 + 32 + e.encodedSize + 1
        case .gossip: return 0
        case .pushPull(let p): return PushPull.headerSize + p.entries.reduce(0) { $0 + $1.encodedSize }
        }
    }

    /// A short name for statistics.
    public var kind: String {
        switch self {
        case .ping: return "ping"
        case .ack: return "ack"
        case .nack: return "nack"
        case .pingReq: return "ping-req"
        case .gossip: return "gossip"
        case .pushPull: return "push-pull"
        }
    }
}

/// A message as sent: who sends it, what it says, and the gossip riding on it.
public struct SWIMPacket: Hashable, Sendable {
    public var sender: Bytes32
    public var message: SWIMMessage
    public var updates: [GossipUpdate]

    public init(sender: Bytes32, message: SWIMMessage, updates: [GossipUpdate] = []) {
        self.sender = sender; self.message = message; self.updates = updates
    }

    /// type + sender + body + update count + updates.
    public static let headerSize = 1 + 32 + 1

    /// Bytes in the layout above; never more than `SWIMConfig.maxMessageSize` for packets a membership sends.
    public var encodedSize: Int {
        Self.headerSize + message.encodedSize + updates.reduce(0) { $0 + $1.encodedSize }
    }
}

extension Endpoint {
    /// family + address + port.
    public var encodedSize: Int { address.isIPv4 ? 7 : 19 }
}
