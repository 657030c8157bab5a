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
// NAT traversal (docs/nat.md): every authenticated message tells us where
// its sender is reachable from here (its address as we see it), and SWIM
// sends there. The node's own record carries its STUN-reflexive endpoint and
// NAT kind (`setNAT`). A member not heard from directly is introduced through
// a rendezvous member both can reach (punch request → introductions → both
// send hellos at once); if it still is not heard from, the lower key of the
// pair asks a relay member for a port pair and both point WireGuard at the
// relay. Direct paths are retried periodically and win when they work.
//
// Every input carries `now`. A message or update from outside the trust set
// changes nothing; a revoked member leaves `peers` at once. One owner drives it.
import MeshBase
import MeshCrypto
import MeshIdentity
import MeshProtocol
import MeshSWIM

/// Whether this node offers to relay for others: auto (when it has a public address, from STUN), on or off.
public enum RelayPolicy: String, Sendable, CaseIterable {
    case auto, on, off
}

/// The relay's port allocator (RelayTable behind sockets in the daemon; an in-memory twin in tests).
public protocol RelayServing: AnyObject {
    /// Ports for the pair (requester's, peer's): see RelayTable.request.
    func allocate(_ requester: Bytes32, at requesterAddress: IPAddress, peer: Bytes32, at peerAddress: IPAddress,
                  now: Instant) -> Result<(UInt16, UInt16), NATMessage.RefusalReason>
}

/// What this node signs about itself; mutable, read when a record is stamped.
final class RecordTemplate: @unchecked Sendable {
    let identity: Identity
    var control: Endpoint
    var wireGuard: [Endpoint]
    var flags: UInt8
    init(identity: Identity, control: Endpoint, wireGuard: [Endpoint], flags: UInt8) {
        self.identity = identity; self.control = control; self.wireGuard = wireGuard; self.flags = flags
    }
    func record(_ incarnation: UInt64) -> MemberRecord {
        MemberRecord(identity: identity, incarnation: incarnation, controlEndpoint: control, wireGuardEndpoints: wireGuard, flags: flags)
    }
}

