// SWIMMembership: the sans-IO SWIM membership of one node (Das, Gupta,
// Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group
// Membership Protocol", 2002) with Lifeguard (Dadgar, Phillips, Currey,
// "Lifeguard: Local Health Awareness for More Accurate Failure Detection",
// 2018), shaped after hashicorp/memberlist's state.go.
//
// No I/O, no clock, no sleeping: every input carries `now`, randomness comes
// from the SeededRandom passed in, outputs are pulled.
//
//   caller                                      SWIMMembership
//   ──────                                      ──────────────
//   join(seeds:now:) / leave(now:) / update ──► state
//   receive(packet, from:, now:)            ──► state
//   handleTimers(now:) at nextDeadline()    ──► probes, gossip, push-pull, re-join, suspicion timeouts, reaping
//   pollTransmit() until nil                ◄── (packet, endpoint) to send
//   pollEvent() until nil                   ◄── joined / updated / suspect / aliveAgain / dead / left / reaped
//
// Unsafe for concurrent use: one task owns a membership.

import MeshBase

/// Counters for tests, benchmarks and logs.
public struct SWIMCounters: Hashable, Sendable {
    public var probes = 0
    public var probesFailed = 0
    public var indirectProbes = 0
    public var suspicionsStarted = 0
    public var refutations = 0
    /// Members this node declared dead because their suspicion ran out.
    public var deadDeclared = 0
    public var messagesSent = 0
    public var bytesSent = 0
}

/// The SWIM membership of the local node.
public struct SWIMMembership: Sendable {
    public let config: SWIMConfig
    /// The local member's identity key.
    public let id: Bytes32
    public private(set) var endpoint: Endpoint
    public private(set) var metadata: [UInt8]
    public private(set) var incarnation: UInt64
    /// True once `leave(now:)` was called: the node only finishes disseminating its leave.
    public private(set) var hasLeft = false
    public private(set) var counters = SWIMCounters()
    /// Metadata for an incarnation: when set, called whenever the local
    /// incarnation changes (refutation, `update`), and its answer becomes the
    /// metadata. The owner of a signed record re-signs it here, so every alive
    /// update carries a record of exactly its incarnation and no one relaying
    /// gossip can lift an old record to a new incarnation.
    public var stamp: (@Sendable (_ incarnation: UInt64) -> [UInt8])? {
        didSet { if let f = stamp { metadata = f(incarnation) } }
    }

    private var rng: SeededRandom
    /// Every member known (the local node is not in it), by identity key and
    /// by slot; slot order is insertion order with swap-removal, for uniform
    /// random choice (MemberTable.swift).
    private var table = MemberTable()
    /// SWIM's randomized round-robin, as slot numbers: shuffled at the end of
    /// each round, new members at random positions.
    private var probeOrder: [Int32] = []
    private var probeIndex = 0
    /// Members suspected by others, to probe before the round-robin continues (see applySuspect).
    private var urgentProbes: [Bytes32] = []
    private var probe: Probe?
    private var nextProbeAt: Instant
    private var relays: [UInt32: IndirectProbe] = [:]
    private var suspicions: [Bytes32: Suspicion] = [:]
    /// Dead and left members (reap candidates).
    private var down: Set<Bytes32> = []
    private var nextReapAt: Instant?
    private var broadcasts = BroadcastQueue()
    private var awareness: Awareness
    private var seeds: [Endpoint] = []
    private var nextGossipAt: Instant
    private var nextPushPullAt: Instant
    private var nextRejoinAt: Instant
    private var sequence: UInt32
    private var answered: [AnsweredExchange: Instant] = [:]
    /// Where to send to a member instead of the endpoint in its alive update:
    /// the address it was last heard from (a member behind a NAT is reachable
    /// at its mapping toward us, not at what it advertises). Set by the owner.
    private var routes: [Bytes32: Endpoint] = [:]
    /// Members we cannot reach directly (behind NATs, no punched path): probed
    /// only indirectly. Set by the owner.
    private var indirectOnly: Set<Bytes32> = []
    /// Members asked first for indirect probes (public ones, that reach everyone).
    private var preferredRelays: Set<Bytes32> = []
    private var outbox: [(SWIMPacket, Endpoint)] = []
    private var outboxHead = 0
    private var eventQueue: [MembershipEvent] = []
    private var eventHead = 0
    /// Other members alive or suspect.
    public private(set) var liveMemberCount = 0

