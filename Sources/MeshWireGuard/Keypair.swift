// Keypairs: the transport keys of one session and their counters, and the
// three slots a peer keeps them in (kernel noise.c, "keypairs").
//
//   initiator, on a new session:  previous <- next ?? current; current <- new; next <- nil
//   responder, on a new session:  next <- new; previous <- nil   (current unchanged)
//   responder, on the first packet received under `next`:
//                                 previous <- current; current <- next; next <- nil
// A responder never sends with `next`: it waits for proof (a packet from the
// initiator under the new keys) that the initiator has the session too.
import MeshBase
import MeshCrypto

/// One session's keys. A class, so encryption can hold a reference while the
/// peer rotates its slots; the mutable counters are guarded by the device
/// that owns the peer (one owner at a time).
public final class Keypair: @unchecked Sendable {
    let sendingKey: SecretBytes
    let receivingKey: SecretBytes
    public let localIndex: UInt32
    public let remoteIndex: UInt32
    public let isInitiator: Bool
    public let birth: Instant
    /// The next counter (nonce) to send with.
    var sendCounter: UInt64 = 0
    /// Cleared when the counter or age limit is hit.
    var sendingValid = true
    var replay = ReplayWindow()

    init(_ keys: SessionKeys, birth: Instant) {
        sendingKey = keys.sending
        receivingKey = keys.receiving
        localIndex = keys.localIndex
        remoteIndex = keys.remoteIndex
        isInitiator = keys.isInitiator
        self.birth = birth
    }

    /// Usable for sending at `now`: not expired by age or counter.
    func canSend(now: Instant) -> Bool {
        sendingValid && now - birth < WireGuardProtocol.rejectAfterTime && sendCounter < WireGuardProtocol.rejectAfterMessages
    }

    /// Usable for receiving at `now`.
    func canReceive(now: Instant) -> Bool {
        now - birth < WireGuardProtocol.rejectAfterTime
    }
}

/// The current, previous and next keypairs of a peer.
struct Keypairs {
    var current: Keypair?
    var previous: Keypair?
    var next: Keypair?

    /// Installs a new session; returns the keypairs that fell out (their indices must be freed).
    mutating func add(_ new: Keypair) -> [Keypair] {
        var dropped: [Keypair] = []
        if new.isInitiator {
            if let n = next {
                if let p = previous { dropped.append(p) }
                if let c = current { dropped.append(c) }
                previous = n
                next = nil
            } else {
                if let p = previous { dropped.append(p) }
                previous = current
            }
            current = new
        } else {
            if let n = next { dropped.append(n) }
            if let p = previous { dropped.append(p) }
            next = new
            previous = nil
        }
        return dropped
    }

    /// Called when a packet authenticated under `k`. When `k` is `next`, it
    /// becomes current; returns the keypair that fell out, and whether `next` was promoted.
    mutating func received(with k: Keypair) -> (promoted: Bool, dropped: Keypair?) {
        guard let n = next, n === k else { return (false, nil) }
        let dropped = previous
        previous = current
        current = n
        next = nil
        return (true, dropped)
    }

    func find(localIndex: UInt32) -> Keypair? {
        if let c = current, c.localIndex == localIndex { return c }
        if let n = next, n.localIndex == localIndex { return n }
        if let p = previous, p.localIndex == localIndex { return p }
        return nil
    }

    /// Removes all keypairs and returns them.
    mutating func clear() -> [Keypair] {
        let all = [current, previous, next].compactMap { $0 }
        current = nil; previous = nil; next = nil
        return all
    }
}