/// Record flags: bit 0 kernel data plane, bits 1-2 NAT mapping, bit 3 offers
/// to relay, bit 4 port-mapped (its router forwards its advertised endpoints
/// from anyone: NAT-PMP).
public enum RecordFlags {
    public static let kernel: UInt8 = 1
    public static let relay: UInt8 = 8
    public static let portMapped: UInt8 = 16
    public static func mapping(_ flags: UInt8) -> NATMapping { NATMapping(recordBits: flags >> 1) }
}

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
    private let template: RecordTemplate
    private let localControl: Endpoint
    private let localWireGuard: [Endpoint]
    private let kernelMode: Bool
    /// This node's public endpoint (STUN, on the control socket) and NAT kind.
    public private(set) var reflexive: Endpoint?
    public private(set) var nat: NATMapping = .unknown
    /// Where the router forwards our control and WireGuard ports (NAT-PMP), from anyone.
    public private(set) var portMapping: (control: Endpoint, wireGuard: Endpoint?)?
    /// Kernel mode: where public members see our kernel's WireGuard socket.
    public private(set) var observedWireGuard: Endpoint?
    /// Observations sent to kernel-mode members, by member (what and when).
    var observationsSent: [Bytes32: (Endpoint, Instant)] = [:]
    public let relayPolicy: RelayPolicy
    /// Set by the daemon when this node may relay.
    public weak var relayServer: RelayServing?
    /// How each member is reached: heard directly, introduced, relayed.
    private var paths: [Bytes32: Path] = [:]
    private var nextNATTick: Instant
    private var natOutbox: [(bytes: [UInt8], to: Endpoint)] = []
    var lastSynchronize: Instant = .zero
    var pathEvents: [PathEvent] = []
    var nextCatchUp: Instant = .zero
    /// NAT traversal counters (for status and metrics).
    public private(set) var natCounters = NATCounters()
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
                trust: TrustSet, open: Bool = false, relay: RelayPolicy = .auto, config: SWIMConfig = .lan,
                epoch: UInt64, seed: UInt64, now: Instant) throws {
        self.identity = identity
        self.trust = trust
        self.isOpen = open
        self.localControl = controlEndpoint
        self.localWireGuard = wireGuardEndpoints
        self.kernelMode = kernelMode
        self.relayPolicy = relay
        template = RecordTemplate(identity: identity, control: controlEndpoint, wireGuard: wireGuardEndpoints, flags: 0)
        sealer = EnvelopeSealer(identity: identity, epoch: epoch)
        nextNATTick = now + MeshNode.natTick
        lastNow = now
        membership = try SWIMMembership(id: identity.publicKey.raw, endpoint: controlEndpoint, metadata: [],
                                        config: config, random: SeededRandom(seed: seed), now: now)
        refreshTemplate()
        // Every incarnation gets a record signed for it (refutations re-sign).
        membership.stamp = { [template] incarnation in template.record(incarnation).encoded }
    }

    /// Whether this node offers to relay now.
    public var offersRelay: Bool {
        switch relayPolicy {
        case .on: true
        case .off: false
        case .auto: nat == .none
        }
    }

    /// True when STUN says this node is behind a NAT.
    public var isBehindNAT: Bool { nat == .endpointIndependent || nat == .endpointDependent }

    /// Recomputes what this node signs: behind a NAT its public (reflexive)
    /// endpoint comes first, as control endpoint and first WireGuard candidate.
    private func refreshTemplate() {
        var flags: UInt8 = (kernelMode ? RecordFlags.kernel : 0) | nat.recordBits << 1
        if offersRelay { flags |= RecordFlags.relay }
        var control = localControl
        var wireGuard = localWireGuard
        if let pm = portMapping {
            // The router forwards these from anyone: better than any punched mapping.
            flags |= RecordFlags.portMapped
            control = pm.control
            let mapped = kernelMode ? (pm.wireGuard ?? Endpoint(pm.control.address, port: localWireGuard.first?.port ?? pm.control.port)) : pm.control
            wireGuard = [mapped] + localWireGuard.filter { $0 != mapped }
        } else if let r = reflexive, isBehindNAT, r != localControl {
            control = r
            // Userspace: WireGuard shares the control port, so the mapping is
            // the same. Kernel: its own socket; port-preserving NATs keep the port.
            // A public member's observation of the kernel's socket beats the guess.
            let guess = Endpoint(r.address, port: localWireGuard.first?.port ?? r.port)
            let mapped = kernelMode ? (observedWireGuard.flatMap { $0.address == r.address ? $0 : nil } ?? guess) : r
            wireGuard = [mapped] + localWireGuard.filter { $0 != mapped }
        }
        template.control = control
        template.wireGuard = Array(wireGuard.prefix(MemberRecord.maxEndpoints))
        template.flags = flags
    }

    /// What STUN found: this node's public endpoint and NAT kind. A change is
    /// announced at once (a new incarnation with a re-signed record).
    public func setNAT(reflexive: Endpoint?, mapping: NATMapping, now: Instant) {
        guard reflexive != self.reflexive || mapping != nat else { return }
        self.reflexive = reflexive
        nat = mapping
        announce(now: now)
    }

    /// The agent's data plane sees `member`'s WireGuard at `endpoint` (from
    /// its handshakes). A public node tells a kernel-mode member behind an
    /// endpoint-independent NAT where its kernel's socket is mapped, when that
    /// differs from what the member advertises (at most once a minute each).
    public func observeWireGuard(of member: Bytes32, at endpoint: Endpoint, now: Instant) {
        guard nat == .none, let r = records[member], r.flags & RecordFlags.kernel != 0,
              RecordFlags.mapping(r.flags) == .endpointIndependent, isLiveTrustedMember(member),
              r.wireGuardEndpoints.first != endpoint else { return }
        if let (e, at) = observationsSent[member], e == endpoint, now - at < .seconds(60) { return }
        observationsSent[member] = (endpoint, now)
        sendNAT(.observedWireGuard(endpoint: endpoint), to: paths[member]?.heard ?? r.controlEndpoint)
        natCounters.observationsSent &+= 1
    }

    /// What the router's port mapping (NAT-PMP) gives: the public endpoints
    /// of our control port and (kernel mode) WireGuard port, or nil when there
    /// is none (any more). A change is announced at once.
    public func setPortMapping(control: Endpoint?, wireGuard: Endpoint?, now: Instant) {
        let new = control.map { (control: $0, wireGuard: wireGuard) }
        guard new?.control != portMapping?.control || new?.wireGuard != portMapping?.wireGuard else { return }
        portMapping = new
        announce(now: now)
    }

    /// Re-signs this node's record for a new incarnation and gossips it (its
    /// public endpoint, NAT kind or port mapping changed).
    func announce(now: Instant) {
        refreshTemplate()
        try? membership.update(endpoint: template.control, now: now)
        generation &+= 1
    }

    /// The record this node gossips now.
    public var currentRecord: MemberRecord { template.record(membership.incarnation) }

    public func join(seeds: [Endpoint], now: Instant) { membership.join(seeds: seeds, now: now) }
    public func leave(now: Instant) { membership.leave(now: now) }
    public func nextDeadline() -> Instant? {
        let grace = waiting.values.min()
        let first: Instant?
        switch (membership.nextDeadline(), grace) {
        case let (a?, b?): first = min(a, b)
        case let (a, b): first = a ?? b
        }
        guard !membership.hasLeft else { return first }
        return first.map { min($0, nextNATTick) } ?? nextNATTick
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
        if now >= nextNATTick, !membership.hasLeft {
            nextNATTick = now + MeshNode.natTick
            traverse(now: now)
        }
    }

    /// Replaces the trust set (authorized_keys changed): revoked members stop
    /// being peers at once; members trusted again are asked for a push-pull at
    /// once (they may hold us dead, and we them, after the time they were not
    /// trusted: both sides refute now rather than at the next re-join, 30 s).
    public func setTrust(_ t: TrustSet) {
        for (key, r) in records where !isOpen && !t.contains(r.identity) {
            records[key] = nil
            opener.forget(r.identity)
        }
        let old = trust
        trust = t
        generation &+= 1
        guard !isOpen else { return }
        for p in t.peers where !old.contains(p.key) { membership.pushPull(with: p.key.raw) }
    }

    /// A datagram that arrived on the control port.
    public func receive(_ bytes: [UInt8], from source: Endpoint, now: Instant) {
        do {
            lastNow = now
            let envelope = try opener.open(bytes, isTrusted: { isTrusted($0) })
            guard envelope.sender != identity.publicKey else { throw WireError(.untrustedSender, "our own key") }
            noteHeard(envelope.sender.raw, at: source, now: now)
            switch envelope.kind {
            case .swim: break
            case .natTraversal:
                handleNAT(try NATMessage.decode(envelope.payload), from: envelope.sender.raw, at: source, now: now)
                return
            case .relay:
                throw WireError(.unknownType, "envelope kind \(envelope.kind)")
            }
            var packet = try SWIMCodec.decode(envelope.payload, sender: envelope.sender.raw)
            // Anything but a push-pull request is sent to a member the sender
            // knows (and has configured); a join request is sent to a seed's
            // address, by a node that may not know our key yet.
            if case .pushPull(let pp) = packet.message, !pp.isReply {} else {
                waiting[envelope.sender.raw] = nil
                if admitted.insert(envelope.sender.raw).inserted { generation &+= 1 }
            }
            let sender = envelope.sender.raw
            packet.updates = packet.updates.compactMap { vet($0, sender: sender) }
            if case .pushPull(var pp) = packet.message {
                pp.entries = pp.entries.compactMap { vet($0, sender: sender) }
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
        if !natOutbox.isEmpty { return natOutbox.removeFirst() }
        while let (packet, to) = membership.pollTransmit() {
            if let bytes = try? sealer.seal(.swim, payload: SWIMCodec.encode(packet)) { return (bytes, to) }
        }
        return nil
    }

    // MARK: Vetting gossip
    //
    // Every claim about a member is vetted before SWIM sees it, so that a
    // trusted member that lies (or relays lies) changes nothing it should not:
    // - alive: only with the member's own record signed for exactly that
    //   incarnation and control endpoint (about us too: only a record we signed,
    //   e.g. of a former life, makes us refute);
    // - suspect, dead, left: only at an incarnation the member has signed (as
    //   far as we know), so a false accusation can always be refuted — one at
    //   2^64-1 never could;
    // - dead and left said by anyone but the member itself are only a
    //   suspicion here (as memberlist merges remote state): the member is
    //   probed and removed only if it does not answer in time, so no single
    //   member can evict another. A leaving member tells everyone itself.

    /// The update to apply for `u` from `sender`, or nil to drop it.
    private func vet(_ u: GossipUpdate, sender: Bytes32) -> GossipUpdate? {
        switch u {
        case let .alive(member, incarnation, endpoint, metadata):
            return verify(member: member, incarnation: incarnation, endpoint: endpoint, metadata: metadata, exact: true) ? u : nil
        case let .suspect(member, incarnation, _):
            return accusable(member, at: incarnation, proof: nil) ? u : nil
        case let .dead(member, incarnation, from):
            guard accusable(member, at: incarnation, proof: nil) else { return nil }
            return sender == member || member == identity.publicKey.raw ? u : .suspect(member: member, incarnation: incarnation, from: from == member ? sender : from)
        case let .left(member, incarnation):
            guard accusable(member, at: incarnation, proof: nil) else { return nil }
            return sender == member || member == identity.publicKey.raw ? u : .suspect(member: member, incarnation: incarnation, from: sender)
        }
    }

    private func vet(_ e: MemberEntry, sender: Bytes32) -> MemberEntry? {
        switch e.status {
        case .alive:
            return verify(member: e.member, incarnation: e.incarnation, endpoint: e.endpoint, metadata: e.metadata, exact: true) ? e : nil
        case .suspect, .dead, .left:
            // The record carried may be older than the accusation (it came after);
            // it must be genuine, and the accusation within what the member signed.
            guard e.member == identity.publicKey.raw
                    || verify(member: e.member, incarnation: e.incarnation, endpoint: e.endpoint, metadata: e.metadata, exact: false) else { return nil }
            guard accusable(e.member, at: e.incarnation, proof: e.metadata) else { return nil }
            guard e.status == .left, sender != e.member, e.member != identity.publicKey.raw else { return e }
            var s = e
            s.status = .suspect
            return s
        }
    }

    /// Whether an accusation of `member` at `incarnation` stays within what
    /// `member` has signed: the newest record of it we hold (or `proof`, a
    /// record it carries); for us, our incarnation or a record we signed.
    private func accusable(_ member: Bytes32, at incarnation: UInt64, proof: [UInt8]?) -> Bool {
        var signed: UInt64
        if member == identity.publicKey.raw {
            signed = membership.incarnation
            if let p = proof, let r = try? MemberRecord.decode(p), r.identity == identity.publicKey { signed = max(signed, r.incarnation) }
        } else {
            // Unknown to us: SWIM ignores claims about members it does not have.
            guard let r = records[member] else { return true }
            signed = r.incarnation
        }
        guard incarnation <= signed else { drops[.unsignedIncarnation, default: 0] &+= 1; return false }
        return true
    }

    private func trusted(_ raw: Bytes32) -> Bool { (try? IdentityPublicKey(raw: raw)).map { isTrusted($0) } ?? false }

    private func isTrusted(_ key: IdentityPublicKey) -> Bool { isOpen || trust.contains(key) }

    /// Checks a member's signed record against what the update claims: the
    /// same member, trusted, the same control endpoint, and its incarnation
    /// (`exact`), or at most it. An alive update is authority to override
    /// suspicion, so only the owner's signature for that incarnation counts.
    private func verify(member: Bytes32, incarnation: UInt64, endpoint: Endpoint, metadata: [UInt8], exact: Bool) -> Bool {
        guard let r = try? MemberRecord.decode(metadata) else { drops[.badSignature, default: 0] &+= 1; return false }
        if member == identity.publicKey.raw {
            // About us: only our own signature (a former life's record) makes SWIM refute.
            guard r.identity == identity.publicKey, r.controlEndpoint == endpoint, exact ? r.incarnation == incarnation : r.incarnation <= incarnation
            else { drops[.forgedRecord, default: 0] &+= 1; return false }
            return true
        }
        guard r.identity.raw == member, isTrusted(r.identity) else { drops[.untrustedSender, default: 0] &+= 1; return false }
        guard r.controlEndpoint == endpoint else { drops[.forgedRecord, default: 0] &+= 1; return false }
        guard exact ? r.incarnation == incarnation : r.incarnation <= incarnation else { drops[.staleRecord, default: 0] &+= 1; return false }
        if let have = records[member], have.incarnation > r.incarnation { return true }   // keep the newer record
        if records[member] != r {
            records[member] = r
            generation &+= 1
            membership.setPreferredRelay(member, RecordFlags.mapping(r.flags) == .none)
        }
        return true
    }

    /// Membership events not yet taken by `takeEvents()` (for the daemon's log; the oldest are dropped past 1,000).
    private var pendingEvents: [MembershipEvent] = []

    /// The path changes since the last call (the oldest are dropped past 1,000).
    public func takePathEvents() -> [PathEvent] {
        defer { pathEvents.removeAll(keepingCapacity: true) }
        return pathEvents
    }

    func notePath(_ e: PathEvent) {
        if pathEvents.count >= 1000 { pathEvents.removeFirst(pathEvents.count - 999) }
        pathEvents.append(e)
    }

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
                paths[id] = nil; membership.setRoute(id, nil); observationsSent[id] = nil
                membership.setPreferredRelay(id, false); membership.setDirectlyReachable(id, true)
            case .joined(let m):
                if paths[m.id] == nil { paths[m.id] = Path(since: lastNow) }
                // Heard from already (it wrote to us, so it knows us): nothing to wait for.
                if !admitted.contains(m.id) {
                    if waiting[m.id] == nil { waiting[m.id] = lastNow + MeshNode.hearingGrace }
                    sayHello(to: m)
                }
            case .updated(let m), .aliveAgain(let m):
                // New endpoints, or back: try the direct path again now.
                if var p = paths[m.id], !p.isDirect(lastNow) { p.nextPunch = lastNow; paths[m.id] = p }
            case .dead(let m), .left(let m):
                // It must be heard from again when it comes back.
                admitted.remove(m.id); waiting[m.id] = nil
                paths[m.id] = Path(since: lastNow); membership.setRoute(m.id, nil)
            default:
                break
            }
            generation &+= 1
        }
    }

    /// A ping carrying our alive update, so `m` learns of us now; its ack
    /// tells us it has. Sent to every address `m` may be reached at.
    private func sayHello(to m: Member) {
        for e in candidates(of: m.id, swimEndpoint: m.endpoint) { sayHello(to: m.id, at: e) }
    }

    private func sayHello(to id: Bytes32, at endpoint: Endpoint) {
        let me = membership.localMember
        helloSequence = helloSequence == .max ? 0x8000_0000 : helloSequence + 1
        let packet = SWIMPacket(sender: identity.publicKey.raw, message: .ping(sequence: helloSequence, target: id),
                                updates: [.alive(member: me.id, incarnation: me.incarnation, endpoint: me.endpoint, metadata: me.metadata)])
        if let bytes = try? sealer.seal(.swim, payload: SWIMCodec.encode(packet)) { hellos.append((bytes, endpoint)) }
    }

    /// Where member `id`'s control plane may be reached: where we heard it
    /// from, its advertised endpoint, and its record's candidates at the
    /// control port (a member on our LAN answers at its local address);
    /// never our own local endpoint (the same private address in another home).
    private func candidates(of id: Bytes32, swimEndpoint: Endpoint?) -> [Endpoint] {
        var out: [Endpoint] = []
        func add(_ e: Endpoint) { if e != localControl, !out.contains(e) { out.append(e) } }
        if let h = paths[id]?.heard { add(h) }
        if let e = swimEndpoint { add(e) }
        if let r = records[id] {
            add(r.controlEndpoint)
            for c in r.wireGuardEndpoints { add(Endpoint(c.address, port: r.controlEndpoint.port)) }
        }
        return out
    }

    /// The peers the data plane should have: members alive or suspect, trusted,
    /// with a verified record; routed once heard from (or after the grace).
    public var peers: [MeshPeerState] {
        membership.members.compactMap { m in
            guard m.state.isLive, let r = records[m.id], isTrusted(r.identity) else { return nil }
            let path = paths[m.id]
            // A NAT on the way: keep its mapping open, once the path is settled
            // (direct or relayed). Turning the keepalive on makes WireGuard send
            // at once, and it rate-limits handshakes to one per 5 s, so an early
            // one toward an address that cannot work would delay the real path.
            let natted = isBehindNAT || path?.relay != nil
                || [.endpointIndependent, .endpointDependent].contains(RecordFlags.mapping(r.flags))
                || (path?.heard).map { $0 != r.controlEndpoint } ?? false
            let settled = path?.relay != nil || path?.isDirect(lastNow) == true || r.flags & RecordFlags.portMapped != 0
            // Across a NAT, no endpoint until the path is settled (for a while at
            // most): a handshake sent toward an address that cannot work would
            // hold the next one back for 5 s.
            var endpoint = wireGuardEndpoint(r, path)
            if natted, !settled, let p = path, lastNow - p.since < MeshNode.relayAfter + .seconds(2) { endpoint = nil }
            return MeshPeerState(key: r.identity, endpoint: endpoint,
                                 persistentKeepalive: natted && settled ? MeshNode.natKeepalive : nil, routed: admitted.contains(m.id))
        }
    }

    /// Where our WireGuard sends to a member: its relay port when relayed;
    /// else, when we hear it from somewhere other than it advertises (a NAT
    /// between us), that address (userspace: WireGuard shares the control
    /// port) or that address at its WireGuard port (kernel); else its own word.
    private func wireGuardEndpoint(_ r: MemberRecord, _ path: Path?) -> Endpoint? {
        if let relay = path?.relay { return relay.endpoint }
        // A port-mapped member is reachable from anyone at what it advertises.
        if r.flags & RecordFlags.portMapped != 0 { return r.wireGuardEndpoints.first }
        if let h = path?.heard, h != r.controlEndpoint {
            guard r.flags & RecordFlags.kernel != 0 else { return h }
            return r.wireGuardEndpoints.first { $0.address == h.address }
                ?? Endpoint(h.address, port: r.wireGuardEndpoints.first?.port ?? 51820)
        }
        return r.wireGuardEndpoints.first
    }

    /// How this node reaches a member now (for status).
    public func path(to member: Bytes32) -> PathKind {
        guard let p = paths[member] else { return .unknown }
        if let r = p.relay { return .relayed(via: r.via) }
        if p.isDirect(lastNow) { return .direct }
        return .trying
    }

    /// Every member this node knows, with its state (for status output).
    public var members: [Member] { membership.members }
}