    /// Implementation limits of the push-pull answer memory: an exchange's parts
    /// arrive within milliseconds, so a minute is ample; pruned past 256 entries.
    private static let answeredLimit = 256
    private static let answeredMemory = Duration.seconds(60)

    private struct AnsweredExchange: Hashable, Sendable {
        let sender: Bytes32
        let exchange: UInt32
    }

    /// A membership for the local member `id`, reachable at `endpoint`.
    /// `incarnation` should exceed any the member used before (a restarted
    /// node that forgot it is corrected by refutation, more slowly).
    public init(id: Bytes32, endpoint: Endpoint, metadata: [UInt8] = [], incarnation: UInt64 = 0,
                config: SWIMConfig = .lan, random: SeededRandom, now: Instant) throws(SWIMError) {
        guard metadata.count <= config.maxMetadataSize else {
            throw .metadataTooLarge(size: metadata.count, limit: config.maxMetadataSize)
        }
        self.config = config; self.id = id; self.endpoint = endpoint; self.metadata = metadata
        self.incarnation = incarnation; self.rng = random
        awareness = Awareness(maximum: config.awarenessMaxMultiplier)
        sequence = UInt32.random(in: 0...UInt32.max, using: &rng)
        // Stagger the periodic work, as memberlist does, so nodes started together do not beat in step.
        func stagger(_ d: Duration, _ rng: inout SeededRandom) -> Instant {
            now + .nanoseconds(Int64.random(in: 0...max(0, d.nanosecondsClamped), using: &rng))
        }
        nextProbeAt = stagger(config.probeInterval, &rng)
        nextGossipAt = stagger(config.gossipInterval, &rng)
        nextPushPullAt = stagger(config.pushPullInterval, &rng)
        nextRejoinAt = stagger(config.rejoinInterval, &rng)
    }

    /// Starts from a converged view: every member of `members` not yet known
    /// (the local one is skipped) becomes alive at its incarnation, with no
    /// event and no gossip, and the probe round is reshuffled. For simulations
    /// and benchmarks that start from a mesh that has already converged instead
    /// of joining every node (`SWIMSimulator.assumeConverged`).
    public mutating func assumeConverged(with members: [Member]) {
        table.reserveCapacity(table.count + members.count)
        probeOrder.reserveCapacity(table.count + members.count)
        for m in members where m.id != id && table.slot(of: m.id) == nil {
            let s = table.append(Member(id: m.id, endpoint: m.endpoint, metadata: m.metadata, incarnation: m.incarnation, state: .alive))
            probeOrder.append(Int32(s))
            liveMemberCount += 1
        }
        probeOrder.shuffle(using: &rng)
        probeIndex = 0
    }

    // MARK: Reading the view

    /// The local member as others should see it.
    public var localMember: Member {
        Member(id: id, endpoint: endpoint, metadata: metadata, incarnation: incarnation,
               state: hasLeft ? .left(since: .zero) : .alive)
    }

    /// Every other member known, in key order.
    public var members: [Member] { table.slots.map(\.member).sorted { $0.id < $1.id } }

    public func member(_ id: Bytes32) -> Member? { table.member(id) }

    /// Every other member known, in any state: `members.count` without building the list.
    public var memberCount: Int { table.count }

    /// Live members including this one: the N of SWIM's formulas.
    public var clusterSize: Int { liveMemberCount + 1 }

    /// Lifeguard's local health score: 0 when healthy, up to awarenessMaxMultiplier - 1.
    public var healthScore: Int { awareness.score }

    /// Gossip updates waiting to be piggybacked.
    public var pendingBroadcasts: Int { broadcasts.count }

    // MARK: Outputs

    /// The next message to send, or nil.
    public mutating func pollTransmit() -> (packet: SWIMPacket, to: Endpoint)? {
        guard outboxHead < outbox.count else { return nil }
        let t = outbox[outboxHead]
        outboxHead += 1
        if outboxHead == outbox.count { outbox.removeAll(keepingCapacity: true); outboxHead = 0 }
        return (t.0, t.1)
    }

    /// The next change of the view, or nil.
    public mutating func pollEvent() -> MembershipEvent? {
        guard eventHead < eventQueue.count else { return nil }
        let e = eventQueue[eventHead]
        eventHead += 1
        if eventHead == eventQueue.count { eventQueue.removeAll(keepingCapacity: true); eventHead = 0 }
        return e
    }

