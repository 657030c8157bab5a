// MeshNode: one node of the mesh, sans-IO. It joins SWIM membership over the
// authenticated control plane and turns what it learns into the peers the
// data plane should have:
//
//   datagram ──► EnvelopeOpener (trusted sender? signature? replay?)
//            ──► SWIMCodec ──► member records checked (signed by the member,
//                              trusted, not newer than the update) ──► SWIMMembership
//   SWIMMembership ──► pollTransmit ──► SWIMCodec ──► EnvelopeSealer ──► (bytes, endpoint)
//   members alive or suspect, trusted, with a verified record ──► `peers`
//   (routed once heard from, or after `hearingGrace`)
//
// Joining without losing the first handshake: a member learns of a new node
// by gossip a little after the new node learns of it, and WireGuard drops a
// handshake from a key it does not know (then retries only after 5 s). So
// every known member is a peer at once, but unrouted (no allowed IPs: its
// handshakes are answered, nothing of ours starts one toward it), and this
// node says hello to it — a ping carrying our own alive update. A member
// becomes routed when we hear from it: it only writes to us after it has
// configured us (the daemon applies membership before sending), so our
// handshake then finds us known. A silent member is routed after `hearingGrace`.
//
// Every input carries `now`. A message or update from outside the trust set
// changes nothing; a revoked member leaves `peers` at once. One owner drives it.
import MeshBase
import MeshCrypto
import MeshIdentity
import MeshProtocol
import MeshSWIM

public final class MeshNode {
    public let identity: Identity
    public private(set) var trust: TrustSet
    /// Lab mode (`up --open`): every key is trusted, authorized_keys/ is not
    /// enforced. Messages are still signed, records still verified.
    public let isOpen: Bool
    private var membership: SWIMMembership
    private var sealer: EnvelopeSealer
    private var opener = EnvelopeOpener()
    /// Verified records of members, by identity key.
    private var records: [Bytes32: MemberRecord] = [:]
    private var record: MemberRecord
    /// Control-plane datagrams dropped, by reason.
    public private(set) var drops: [WireError.Reason: UInt64] = [:]
    /// Bumped whenever `peers` may have changed.
    public private(set) var generation: UInt64 = 0
    /// Members the data plane routes to: heard from (an authenticated message
    /// from them), or known for `hearingGrace` without a word.
    private var admitted: Set<Bytes32> = []
    /// Members known but not yet heard from, with the end of their grace.
    private var waiting: [Bytes32: Instant] = [:]
    private var hellos: [(bytes: [UInt8], to: Endpoint)] = []
    private var hellosHead = 0
    private var helloSequence: UInt32 = 0x8000_0000
    private var lastNow: Instant
    /// How long a member that has not been heard from waits before it is given to the data plane anyway.
    public static let hearingGrace: Duration = .seconds(2)

    public init(identity: Identity, controlEndpoint: Endpoint, wireGuardEndpoints: [Endpoint], kernelMode: Bool,
                trust: TrustSet, open: Bool = false, config: SWIMConfig = .lan, epoch: UInt64, seed: UInt64, now: Instant) throws {
        self.identity = identity
        self.trust = trust
        self.isOpen = open
        record = MemberRecord(identity: identity, incarnation: 0, controlEndpoint: controlEndpoint,
                              wireGuardEndpoints: wireGuardEndpoints, flags: kernelMode ? 1 : 0)
        sealer = EnvelopeSealer(identity: identity, epoch: epoch)
        membership = try SWIMMembership(id: identity.publicKey.raw, endpoint: controlEndpoint, metadata: record.encoded,
                                        config: config, random: SeededRandom(seed: seed), now: now)
        // Every incarnation gets a record signed for it (refutations re-sign).
        let flags: UInt8 = kernelMode ? 1 : 0
        membership.stamp = { [identity] incarnation in
            MemberRecord(identity: identity, incarnation: incarnation, controlEndpoint: controlEndpoint,
                         wireGuardEndpoints: wireGuardEndpoints, flags: flags).encoded
        }
        lastNow = now
    }

    public func join(seeds: [Endpoint], now: Instant) { membership.join(seeds: seeds, now: now) }
    public func leave(now: Instant) { membership.leave(now: now) }
    public func nextDeadline() -> Instant? {
        let grace = waiting.values.min()
        switch (membership.nextDeadline(), grace) {
        case let (a?, b?): return min(a, b)
        case let (a, b): return a ?? b
        }
    }

    public func handleTimers(now: Instant) {
        lastNow = now
        membership.handleTimers(now: now)
        drainEvents()
        // A member whose grace ran out joins `peers`.
        for (id, end) in waiting where end <= now {
            waiting[id] = nil
            admitted.insert(id)
            generation &+= 1
        }
    }

    /// Replaces the trust set (authorized_keys changed): revoked members stop being peers at once.
    public func setTrust(_ t: TrustSet) {
        for (key, r) in records where !isOpen && !t.contains(r.identity) {
            records[key] = nil
            opener.forget(r.identity)
        }
        trust = t
        generation &+= 1
    }

    /// A datagram that arrived on the control port.
    public func receive(_ bytes: [UInt8], from source: Endpoint, now: Instant) {
        do {
            lastNow = now
            let envelope = try opener.open(bytes, isTrusted: { isTrusted($0) })
            guard envelope.kind == .swim else { throw WireError(.unknownType, "envelope kind \(envelope.kind)") }
            var packet = try SWIMCodec.decode(envelope.payload, sender: envelope.sender.raw)
            // Anything but a push-pull request is sent to a member the sender
            // knows (and has configured); a join request is sent to a seed's
            // address, by a node that may not know our key yet.
            if case .pushPull(let pp) = packet.message, !pp.isReply {} else {
                waiting[envelope.sender.raw] = nil
                if admitted.insert(envelope.sender.raw).inserted { generation &+= 1 }
            }
            packet.updates = packet.updates.filter { acceptUpdate($0) }
            if case .pushPull(var pp) = packet.message {
                pp.entries = pp.entries.filter { acceptEntry($0) }
                packet.message = .pushPull(pp)
            }
            membership.receive(packet, from: source, now: now)
            drainEvents()
        } catch let e as WireError {
            drops[e.reason, default: 0] &+= 1
        } catch {
            drops[.badValue, default: 0] &+= 1
        }
    }