/// A change of the way to a member (for the daemon's log).
public enum PathEvent: Equatable, Sendable {
    /// Heard from directly (again, or at a new address).
    case direct(member: Bytes32, at: Endpoint)
    /// A relay asked for a port pair for us and `member`.
    case relayRequested(member: Bytes32, relay: Bytes32)
    /// WireGuard to `member` goes to `endpoint`, a port of `relay`.
    case relayed(member: Bytes32, relay: Bytes32, endpoint: Endpoint)
    case relayRefused(member: Bytes32, relay: Bytes32, reason: NATMessage.RefusalReason)
    /// The relay was left (a direct path, or the relay is gone).
    case relayLeft(member: Bytes32)
}

/// How a member is reached (status output).
public enum PathKind: Equatable, Sendable {
    case unknown
    /// Heard from directly within `MeshNode.directLifetime`.
    case direct
    /// Not heard from directly: punching.
    case trying
    case relayed(via: Bytes32)
}

public struct NATCounters: Sendable, Equatable {
    public var punchRequestsSent: UInt64 = 0
    public var introductionsSent: UInt64 = 0
    public var introductionsReceived: UInt64 = 0
    /// Punch requests for a member this node does not hear directly (it cannot introduce).
    public var introductionsImpossible: UInt64 = 0
    public var relayRequestsSent: UInt64 = 0
    public var relayGrantsSent: UInt64 = 0
    public var relayRefusalsSent: UInt64 = 0
    public var relaysUsed: UInt64 = 0
    public var directAfterRelay: UInt64 = 0
    /// Observations of kernel WireGuard mappings sent to members.
    public var observationsSent: UInt64 = 0
}