    /// When `handleTimers(now:)` must next be called; nil when nothing is pending (after a completed leave).
    public func nextDeadline() -> Instant? {
        if hasLeft { return broadcasts.isEmpty ? nil : nextGossipAt }
        var d = min(nextPushPullAt, nextRejoinAt)
        if !broadcasts.isEmpty { d = min(d, nextGossipAt) }
        if let p = probe { d = min(d, p.indirectSent ? p.endsAt : p.indirectAt) } else { d = min(d, nextProbeAt) }
        for r in relays.values {
            d = min(d, r.expiresAt)
            if let n = r.nackAt { d = min(d, n) }
        }
        for s in suspicions.values { d = min(d, s.deadline) }
        if let r = nextReapAt { d = min(d, r) }
        return d
    }

    // MARK: Inputs

    /// Joins through `seeds` (endpoints; the local one is ignored): a push-pull
    /// with each, retried every joinRetryInterval while no member is known,
    /// and later used to re-join when the seeds are outside the mesh.
    public mutating func join(seeds: [Endpoint], now: Instant) {
        guard !hasLeft else { return }
        self.seeds = seeds.filter { $0 != endpoint }
        for s in self.seeds { sendPushPull(to: s, exchange: nil, isJoin: true) }
        nextRejoinAt = now + config.joinRetryInterval
    }

    /// Exchanges the full state with `endpoint` now (anti-entropy on demand:
    /// when a member we hear from names one we do not know yet).
    public mutating func synchronize(with endpoint: Endpoint) {
        guard !hasLeft, endpoint != self.endpoint else { return }
        sendPushPull(to: endpoint, exchange: nil, isJoin: false)
    }

    /// Leaves gracefully: gossips `left` (to gossipNodes members at once, then
    /// in gossip rounds until its retransmit limit); answers nothing any more.
    /// Done when `nextDeadline()` is nil.
    public mutating func leave(now: Instant) {
        guard !hasLeft else { return }
        hasLeft = true
        probe = nil
        relays = [:]
        suspicions = [:]
        broadcasts.enqueue(.left(member: id, incarnation: incarnation))
        // Ours: every live member hears the leave from us, not only the gossip
        // fan-out (a mesh that does not believe one member saying another has
        // left, as MeshNode does not, then still removes us at once).
        if config.leaveToEveryone {
            for slot in table.indices where table[slot].isLive {
                emit(SWIMPacket(sender: id, message: .gossip, updates: [.left(member: id, incarnation: incarnation)]), to: address(slot))
            }
        }
        gossipRound(now: now)
        nextGossipAt = now + config.gossipInterval
    }

    /// Changes the local member's endpoint and/or metadata; bumps the incarnation and gossips alive.
    public mutating func update(endpoint: Endpoint? = nil, metadata: [UInt8]? = nil, now: Instant) throws(SWIMError) {
        guard !hasLeft else { throw .notActive }
        if let m = metadata, m.count > config.maxMetadataSize { throw .metadataTooLarge(size: m.count, limit: config.maxMetadataSize) }
        if let e = endpoint { self.endpoint = e }
        if let m = metadata { self.metadata = m }
        setIncarnation(incarnation == .max ? .max : incarnation + 1)
        broadcasts.enqueue(aliveSelf)
    }

    /// Sends to `member` at `endpoint` from now on (nil: its advertised endpoint again).
    public mutating func setRoute(_ member: Bytes32, _ endpoint: Endpoint?) { routes[member] = endpoint }

    /// Whether `member` can be reached directly; if not, it is probed through others at once.
    public mutating func setDirectlyReachable(_ member: Bytes32, _ reachable: Bool) {
        if reachable { indirectOnly.remove(member) } else { indirectOnly.insert(member) }
    }

    /// Whether `member` is asked first to probe others for us (it reaches every member).
    public mutating func setPreferredRelay(_ member: Bytes32, _ preferred: Bool) {
        if preferred { preferredRelays.insert(member) } else { preferredRelays.remove(member) }
    }

    /// Where messages to the member in `slot` go.
    private func address(_ slot: Int) -> Endpoint { routes[table[slot].id] ?? table[slot].endpoint }

