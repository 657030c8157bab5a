// MeshNode: one node of the mesh, sans-IO. It joins SWIM membership over the
// authenticated control plane and turns what it learns into the peers the
// data plane should have:
//
//   datagram ──► EnvelopeOpener (trusted sender? signature? replay?)
//            ──► SWIMCodec ──► member records checked (signed by the member,
//                              trusted, not newer than the update) ──► SWIMMembership
//   SWIMMembership ──► pollTransmit ──► SWIMCodec ──► EnvelopeSealer ──► (bytes, endpoint)
//   members alive or suspect, trusted, with a verified record ──► `peers`
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

    public init(identity: Identity, controlEndpoint: Endpoint, wireGuardEndpoints: [Endpoint], kernelMode: Bool,
                trust: TrustSet, config: SWIMConfig = .lan, epoch: UInt64, seed: UInt64, now: Instant) throws {
        self.identity = identity
        self.trust = trust
        record = MemberRecord(identity: identity, incarnation: 0, controlEndpoint: controlEndpoint,
                              wireGuardEndpoints: wireGuardEndpoints, flags: kernelMode ? 1 : 0)
        sealer = EnvelopeSealer(identity: identity, epoch: epoch)
        membership = try SWIMMembership(id: identity.publicKey.raw, endpoint: controlEndpoint, metadata: record.encoded,
                                        config: config, random: SeededRandom(seed: seed), now: now)
    }

    public func join(seeds: [Endpoint], now: Instant) { membership.join(seeds: seeds, now: now) }
    public func leave(now: Instant) { membership.leave(now: now) }
    public func nextDeadline() -> Instant? { membership.nextDeadline() }
    public func handleTimers(now: Instant) { membership.handleTimers(now: now); drainEvents() }

    /// Replaces the trust set (authorized_keys changed): revoked members stop being peers at once.
    public func setTrust(_ t: TrustSet) {
        for (key, r) in records where !t.contains(r.identity) {
            records[key] = nil
            opener.forget(r.identity)
        }
        trust = t
        generation &+= 1
    }

    /// A datagram that arrived on the control port.
    public func receive(_ bytes: [UInt8], from source: Endpoint, now: Instant) {
        do {
            let envelope = try opener.open(bytes, isTrusted: { trust.contains($0) })
            guard envelope.kind == .swim else { throw WireError(.unknownType, "envelope kind \(envelope.kind)") }
            var packet = try SWIMCodec.decode(envelope.payload, sender: envelope.sender.raw)
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
        while let (packet, to) = membership.pollTransmit() {
            if let bytes = try? sealer.seal(.swim, payload: SWIMCodec.encode(packet)) { return (bytes, to) }
        }
        return nil
    }

    /// Checks the record in an alive update: signed by the member it names,
    /// trusted, and not claiming more than the update.
    private func acceptUpdate(_ u: GossipUpdate) -> Bool {
        switch u {
        case let .alive(member, incarnation, _, metadata):
            return verify(member: member, incarnation: incarnation, metadata: metadata)
        case let .suspect(member, _, _), let .dead(member, _, _), let .left(member, _):
            return member == identity.publicKey.raw || records[member] != nil || trusted(member)
        }
    }

    private func acceptEntry(_ e: MemberEntry) -> Bool {
        verify(member: e.member, incarnation: e.incarnation, metadata: e.metadata)
    }

    private func trusted(_ raw: Bytes32) -> Bool { (try? IdentityPublicKey(raw: raw)).map { trust.contains($0) } ?? false }

    private func verify(member: Bytes32, incarnation: UInt64, metadata: [UInt8]) -> Bool {
        if member == identity.publicKey.raw { return true }   // the core refutes claims about us itself
        guard let r = try? MemberRecord.decode(metadata) else { drops[.badSignature, default: 0] &+= 1; return false }
        guard r.identity.raw == member, trust.contains(r.identity) else { drops[.untrustedSender, default: 0] &+= 1; return false }
        guard r.incarnation <= incarnation else { drops[.staleRecord, default: 0] &+= 1; return false }
        if let have = records[member], have.incarnation > r.incarnation { return true }   // keep the newer record
        if records[member] != r { records[member] = r; generation &+= 1 }
        return true
    }

    private func drainEvents() {
        while let e = membership.pollEvent() {
            if case .reaped(let id) = e { records[id] = nil }
            generation &+= 1
        }
    }

    /// The peers the data plane should have: members alive or suspect, trusted, with a verified record.
    public var peers: [MeshPeerState] {
        membership.members.compactMap { m in
            guard m.state.isLive, let r = records[m.id], trust.contains(r.identity) else { return nil }
            return MeshPeerState(key: r.identity, endpoint: r.wireGuardEndpoints.first)
        }
    }

    /// Every member this node knows, with its state (for status output).
    public var members: [Member] { membership.members }
}