/// The way to one member.
struct Path {
    /// Where its last authenticated message came from, and when.
    var heard: Endpoint?
    var heardAt: Instant = .zero
    /// Since when we try to reach it directly (joined, or the direct path lapsed).
    var since: Instant
    var punches = 0
    var nextPunch: Instant
    var relay: RelayPath?
    var relayAskedAt: Instant?
    /// Relays that refused this pair, until when.
    var refused: [Bytes32: Instant] = [:]

    init(since: Instant) {
        self.since = since
        nextPunch = since + MeshNode.punchAfter
    }

    /// Heard from directly, recently enough to count on it.
    var directUntil: Instant = .zero

    func isDirect(_ now: Instant) -> Bool { heard != nil && now < directUntil }
}

struct RelayPath: Equatable {
    var via: Bytes32
    var endpoint: Endpoint
    var at: Instant
}

extension MeshNode {
    /// A node that does not reach every member directly catches up with a public member this often (or 0.2 s per member).
    static let catchUpInterval: Duration = .seconds(10)
    /// How often the NAT traversal state is looked at.
    static let natTick: Duration = .milliseconds(250)
    /// A member not heard from directly this long after we learn of it is introduced through a rendezvous.
    static let punchAfter: Duration = .seconds(1)
    /// Later introductions: after 3 s, then every 30 s (the periodic retry of a direct path).
    static let punchRetries: [Duration] = [.seconds(2), .seconds(30)]
    /// Not heard from directly this long after trying: relayed.
    static let relayAfter: Duration = .seconds(3)
    /// When both NAT kinds say no direct path can exist: relayed this soon (a LAN path still wins later).
    static let relayAfterHopeless: Duration = .seconds(1)
    /// A direct path not heard from for this long (or 1.5 s per member, if longer) is tried again.
    static let directLifetime: Duration = .seconds(60)
    /// The relay requester refreshes its allocation this often; the other side drops a grant not refreshed for 3×.
    static let relayRefresh: Duration = .seconds(30)
    /// Persistent keepalive on WireGuard peers across a NAT: below the 30 s that NATs give UDP mappings.
    public static let natKeepalive: UInt16 = 25
}