    /// Handles one received message. Piggybacked updates are applied first, so
    /// an answer (an ack) already carries any refutation they caused.
    public mutating func receive(_ packet: SWIMPacket, from source: Endpoint, now: Instant) {
        guard !hasLeft, packet.sender != id else { return }
        for u in packet.updates { apply(u, now: now) }
        switch packet.message {
        case .ping(let seq, let target):
            guard target == id else { return }   // meant for a member that used to be here
            send(.ack(sequence: seq), to: source)
        case .ack(let seq):
            if let p = probe, p.sequence == seq {
                probe = nil
                awareness.apply(-1)
                // Ours: an ack from a member we still suspect means it is up and its refutation
                // missed us; probe it again next (buddy ping) until its ack carries the refutation.
                if config.recheckSuspects, status(of: p.target) == .suspect { urgentProbes.append(p.target) }
            } else if let r = relays.removeValue(forKey: seq) {
                send(.ack(sequence: r.requesterSequence), to: r.requester)
            }
        case .nack(let seq):
            if var p = probe, p.sequence == seq { p.nacks += 1; probe = p }
        case .pingReq(let seq, let target, let targetEndpoint, let wantNack):
            let s = nextSequence()
            relays[s] = IndirectProbe(requester: source, requesterSequence: seq,
                                      nackAt: wantNack ? now + config.indirectNackDelay : nil,
                                      expiresAt: now + config.probeInterval)
            send(.ping(sequence: s, target: target), to: routes[target] ?? targetEndpoint)
        case .gossip:
            break
        case .pushPull(let pp):
            merge(pp.entries, from: packet.sender, now: now)
            guard !pp.isReply else { return }
            let key = AnsweredExchange(sender: packet.sender, exchange: pp.exchange)
            guard answered[key] == nil else { return }
            if answered.count >= Self.answeredLimit { answered = answered.filter { now - $0.value < Self.answeredMemory } }
            answered[key] = now
            sendPushPull(to: source, exchange: pp.exchange, isJoin: pp.isJoin)
        }
    }

    /// Runs everything due at `now`: suspicion timeouts, relays' nacks, the
    /// probe, gossip, push-pull, re-join and reaping.
    public mutating func handleTimers(now: Instant) {
        if hasLeft {
            if !broadcasts.isEmpty, now >= nextGossipAt {
                gossipRound(now: now)
                nextGossipAt = now + config.gossipInterval
            }
            return
        }
        // Suspicions that ran out.
        if !suspicions.isEmpty {
            for member in suspicions.filter({ $0.value.deadline <= now }).keys.sorted() {
                guard let s = suspicions[member], let slot = table.slot(of: member) else { continue }
                counters.deadDeclared += 1
                applyDead(member: member, incarnation: max(s.incarnation, table[slot].incarnation), from: id, now: now)
            }
        }
        // Relays: nack the requester, forget expired ones.
        if !relays.isEmpty {
            for seq in relays.keys.sorted() {
                guard var r = relays[seq] else { continue }
                if let n = r.nackAt, n <= now {
                    send(.nack(sequence: r.requesterSequence), to: r.requester)
                    r.nackAt = nil
                }
                relays[seq] = r.expiresAt <= now ? nil : r
            }
        }
        // The probe.
        if var p = probe {
            if !p.indirectSent, now >= p.indirectAt { sendIndirectProbes(&p) }
            if now >= p.endsAt { probe = nil; probeFailed(p, now: now) } else { probe = p }
        }
        if probe == nil, now >= nextProbeAt { startProbe(now: now) }
        // Gossip rounds on a fixed grid; rounds with nothing to say send nothing.
        if now >= nextGossipAt {
            gossipRound(now: now)
            let interval = config.gossipInterval.nanosecondsClamped
            let late = (now - nextGossipAt).nanosecondsClamped
            nextGossipAt = nextGossipAt + .nanoseconds((late / interval + 1) * interval)
        }
        // Anti-entropy.
        if now >= nextPushPullAt {
            nextPushPullAt = now + Scaling.pushPullInterval(config.pushPullInterval, members: clusterSize)
            if let peer = randomMembers(1, where: { $0.status == .alive }).first {
                sendPushPull(to: address(peer), exchange: nil, isJoin: false)
            }
        }
        if now >= nextRejoinAt { rejoin(now: now) }
        if let r = nextReapAt, now >= r { reap(now: now) }
    }

    // MARK: Probing

