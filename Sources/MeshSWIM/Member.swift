// Members as SWIM sees them, and the events a membership reports.
//
//            refute (higher incarnation)
//          ┌──────────────────────────────┐
//          ▼                              │
//   ──► alive ──probe fails──► suspect ───┤
//        │  ▲                     │       │
//        │  └─ alive, higher inc ─┘       │ suspicion timeout,
//        │                                ▼ or dead gossip
//        │                              dead ──reap time──► reaped
//        │                                ▲      (a higher alive incarnation: alive again)
//        └──leave (owner only)──► left ───┴────reap time──► reaped

import MeshBase

/// The state of a member, with when it entered it.
public enum MemberState: Hashable, Sendable {
    case alive
    case suspect(since: Instant)
    case dead(since: Instant)
    case left(since: Instant)

    public var status: MemberStatus {
        switch self {
        case .alive: return .alive
        case .suspect: return .suspect
        case .dead: return .dead
        case .left: return .left
        }
    }

    /// Alive or suspect: still probed, gossiped to, and counted in N.
    public var isLive: Bool {
        switch self {
        case .alive, .suspect: return true
        case .dead, .left: return false
        }
    }
}

/// One member of the mesh, as this node knows it.
public struct Member: Hashable, Sendable, CustomStringConvertible {
    /// The member's identity key.
    public var id: Bytes32
    /// Where its membership protocol listens.
    public var endpoint: Endpoint
    /// Its owner's opaque record; only the owner changes it, and bumps `incarnation` when it does.
    public var metadata: [UInt8]
    /// The owner's counter: a higher incarnation overrides anything said about a lower one.
    public var incarnation: UInt64
    public var state: MemberState

    public init(id: Bytes32, endpoint: Endpoint, metadata: [UInt8], incarnation: UInt64, state: MemberState) {
        self.id = id; self.endpoint = endpoint; self.metadata = metadata; self.incarnation = incarnation; self.state = state
    }

    public var description: String { "\(id.abbreviated)@\(endpoint) #\(incarnation) \(state.status)" }
}

/// What changed in this node's view of the mesh; pulled with `pollEvent()`.
public enum MembershipEvent: Hashable, Sendable {
    /// A member this node did not know (or had seen leave) is alive.
    case joined(Member)
    /// An alive member's endpoint or metadata changed (its owner bumped the incarnation).
    case updated(Member)
    /// The member is suspected of having failed.
    case suspect(Member)
    /// A suspected or dead member is alive again (it refuted, or came back with a higher incarnation).
    case aliveAgain(Member)
    /// The member failed: its suspicion ran out, or another node said so.
    case dead(Member)
    /// The member left gracefully.
    case left(Member)
    /// The dead or left member was forgotten.
    case reaped(Bytes32)

    /// The member the event is about.
    public var memberID: Bytes32 {
        switch self {
        case .joined(let m), .updated(let m), .suspect(let m), .aliveAgain(let m), .dead(let m), .left(let m): return m.id
        case .reaped(let id): return id
        }
    }
}

/// Why a request to the membership was refused.
public enum SWIMError: Error, Hashable, Sendable, CustomStringConvertible {
    case metadataTooLarge(size: Int, limit: Int)
    case notActive

    public var description: String {
        switch self {
        case .metadataTooLarge(let s, let l): return "member metadata is \(s) bytes, more than the limit of \(l)"
        case .notActive: return "the membership has left"
        }
    }
}