extension MeshNode {
    /// An authenticated message from `member` arrived from `source`.
    func noteHeard(_ member: Bytes32, at source: Endpoint, now: Instant) {
        var p = paths[member] ?? Path(since: now)
        let changed = p.heard != source || !p.isDirect(now)
        p.heard = source
        p.heardAt = now
        // SWIM probes each member once a round (members × probe interval), so a
        // quiet spell that long is normal in a large mesh.
        p.directUntil = now + max(MeshNode.directLifetime, MeshNode.punchRetries[1] + .milliseconds(1500 * Int64(membership.clusterSize)))
        if p.relay != nil {
            // A direct path works again: leave the relay.
            p.relay = nil
            natCounters.directAfterRelay &+= 1
            notePath(.relayLeft(member: member))
        }
        paths[member] = p
        if changed {
            notePath(.direct(member: member, at: source))
            membership.setRoute(member, source)
            membership.setDirectlyReachable(member, true)
            generation &+= 1
        }
    }

    func sendNAT(_ m: NATMessage, to: Endpoint) {
        if let bytes = try? sealer.seal(.natTraversal, payload: m.encoded) { natOutbox.append((bytes, to)) }
    }

    func isLiveTrustedMember(_ id: Bytes32) -> Bool {
        guard let m = membership.member(id), m.state.isLive, let r = records[id] else { return false }
        return isTrusted(r.identity)
    }