    private mutating func startProbe(now: Instant) {
        let interval = awareness.scale(config.probeInterval)
        nextProbeAt = now + interval
        guard let slot = nextProbeTarget() else { return }
        let m = table[slot], target = m.id
        counters.probes += 1
        let seq = nextSequence()
        probe = Probe(target: target, sequence: seq, indirectAt: now + awareness.scale(config.probeTimeout), endsAt: now + interval)
        // Buddy system: a suspect learns it is suspected from the probe itself and can refute in its ack.
        var first: [GossipUpdate] = []
        if m.status == .suspect { first = [.suspect(member: target, incarnation: m.incarnation, from: id)] }
        if indirectOnly.contains(target), var p = probe {
            // A direct ping cannot arrive: ask others at once.
            sendIndirectProbes(&p)
            probe = p
            return
        }
        send(.ping(sequence: seq, target: target), to: address(slot), first: first)
    }

    private mutating func sendIndirectProbes(_ p: inout Probe) {
        p.indirectSent = true
        guard let target = table.slot(of: p.target) else { return }
        let targetEndpoint = address(target)
        var relays: [Int] = []
        if !preferredRelays.isEmpty {
            for id in preferredRelays.sorted() where relays.count < config.indirectChecks && id != p.target {
                if let r = table.slot(of: id), table[r].status == .alive, !indirectOnly.contains(id) { relays.append(r) }
            }
        }
        if relays.count < config.indirectChecks {
            let have = Set(relays.map { table[$0].id }), skip = indirectOnly, target = p.target
            relays += randomMembers(config.indirectChecks - relays.count,
                                    where: { $0.id != target && $0.status == .alive && !skip.contains($0.id) && !have.contains($0.id) })
        }
        for r in relays {
            send(.pingReq(sequence: p.sequence, target: p.target, targetEndpoint: targetEndpoint, wantNack: true), to: address(r))
        }
        counters.indirectProbes += relays.count
        p.expectedNacks = relays.count
    }

    private mutating func probeFailed(_ p: Probe, now: Instant) {
        counters.probesFailed += 1
        // Lifeguard: missing nacks mean our own messages are not getting through.
        awareness.apply(p.expectedNacks > 0 ? max(0, p.expectedNacks - p.nacks) : 1)
        guard let slot = table.slot(of: p.target), table[slot].isLive else { return }
        applySuspect(member: p.target, incarnation: table[slot].incarnation, from: id, now: now)
    }

    /// The slot of the next live member in the randomized round-robin; reshuffles at the end of a round.
    private mutating func nextProbeTarget() -> Int? {
        while !urgentProbes.isEmpty {
            let u = urgentProbes.removeFirst()
            if let slot = table.slot(of: u), table[slot].status == .suspect { return slot }
        }
        var visited = 0
        while visited <= probeOrder.count {
            if probeIndex >= probeOrder.count {
                // probeOrder holds exactly the table's slots (add and reap keep it so).
                probeOrder.shuffle(using: &rng)
                probeIndex = 0
                if probeOrder.isEmpty { return nil }
            }
            let candidate = Int(probeOrder[probeIndex])
            probeIndex += 1
            visited += 1
            if table[candidate].isLive { return candidate }
        }
        return nil
    }

    // MARK: Dissemination

    private var retransmitLimit: Int { Scaling.retransmitLimit(mult: config.retransmitMult, members: clusterSize) }

    private var aliveSelf: GossipUpdate {
        .alive(member: id, incarnation: incarnation, endpoint: endpoint, metadata: metadata)
    }

    /// Queues `message` to `destination` with `first` and then as many queued updates as fit the budget.
    private mutating func send(_ message: SWIMMessage, to destination: Endpoint, first: [GossipUpdate] = []) {
        var packet = SWIMPacket(sender: id, message: message, updates: first)
        let budget = config.maxMessageSize - packet.encodedSize
        if budget >= BroadcastQueue.smallestUpdate {
            packet.updates += broadcasts.take(budget: budget, limit: retransmitLimit)
        }
        emit(packet, to: destination)
    }

    private mutating func emit(_ packet: SWIMPacket, to destination: Endpoint) {
        counters.messagesSent += 1
        counters.bytesSent += packet.encodedSize
        outbox.append((packet, destination))
    }

    /// One gossip round: queued updates to gossipNodes random members (live
    /// ones, and recently dead ones so they can refute).
    private mutating func gossipRound(now: Instant) {
        guard !broadcasts.isEmpty else { return }
        let toTheDead = config.gossipToTheDeadTime, leaving = hasLeft
        let targets = randomMembers(config.gossipNodes) { m in
            switch m.status {
            case .alive, .suspect: return true
            case .dead: return !leaving && now - m.since < toTheDead
            case .left: return false
            }
        }
        // A leaving node with nobody left to tell is done.
        if leaving, targets.isEmpty { broadcasts = BroadcastQueue(); return }
        for t in targets {
            let budget = config.maxMessageSize - SWIMPacket.headerSize
            let updates = broadcasts.take(budget: budget, limit: retransmitLimit)
            if updates.isEmpty { break }
            emit(SWIMPacket(sender: id, message: .gossip, updates: updates), to: address(t))
        }
    }

