// Probe: one protocol period of SWIM's failure detector, as run by the
// prober, and the relay side of an indirect probe.
//
//   start ── ping(seq) ──► target                (suspect target: the suspect
//     │                                            update rides first: buddy system)
//     ├─ ack ─────────────────────────────► success, awareness - 1
//     │ probeTimeout * health
//     ├─ ping-req(seq) ──► k relays ── ping ──► target
//     │                       ◄── ack ── (relayed) ► success
//     │                       ◄── nack (relay heard nothing in time)
//     │ probeInterval * health
//     └─ no ack: awareness + missing nacks; suspect the target

import MeshBase

/// The probe this node is running.
struct Probe: Hashable, Sendable {
    let target: Bytes32
    let sequence: UInt32
    /// When the direct ping is given up and ping-reqs go out.
    let indirectAt: Instant
    /// End of the protocol period: no ack by then means suspect.
    let endsAt: Instant
    var indirectSent = false
    var expectedNacks = 0
    var nacks = 0
}

/// A ping this node sent on behalf of another member's ping-req.
struct IndirectProbe: Hashable, Sendable {
    let requester: Endpoint
    let requesterSequence: UInt32
    /// When to nack the requester if the target has not acked (nil: no nack wanted or already sent).
    var nackAt: Instant?
    /// When to forget the relay.
    let expiresAt: Instant
}