    func handleNAT(_ message: NATMessage, from sender: Bytes32, at source: Endpoint, now: Instant) {
        switch message {
        case .punchRequest(let target):
            // Rendezvous: both must be members we hear directly.
            guard target != sender, isLiveTrustedMember(target), let t = paths[target], t.isDirect(now), let tAt = t.heard else {
                natCounters.introductionsImpossible &+= 1
                return
            }
            sendNAT(.introduction(peer: sender, endpoint: source), to: tAt)
            sendNAT(.introduction(peer: target, endpoint: tAt), to: source)
            natCounters.introductionsSent &+= 2
        case let .introduction(peer, endpoint):
            guard peer != identity.publicKey.raw, trusted(peer) else { drops[.badValue, default: 0] &+= 1; return }
            guard isLiveTrustedMember(peer) else {
                // A member we have not heard of yet (members behind NATs that map per
                // destination hear gossip from few others): catch up with the introducer.
                synchronize(with: source, now: now)
                return
            }
            natCounters.introductionsReceived &+= 1
            if paths[peer]?.isDirect(now) == true { return }
            // Both sides do this at once: our hello opens our NAT toward it, its hello then passes.
            sayHello(to: peer, at: endpoint)
            for e in candidates(of: peer, swimEndpoint: membership.member(peer)?.endpoint) where e != endpoint {
                sayHello(to: peer, at: e)
            }
        case .relayRequest(let peer):
            guard offersRelay, let server = relayServer else {
                sendNAT(.relayRefusal(peer: peer, reason: .notARelay), to: source); natCounters.relayRefusalsSent &+= 1; return
            }
            guard peer != sender, peer != identity.publicKey.raw, isLiveTrustedMember(peer), isLiveTrustedMember(sender) else {
                sendNAT(.relayRefusal(peer: peer, reason: .unknownPeer), to: source); natCounters.relayRefusalsSent &+= 1; return
            }
            guard let p = paths[peer], p.isDirect(now), let peerAt = p.heard else {
                sendNAT(.relayRefusal(peer: peer, reason: .noRouteToPeer), to: source); natCounters.relayRefusalsSent &+= 1; return
            }
            switch server.allocate(sender, at: source.address, peer: peer, at: peerAt.address, now: now) {
            case .success(let (mine, theirs)):
                let here = template.control.address
                sendNAT(.relayGrant(peer: peer, endpoint: Endpoint(here, port: mine)), to: source)
                sendNAT(.relayGrant(peer: sender, endpoint: Endpoint(here, port: theirs)), to: peerAt)
                natCounters.relayGrantsSent &+= 2
            case .failure(let reason):
                sendNAT(.relayRefusal(peer: peer, reason: reason), to: source); natCounters.relayRefusalsSent &+= 1
            }
        case let .relayGrant(peer, endpoint):
            // From a live relay member, for a member we do not reach directly.
            // The peer may not have reached us by gossip yet: the grant is kept for when it does.
            guard let r = records[sender], r.flags & RecordFlags.relay != 0, isLiveTrustedMember(sender), trusted(peer),
                  peer != identity.publicKey.raw else { drops[.badValue, default: 0] &+= 1; return }
            if !isLiveTrustedMember(peer) { synchronize(with: source, now: now) }
            var p = paths[peer] ?? Path(since: now)
            if p.isDirect(now) { return }
            let fresh = RelayPath(via: sender, endpoint: endpoint, at: now)
            if p.relay?.via != sender || p.relay?.endpoint != endpoint {
                generation &+= 1; natCounters.relaysUsed &+= 1
                notePath(.relayed(member: peer, relay: sender, endpoint: endpoint))
            }
            p.relay = fresh
            paths[peer] = p
            // The relay granted both sides at once: the peer configures us now, so route to it.
            waiting[peer] = nil
            if admitted.insert(peer).inserted { generation &+= 1 }
        case .observedWireGuard(let endpoint):
            // Only a public member sees the mapping others will see, and only an
            // endpoint-independent NAT has one; it must be our public address.
            guard kernelMode, nat == .endpointIndependent, let r = records[sender], RecordFlags.mapping(r.flags) == .none,
                  endpoint.address == reflexive?.address else { drops[.badValue, default: 0] &+= 1; return }
            guard endpoint != observedWireGuard else { return }
            observedWireGuard = endpoint
            announce(now: now)
        case let .relayRefusal(peer, reason):
            guard var p = paths[peer] else { return }
            notePath(.relayRefused(member: peer, relay: sender, reason: reason))
            p.refused[sender] = now + .seconds(60)
            p.relayAskedAt = nil   // ask another one at the next tick
            if p.relay?.via == sender { p.relay = nil; generation &+= 1 }
            paths[peer] = p
        }
    }