    /// Sends the full local state in as many parts as the budget needs; a nil
    /// `exchange` starts a new exchange (a request), otherwise this is the reply.
    private mutating func sendPushPull(to destination: Endpoint, exchange: UInt32?, isJoin: Bool) {
        var entries = [MemberEntry(member: id, incarnation: incarnation, status: .alive, endpoint: endpoint, metadata: metadata)]
        entries.reserveCapacity(table.count + 1)
        for m in table.slots {
            entries.append(MemberEntry(member: m.id, incarnation: m.incarnation, status: m.status, endpoint: m.endpoint, metadata: m.metadata))
        }
        let capacity = config.maxMessageSize - SWIMPacket.headerSize - PushPull.headerSize
        var chunks: [[MemberEntry]] = [[]]
        var used = 0
        for e in entries {
            if used + e.encodedSize > capacity, !chunks[chunks.count - 1].isEmpty { chunks.append([]); used = 0 }
            chunks[chunks.count - 1].append(e)
            used += e.encodedSize
        }
        let ex = exchange ?? UInt32.random(in: 0...UInt32.max, using: &rng)
        for (i, c) in chunks.enumerated() {
            let pp = PushPull(exchange: ex, isReply: exchange != nil, isJoin: isJoin,
                              part: UInt16(clamping: i), parts: UInt16(clamping: chunks.count), entries: c)
            emit(SWIMPacket(sender: id, message: .pushPull(pp)), to: destination)
        }
    }

    /// Merges a remote state: dead there is only suspect here (memberlist's
    /// rule: the remote may be wrong, let the member refute).
    private mutating func merge(_ entries: [MemberEntry], from sender: Bytes32, now: Instant) {
        for e in entries {
            switch e.status {
            case .alive: applyAlive(member: e.member, incarnation: e.incarnation, endpoint: e.endpoint, metadata: e.metadata, now: now)
            case .suspect, .dead: applySuspect(member: e.member, incarnation: e.incarnation, from: sender, now: now)
            case .left: applyLeft(member: e.member, incarnation: e.incarnation, now: now)
            }
        }
    }

    /// Exchanges state with `member` now (a join push-pull to where it is
    /// reached), whatever its state here: e.g. when it has just become trusted
    /// again, so both sides learn at once what the other holds (a death to
    /// refute) instead of at the next re-join. False when it is unknown.
    @discardableResult
    public mutating func pushPull(with member: Bytes32) -> Bool {
        guard !hasLeft, let slot = table.slot(of: member) else { return false }
        sendPushPull(to: address(slot), exchange: nil, isJoin: true)
        return true
    }

    /// Re-join: push-pull with one seed that is not a live member and one
    /// dead member, so both sides of a healed partition exchange state.
    private mutating func rejoin(now: Instant) {
        let isolated = liveMemberCount == 0
        nextRejoinAt = now + (isolated ? config.joinRetryInterval : config.rejoinInterval)
        if !seeds.isEmpty {
            var inside = Set<Endpoint>()
            if !isolated { for m in table.slots where m.isLive { inside.insert(m.endpoint) } }
            let outside = seeds.filter { !inside.contains($0) }
            if isolated {
                for s in outside { sendPushPull(to: s, exchange: nil, isJoin: true) }
            } else if let s = outside.randomElement(using: &rng) {
                sendPushPull(to: s, exchange: nil, isJoin: true)
            }
        }
        if !down.isEmpty {
            let dead = table.indices.filter { table[$0].status == .dead }
            if let d = dead.randomElement(using: &rng) {
                sendPushPull(to: address(d), exchange: nil, isJoin: true)
            }
        }
    }

    // MARK: Updates

    private mutating func apply(_ u: GossipUpdate, now: Instant) {
        switch u {
        case .alive(let m, let inc, let e, let meta): applyAlive(member: m, incarnation: inc, endpoint: e, metadata: meta, now: now)
        case .suspect(let m, let inc, let from): applySuspect(member: m, incarnation: inc, from: from, now: now)
        case .dead(let m, let inc, let from): applyDead(member: m, incarnation: inc, from: from, now: now)
        case .left(let m, let inc): applyLeft(member: m, incarnation: inc, now: now)
        }
    }