    /// The next datagram to send.
    public func pollTransmit() -> (bytes: [UInt8], to: Endpoint)? {
        if hellosHead < hellos.count {
            defer {
                hellosHead += 1
                if hellosHead == hellos.count { hellos.removeAll(keepingCapacity: true); hellosHead = 0 }
            }
            return hellos[hellosHead]
        }
        while let (packet, to) = membership.pollTransmit() {
            if let bytes = try? sealer.seal(.swim, payload: SWIMCodec.encode(packet)) { return (bytes, to) }
        }
        return nil
    }

    /// Checks the record in an alive update: signed by the member it names,
    /// trusted, and not claiming more than the update.
    private func acceptUpdate(_ u: GossipUpdate) -> Bool {
        switch u {
        case let .alive(member, incarnation, endpoint, metadata):
            return verify(member: member, incarnation: incarnation, endpoint: endpoint, metadata: metadata, exact: true)
        case let .suspect(member, _, _), let .dead(member, _, _), let .left(member, _):
            return member == identity.publicKey.raw || records[member] != nil || trusted(member)
        }
    }

    private func acceptEntry(_ e: MemberEntry) -> Bool {
        // A suspect or dead entry may name a later incarnation than the record
        // it carries (the accusation came after); an alive one may not.
        verify(member: e.member, incarnation: e.incarnation, endpoint: e.endpoint, metadata: e.metadata, exact: e.status == .alive)
    }

    private func trusted(_ raw: Bytes32) -> Bool { (try? IdentityPublicKey(raw: raw)).map { isTrusted($0) } ?? false }

    private func isTrusted(_ key: IdentityPublicKey) -> Bool { isOpen || trust.contains(key) }

    /// Checks a member's signed record against what the update claims: the
    /// same member, trusted, the same control endpoint, and its incarnation
    /// (`exact`), or at most it. An alive update is authority to override
    /// suspicion, so only the owner's signature for that incarnation counts.
    private func verify(member: Bytes32, incarnation: UInt64, endpoint: Endpoint, metadata: [UInt8], exact: Bool) -> Bool {
        if member == identity.publicKey.raw { return true }   // the core refutes claims about us itself
        guard let r = try? MemberRecord.decode(metadata) else { drops[.badSignature, default: 0] &+= 1; return false }
        guard r.identity.raw == member, isTrusted(r.identity) else { drops[.untrustedSender, default: 0] &+= 1; return false }
        guard r.controlEndpoint == endpoint else { drops[.forgedRecord, default: 0] &+= 1; return false }
        guard exact ? r.incarnation == incarnation : r.incarnation <= incarnation else { drops[.staleRecord, default: 0] &+= 1; return false }
        if let have = records[member], have.incarnation > r.incarnation { return true }   // keep the newer record
        if records[member] != r { records[member] = r; generation &+= 1 }
        return true
    }

    /// Membership events not yet taken by `takeEvents()` (for the daemon's log; the oldest are dropped past 1,000).
    private var pendingEvents: [MembershipEvent] = []

    /// The membership events since the last call.
    public func takeEvents() -> [MembershipEvent] {
        defer { pendingEvents.removeAll(keepingCapacity: true) }
        return pendingEvents
    }

    private func drainEvents() {
        while let e = membership.pollEvent() {
            if pendingEvents.count >= 1000 { pendingEvents.removeFirst(pendingEvents.count - 999) }
            pendingEvents.append(e)
            switch e {
            case .reaped(let id):
                records[id] = nil; waiting[id] = nil; admitted.remove(id)
            case .joined(let m):
                // Heard from already (it wrote to us, so it knows us): nothing to wait for.
                if !admitted.contains(m.id) {
                    if waiting[m.id] == nil { waiting[m.id] = lastNow + MeshNode.hearingGrace }
                    sayHello(to: m)
                }
            case .dead(let m), .left(let m):
                // It must be heard from again when it comes back.
                admitted.remove(m.id); waiting[m.id] = nil
            default:
                break
            }
            generation &+= 1
        }
    }

    /// A ping carrying our alive update, so `m` learns of us now; its ack tells us it has.
    private func sayHello(to m: Member) {
        let me = membership.localMember
        helloSequence = helloSequence == .max ? 0x8000_0000 : helloSequence + 1
        let packet = SWIMPacket(sender: identity.publicKey.raw, message: .ping(sequence: helloSequence, target: m.id),
                                updates: [.alive(member: me.id, incarnation: me.incarnation, endpoint: me.endpoint, metadata: me.metadata)])
        if let bytes = try? sealer.seal(.swim, payload: SWIMCodec.encode(packet)) { hellos.append((bytes, m.endpoint)) }
    }

    /// The peers the data plane should have: members alive or suspect, trusted,
    /// with a verified record; routed once heard from (or after the grace).
    public var peers: [MeshPeerState] {
        membership.members.compactMap { m in
            guard m.state.isLive, let r = records[m.id], isTrusted(r.identity) else { return nil }
            return MeshPeerState(key: r.identity, endpoint: r.wireGuardEndpoints.first, routed: admitted.contains(m.id))
        }
    }

    /// Every member this node knows, with its state (for status output).
    public var members: [Member] { membership.members }
}
