// SWIMSimulator: a deterministic discrete-event simulation of N SWIM
// memberships on a virtual network. Nothing sleeps: the clock jumps from one
// event to the next (a packet arriving, a node's next deadline).
//
//   node i ──pollTransmit──► network ──(loss? partition? killed?)──► agenda
//                             latency + jitter                        │
//   node j ◄──receive(packet, from:, now:)────────────────────────────┘
//   node k ◄──handleTimers(now:) at its nextDeadline()
//
// Each node has at most one live timer event (its earliest deadline); stale
// ones are recognised and skipped. Randomness (loss, jitter, each node's
// generator) derives from one seed, so a run is repeatable.

import MeshBase
import MeshSWIM

/// A simulated mesh of SWIM memberships.
public final class SWIMSimulator {
    /// The network between nodes.
    public struct Conditions: Sendable {
        /// Probability that a packet is lost, 0...1.
        public var loss: Double
        /// One-way delay of every packet.
        public var latency: Duration
        /// Extra delay, uniform in 0...jitter.
        public var jitter: Duration

        public init(loss: Double = 0, latency: Duration = .milliseconds(1), jitter: Duration = .milliseconds(1)) {
            self.loss = loss; self.latency = latency; self.jitter = jitter
        }
    }

    /// Traffic counters of the whole network.
    public struct NetworkStats: Sendable {
        public var sent = 0
        public var delivered = 0
        public var lost = 0
        public var partitioned = 0
        public var toStoppedNode = 0
        public var bytes = 0
        /// The largest packet sent (encodedSize).
        public var largestPacket = 0
        public var packetsByKind: [String: Int] = [:]
    }

    /// One simulated node.
    public final class Node {
        public let index: Int
        public let id: Bytes32
        public let endpoint: Endpoint
        public internal(set) var membership: SWIMMembership
        /// False once killed (until restarted): receives nothing, runs no timers.
        public internal(set) var isRunning = true
        /// Every event the node reported, with when.
        public internal(set) var events: [(at: Instant, event: MembershipEvent)] = []
        public internal(set) var messagesSent = 0
        public internal(set) var bytesSent = 0
        /// Bumped by a restart; older timer events are ignored.
        var generation = 0
        var scheduledTimer: Instant?

        init(index: Int, id: Bytes32, endpoint: Endpoint, membership: SWIMMembership) {
            self.index = index; self.id = id; self.endpoint = endpoint; self.membership = membership
        }
    }

    private enum Event {
        case deliver(SWIMPacket, from: Endpoint, to: Int)
        case timer(node: Int, generation: Int)
    }

    public let config: SWIMConfig
    public var conditions: Conditions
    public private(set) var now: Instant
    public private(set) var nodes: [Node] = []
    public private(set) var stats = NetworkStats()
    /// Called with every event a node reports (node index, when, event).
    public var onEvent: ((_ node: Int, _ at: Instant, _ event: MembershipEvent) -> Void)?
    /// Whether nodes keep their events in `Node.events` (the default). Long
    /// runs of large meshes that only count events through `onEvent` turn it
    /// off: under loss every node hears of every suspicion.
    public var keepsEvents = true
    /// Partition group of each node; packets between different groups are dropped.
    private var group: [Int]
    private var byEndpoint: [Endpoint: Int] = [:]
    private var agenda = SWIMEventQueue<Event>()
    private var rng: SeededRandom
    private let seed: UInt64