    /// Refutes an accusation (suspect, dead, left, or a stale alive) at
    /// `accused`: a higher incarnation, gossiped alive. Lifeguard counts it against local health.
    private mutating func refute(accused: UInt64) {
        let top = max(incarnation, accused)
        setIncarnation(top == .max ? .max : top + 1)   // never traps; callers vet incarnations (MeshNode)
        counters.refutations += 1
        awareness.apply(1)
        broadcasts.enqueue(aliveSelf)
    }

    private mutating func setIncarnation(_ n: UInt64) {
        incarnation = n
        if let f = stamp { metadata = f(n) }
    }

    /// Ours: an accusation older than our incarnation means its sender missed
    /// our refutation; gossip our current alive again (no bump needed), so
    /// the answer we are about to send, and the next gossip rounds, carry it.
    private mutating func reassert() {
        if config.recheckSuspects, !broadcasts.contains(id) { broadcasts.enqueue(aliveSelf) }
    }

    private mutating func applyAlive(member: Bytes32, incarnation inc: UInt64, endpoint e: Endpoint, metadata meta: [UInt8], now: Instant) {
        if member == id {
            // Someone holds a view of us that is not ours (a former life, or a conflict): override it.
            if inc > incarnation || (inc == incarnation && (e != endpoint || meta != metadata)) { refute(accused: inc) }
            return
        }
        guard meta.count <= config.maxMetadataSize else { return }
        if let slot = table.slot(of: member) {
            let before = table[slot]
            guard inc > before.incarnation else { return }   // stale or already known
            var m = before
            m.incarnation = inc; m.endpoint = e; m.metadata = meta; m.state = .alive
            suspicions[member] = nil
            store(m, in: slot, was: before.status)
            switch before.status {
            case .alive: if e != before.endpoint || meta != before.metadata { eventQueue.append(.updated(m.member)) }
            case .suspect, .dead: eventQueue.append(.aliveAgain(m.member))
            case .left: eventQueue.append(.joined(m.member))
            }
        } else {
            let m = Member(id: member, endpoint: e, metadata: meta, incarnation: inc, state: .alive)
            add(m)
            eventQueue.append(.joined(m))
        }
        broadcasts.enqueue(.alive(member: member, incarnation: inc, endpoint: e, metadata: meta))
    }

    private mutating func applySuspect(member: Bytes32, incarnation inc: UInt64, from: Bytes32, now: Instant) {
        if member == id {
            if inc >= incarnation { refute(accused: inc) } else { reassert() }
            return
        }
        guard let slot = table.slot(of: member) else { return }
        var m = table[slot]
        guard inc >= m.incarnation else { return }
        switch m.status {
        case .dead, .left:
            return
        case .suspect:
            // Lifeguard: an independent confirmation shortens the suspicion; pass it on.
            if var s = suspicions[member], s.incarnation == inc {
                if s.confirm(from: from) {
                    suspicions[member] = s
                    broadcasts.enqueue(.suspect(member: member, incarnation: inc, from: from))
                }
                return
            }
            fallthrough   // a suspicion of a newer incarnation starts over
        case .alive:
            let was = m.status
            m.incarnation = inc
            m.state = .suspect(since: now)
            store(m, in: slot, was: was)
            suspicions[member] = newSuspicion(incarnation: inc, from: from, now: now)
            // Ours: probe a new suspect next, before the round-robin continues, with the suspicion
            // piggybacked (the buddy ping). If it refuted and we missed the refutation, its ack
            // brings the refutation back; if it is down, our failed probe confirms the suspicion.
            if config.recheckSuspects, probe?.target != member { urgentProbes.append(member) }
            counters.suspicionsStarted += 1
            eventQueue.append(.suspect(m.member))
            broadcasts.enqueue(.suspect(member: member, incarnation: inc, from: from))
        }
    }

    private func newSuspicion(incarnation: UInt64, from: Bytes32, now: Instant) -> Suspicion {
        let n = clusterSize
        // memberlist: expect suspicionMult - 2 confirmations, none when the cluster cannot supply them.
        var k = config.suspicionMult - 2
        if n - 2 < k { k = 0 }
        let minimum = Scaling.suspicionTimeout(mult: config.suspicionMult, members: n, interval: config.probeInterval)
        return Suspicion(incarnation: incarnation, from: from, start: now, minimum: minimum,
                         maximum: minimum * config.suspicionMaxTimeoutMult, expected: k)
    }