    /// A push-pull with `source`, at most once a second.
    func synchronize(with source: Endpoint, now: Instant) {
        guard now - lastSynchronize >= .seconds(1) else { return }
        lastSynchronize = now
        membership.synchronize(with: source)
    }

    /// A stable score for relay choice (rendezvous hashing): both sides of a
    /// pair rank relays alike, and pairs spread over relays.
    static func relayScore(_ a: Bytes32, _ b: Bytes32, _ relay: Bytes32) -> UInt64 {
        func word(_ k: Bytes32) -> UInt64 { k.bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }
        var x = word(a) ^ word(b) &* 0x9E37_79B9_7F4A_7C15 ^ word(relay)
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// The periodic NAT work: introductions for members not heard directly,
    /// relay requests when that fails, refreshes, expiries.
    func traverse(now: Instant) {
        let me = identity.publicKey.raw
        // Members no one but a few public members reach hear little gossip:
        // such a node catches up with a public member now and then (a record
        // update it missed would otherwise wait for anti-entropy).
        if now >= nextCatchUp, paths.contains(where: { id, p in !p.isDirect(now) && now - p.since >= MeshNode.relayAfterHopeless && isLiveTrustedMember(id) }),
           let (_, at) = paths.filter({ id, p in
               p.isDirect(now) && records[id].map { RecordFlags.mapping($0.flags) == .none } == true && isLiveTrustedMember(id)
           }).compactMap({ id, p in p.heard.map { (id, $0) } }).min(by: { $0.0 < $1.0 }) {
            nextCatchUp = now + max(MeshNode.catchUpInterval, .milliseconds(200 * Int64(membership.clusterSize)))
            membership.synchronize(with: at)
        }
        for (id, var p) in paths {
            guard let r = records[id], let m = membership.member(id), m.state.isLive, isTrusted(r.identity) else { continue }
            if p.isDirect(now) { continue }
            // Punching has had its chance: SWIM probes it through others from now on.
            membership.setDirectlyReachable(id, now - p.since < MeshNode.relayAfter)
            if p.heard != nil, p.since < p.heardAt {
                // The direct path lapsed: start over.
                p.since = now; p.punches = 0; p.nextPunch = now
            }
            if now >= p.nextPunch {
                punch(id, now: now)
                p.nextPunch = now + MeshNode.punchRetries[min(p.punches, MeshNode.punchRetries.count - 1)]
                p.punches += 1
            }
            // Relay: decided by the lower key of the pair, granted to both.
            let theirs = RecordFlags.mapping(r.flags)
            let mapped = portMapping != nil || r.flags & RecordFlags.portMapped != 0
            let hopeless = !mapped && ((nat == .endpointDependent && theirs != .none) || (theirs == .endpointDependent && nat != .none))
            let wait = hopeless ? MeshNode.relayAfterHopeless : MeshNode.relayAfter
            if me < id, now - p.since >= wait {
                let due = p.relay.map { now - $0.at >= MeshNode.relayRefresh } ?? (p.relayAskedAt.map { now - $0 >= .seconds(5) } ?? true)
                if due, let relay = chooseRelay(for: id, path: p, now: now) {
                    p.relayAskedAt = now
                    if let at = paths[relay]?.heard {
                        sendNAT(.relayRequest(peer: id), to: at)
                        natCounters.relayRequestsSent &+= 1
                        if p.relay == nil { notePath(.relayRequested(member: id, relay: relay)) }
                    }
                }
            }
            if let rp = p.relay, !isLiveTrustedMember(rp.via) || (me > id && now - rp.at >= MeshNode.relayRefresh * 3) {
                p.relay = nil
                notePath(.relayLeft(member: id))
                generation &+= 1
            }
            p.refused = p.refused.filter { $0.value > now }
            paths[id] = p
        }
    }

    /// Asks up to two members we hear directly (public ones first) to introduce us to `target`.
    func punch(_ target: Bytes32, now: Instant) {
        var choices: [(Bytes32, Endpoint, Bool)] = []
        for (id, p) in paths where id != target && p.isDirect(now) {
            guard let at = p.heard, let r = records[id], isLiveTrustedMember(id) else { continue }
            choices.append((id, at, RecordFlags.mapping(r.flags) == .none))
        }
        // Public members hear everyone who writes to them: when there are any, only they are asked.
        if choices.contains(where: { $0.2 }) { choices.removeAll { !$0.2 } }
        choices.sort { MeshNode.relayScore(target, target, $0.0) < MeshNode.relayScore(target, target, $1.0) }
        for (_, at, _) in choices.prefix(2) {
            sendNAT(.punchRequest(target: target), to: at)
            natCounters.punchRequestsSent &+= 1
        }
        // And a hello of our own to every address it may have: opens our NAT toward it.
        if let m = membership.member(target) {
            for e in candidates(of: target, swimEndpoint: m.endpoint) { sayHello(to: target, at: e) }
        }
    }

    /// The relay for the pair (us, `peer`): a live member offering to relay that we hear directly, ranked by rendezvous hashing.
    func chooseRelay(for peer: Bytes32, path: Path, now: Instant) -> Bytes32? {
        let me = identity.publicKey.raw
        var best: (Bytes32, UInt64)?
        for (id, p) in paths where id != peer && p.isDirect(now) && path.refused[id] == nil {
            guard let r = records[id], r.flags & RecordFlags.relay != 0, isLiveTrustedMember(id) else { continue }
            let s = MeshNode.relayScore(min(me, peer), max(me, peer), id)
            if best == nil || s < best!.1 { best = (id, s) }
        }
        return best?.0
    }
}