    /// `count` nodes, not yet joined. Node i has endpoint 10.0.(i / 250).(i % 250 + 1):7946
    /// and a pseudo-random identity key; `metadata(i)` gives its initial blob.
    public init(nodes count: Int, config: SWIMConfig = .lan, conditions: Conditions = Conditions(), seed: UInt64,
                start: Instant = .seconds(1), metadata: (Int) -> [UInt8] = { _ in [] }) {
        self.config = config; self.conditions = conditions; self.seed = seed
        now = start
        rng = SeededRandom(seed: seed)
        group = Array(repeating: 0, count: count)
        for i in 0..<count {
            var keyRNG = SeededRandom(seed: seed &+ 0x5157_494D &+ UInt64(i))
            let id = Bytes32((0..<32).map { _ in UInt8(truncatingIfNeeded: keyRNG.next()) })!
            let ep = Endpoint(.v4(IPv4Address(10, 0, UInt8(i / 250), UInt8(i % 250 + 1))), port: 7946)
            let m = try! SWIMMembership(id: id, endpoint: ep, metadata: metadata(i), config: config,
                                        random: SeededRandom(seed: seed ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15)), now: now)
            nodes.append(Node(index: i, id: id, endpoint: ep, membership: m))
            byEndpoint[ep] = i
            schedule(i)
        }
    }

    public func node(_ i: Int) -> Node { nodes[i] }

    /// The index of the node with identity `id`.
    public func index(of id: Bytes32) -> Int? { nodes.firstIndex { $0.id == id } }

    // MARK: Driving the nodes

    /// Node `i` joins through the nodes `seeds`.
    public func join(_ i: Int, seeds: [Int]) {
        nodes[i].membership.join(seeds: seeds.map { nodes[$0].endpoint }, now: now)
        pump(i)
    }

    /// Every node joins through node `seed`, one every `spacing`.
    public func joinAll(seed: Int = 0, spacing: Duration = .zero) {
        for i in nodes.indices {
            join(i, seeds: [seed])
            if spacing > .zero { run(for: spacing) }
        }
    }

    /// Makes the nodes `set` (default: all) a converged mesh at once, without
    /// joining: each knows every other node of the set alive at its current
    /// incarnation (`SWIMMembership.assumeConverged`). No events are recorded
    /// and no packets sent; nodes outside the set are untouched.
    public func assumeConverged(_ set: [Int]? = nil) {
        let indices = set ?? Array(nodes.indices)
        let members = indices.map { nodes[$0].membership.localMember }
        for i in indices {
            nodes[i].membership.assumeConverged(with: members)
            schedule(i)
        }
    }

    public func leave(_ i: Int) {
        nodes[i].membership.leave(now: now)
        pump(i)
    }

    /// Changes node `i`'s metadata (its incarnation goes up).
    public func update(_ i: Int, metadata: [UInt8]) throws {
        try nodes[i].membership.update(metadata: metadata, now: now)
        pump(i)
    }

    /// Stops node `i`: it receives nothing and sends nothing, as a crashed process.
    public func kill(_ i: Int) { nodes[i].isRunning = false }

    /// Restarts node `i` as a fresh process with the same identity and endpoint,
    /// `incarnation` (default: one above its last) and a new generator, and joins through `seeds`.
    public func restart(_ i: Int, incarnation: UInt64? = nil, seeds: [Int]) {
        let old = nodes[i]
        old.generation += 1
        old.isRunning = true
        old.scheduledTimer = nil
        old.membership = try! SWIMMembership(id: old.id, endpoint: old.endpoint, metadata: old.membership.metadata,
                                             incarnation: incarnation ?? old.membership.incarnation + 1, config: config,
                                             random: SeededRandom(seed: seed ^ UInt64(i) ^ (UInt64(old.generation) << 40)), now: now)
        join(i, seeds: seeds)
    }

    /// Splits the network: nodes in different sets cannot talk; nodes in no set form one more group.
    public func partition(_ sets: [[Int]]) {
        group = Array(repeating: 0, count: nodes.count)
        for (g, s) in sets.enumerated() { for i in s { group[i] = g + 1 } }
    }

    /// Removes every partition.
    public func heal() { group = Array(repeating: 0, count: nodes.count) }

    /// True when `a` and `b` can exchange packets now.
    public func canTalk(_ a: Int, _ b: Int) -> Bool { group[a] == group[b] }

    // MARK: Running

    /// Runs every event up to and including `end`; the clock ends at `end`.
    public func run(until end: Instant) {
        while let t = agenda.nextTime, t <= end {
            let (time, event) = agenda.pop()!
            now = time
            switch event {
            case .deliver(let packet, let from, let to):
                let n = nodes[to]
                guard n.isRunning else { stats.toStoppedNode += 1; continue }
                stats.delivered += 1
                n.membership.receive(packet, from: from, now: now)
                pump(to)
            case .timer(let i, let generation):
                let n = nodes[i]
                guard n.isRunning, n.generation == generation, n.scheduledTimer == time else { continue }
                n.scheduledTimer = nil
                n.membership.handleTimers(now: now)
                pump(i)
            }
        }
        now = max(now, end)
    }

    public func run(for d: Duration) { run(until: now + d) }

    /// Runs until `condition` holds (checked every `step`) or `timeout` passes; returns when it first held.
    @discardableResult
    public func run(until condition: (SWIMSimulator) -> Bool, step: Duration = .milliseconds(100), timeout: Duration) -> Instant? {
        let end = now + timeout
        while now < end {
            if condition(self) { return now }
            run(until: min(end, now + step))
        }
        return condition(self) ? now : nil
    }

    // MARK: Views

    /// True when every running node in `set` sees every other node in `set` alive (and running).
    public func converged(_ set: [Int]? = nil) -> Bool {
        let members = (set ?? Array(nodes.indices)).filter { nodes[$0].isRunning }
        for i in members {
            let m = nodes[i].membership
            for j in members where j != i {
                guard let v = m.member(nodes[j].id), v.state == .alive else { return false }
            }
        }
        return true
    }

    /// The state node `observer` holds for node `subject`.
    public func state(of subject: Int, seenBy observer: Int) -> MemberState? {
        nodes[observer].membership.member(nodes[subject].id)?.state
    }

    /// The first time `observer` reported an event about `subject` matching `match`, at or after `since`.
    public func firstEvent(about subject: Int, seenBy observer: Int, since: Instant = .zero,
                           where match: (MembershipEvent) -> Bool) -> Instant? {
        let id = nodes[subject].id
        return nodes[observer].events.first { $0.at >= since && $0.event.memberID == id && match($0.event) }?.at
    }

    // MARK: Plumbing

    private func pump(_ i: Int) {
        let n = nodes[i]
        while let (packet, to) = n.membership.pollTransmit() { transmit(packet, from: i, to: to) }
        while let e = n.membership.pollEvent() {
            onEvent?(i, now, e)
            if keepsEvents { n.events.append((now, e)) }
        }
        schedule(i)
    }

    private func schedule(_ i: Int) {
        let n = nodes[i]
        guard n.isRunning, let d = n.membership.nextDeadline() else { return }
        let at = max(d, now)
        if let s = n.scheduledTimer, s <= at { return }
        n.scheduledTimer = at
        agenda.push(.timer(node: i, generation: n.generation), at: at)
    }

    private func transmit(_ packet: SWIMPacket, from i: Int, to destination: Endpoint) {
        let size = packet.encodedSize
        let n = nodes[i]
        n.messagesSent += 1
        n.bytesSent += size
        stats.sent += 1
        stats.bytes += size
        stats.largestPacket = max(stats.largestPacket, size)
        stats.packetsByKind[packet.message.kind, default: 0] += 1
        guard let j = byEndpoint[destination] else { stats.lost += 1; return }
        if conditions.loss > 0, Double.random(in: 0..<1, using: &rng) < conditions.loss { stats.lost += 1; return }
        guard group[i] == group[j] else { stats.partitioned += 1; return }
        var delay = conditions.latency
        if conditions.jitter > .zero {
            delay += .nanoseconds(Int64.random(in: 0...conditions.jitter.nanosecondsClamped, using: &rng))
        }
        agenda.push(.deliver(packet, from: n.endpoint, to: j), at: now + delay)
    }
}