    private mutating func applyDead(member: Bytes32, incarnation inc: UInt64, from: Bytes32, now: Instant) {
        if member == id {
            if inc >= incarnation { refute(accused: inc) } else { reassert() }
            return
        }
        if from == member { applyLeft(member: member, incarnation: inc, now: now); return }
        guard let slot = table.slot(of: member) else { return }
        var m = table[slot]
        guard inc >= m.incarnation, m.isLive else { return }
        let was = m.status
        suspicions[member] = nil
        m.incarnation = inc
        m.state = .dead(since: now)
        store(m, in: slot, was: was)
        eventQueue.append(.dead(m.member))
        broadcasts.enqueue(.dead(member: member, incarnation: inc, from: from))
    }

    private mutating func applyLeft(member: Bytes32, incarnation inc: UInt64, now: Instant) {
        if member == id {
            if inc >= incarnation { refute(accused: inc) }
            return
        }
        guard let slot = table.slot(of: member) else { return }
        var m = table[slot]
        guard inc >= m.incarnation, m.status != .left else { return }
        let was = m.status
        suspicions[member] = nil
        m.incarnation = inc
        m.state = .left(since: now)
        store(m, in: slot, was: was)
        eventQueue.append(.left(m.member))
        broadcasts.enqueue(.left(member: member, incarnation: inc))
    }

    // MARK: Bookkeeping

    /// Writes `m` back to `slot`, keeping the live count and the reap candidates right.
    private mutating func store(_ m: MemberTable.Slot, in slot: Int, was: MemberStatus) {
        let wasLive = was == .alive || was == .suspect
        if wasLive != m.isLive { liveMemberCount += m.isLive ? 1 : -1 }
        table[slot] = m
        track(m)
    }

    /// Counts a stored member as a reap candidate, or not.
    private mutating func track(_ m: MemberTable.Slot) {
        switch m.status {
        case .dead: markDown(m.id, reapAt: m.since + config.deadReapTime)
        case .left: markDown(m.id, reapAt: m.since + config.leftReapTime)
        case .alive, .suspect: down.remove(m.id)
        }
    }

    private mutating func markDown(_ member: Bytes32, reapAt: Instant) {
        down.insert(member)
        nextReapAt = min(nextReapAt ?? reapAt, reapAt)
    }

    private mutating func add(_ m: Member) {
        let slot = table.append(m)
        // A new member goes to a random place in the probe round (memberlist).
        let at = Int.random(in: 0...probeOrder.count, using: &rng)
        probeOrder.insert(Int32(slot), at: at)
        if at < probeIndex { probeIndex += 1 }
        if m.state.isLive { liveMemberCount += 1 }
        track(table[slot])
    }

    private mutating func reap(now: Instant) {
        var next: Instant?
        for member in down.sorted() {
            guard let slot = table.slot(of: member) else { down.remove(member); continue }
            let m = table[slot]
            let at: Instant
            switch m.status {
            case .dead: at = m.since + config.deadReapTime
            case .left: at = m.since + config.leftReapTime
            case .alive, .suspect: down.remove(member); continue
            }
            if at > now { next = min(next ?? at, at); continue }
            down.remove(member)
            if let i = probeOrder.firstIndex(of: Int32(slot)) {
                probeOrder.remove(at: i)
                if i < probeIndex { probeIndex -= 1 }
            }
            // The last slot moves into the freed one: renumber it in the probe round.
            if let moved = table.remove(slot: slot), let i = probeOrder.firstIndex(of: Int32(moved)) {
                probeOrder[i] = Int32(slot)
            }
            eventQueue.append(.reaped(member))
        }
        nextReapAt = next
    }

    /// The slots of up to `k` distinct random members satisfying `accept` (memberlist's kRandomNodes: at most 3n tries).
    private mutating func randomMembers(_ k: Int, where accept: (MemberTable.Slot) -> Bool) -> [Int] {
        var chosen: [Int] = []
        let n = table.count
        guard k > 0, n > 0 else { return chosen }
        var tries = 0
        while chosen.count < k, tries < 3 * n {
            tries += 1
            let slot = Int.random(in: 0..<n, using: &rng)
            guard accept(table[slot]), !chosen.contains(slot) else { continue }
            chosen.append(slot)
        }
        return chosen
    }

    private func status(of member: Bytes32) -> MemberStatus? { table.slot(of: member).map { table[$0].status } }

    private mutating func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }
}
