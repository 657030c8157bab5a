// SWIMConfig: every tunable of the membership protocol, as a value with named
// presets. The LAN values are hashicorp/memberlist's DefaultLANConfig but
// for probing twice as often with a shorter timeout (LAN round trips are
// tiny; it halves failure detection), the WAN values its DefaultWANConfig
// (which starts from the LAN one); the few knobs memberlist does not have
// (re-join, reaping, message budget, suspect re-checks) are ours and say so.
// `memberlistLAN` is memberlist's LAN exactly, for benchmarks. The formulas that turn these into timeouts live in Scaling.swift.

/// The parameters of one SWIM membership. Every node of a mesh should use the same values.
public struct SWIMConfig: Hashable, Sendable {
    // MARK: Failure detection (SWIM, Lifeguard)

    /// Time between two probes of one member each. Scaled up by local health (Lifeguard LHA-Probe).
    public var probeInterval: Duration
    /// Time to wait for a direct ack before asking `indirectChecks` members to probe. Scaled like the interval.
    public var probeTimeout: Duration
    /// Members asked to probe indirectly (ping-req) when a direct probe gets no ack.
    public var indirectChecks: Int
    /// Suspicion timeout = suspicionMult * max(1, log10(N)) * probeInterval (the minimum, reached with enough confirmations).
    public var suspicionMult: Int
    /// A fresh suspicion waits suspicionMaxTimeoutMult times the minimum; independent confirmations shrink it (Lifeguard LHA-Suspicion).
    public var suspicionMaxTimeoutMult: Int
    /// Upper bound of the local health multiplier: probe interval and timeout grow at most this many times (Lifeguard LHA-Probe).
    public var awarenessMaxMultiplier: Int

    // MARK: Dissemination

    /// Each update is piggybacked at most retransmitMult * ceil(log10(N + 1)) times.
    public var retransmitMult: Int
    /// Time between two gossip rounds (updates sent to `gossipNodes` random members, when there are any).
    public var gossipInterval: Duration
    /// Members each gossip round goes to.
    public var gossipNodes: Int
    /// Dead members still receive gossip this long, so a wrongly declared member learns it and refutes.
    public var gossipToTheDeadTime: Duration
    /// Time between two full state exchanges with one random member (anti-entropy); scaled up above 32 members.
    public var pushPullInterval: Duration

    // MARK: Joining and healing (ours; serf's reconnect loop plays this role for memberlist)

    /// Time between two re-join attempts: a push-pull with one seed outside the mesh and one recently dead member.
    public var rejoinInterval: Duration
    /// Time between join attempts while this node knows no live member.
    public var joinRetryInterval: Duration

    // MARK: Reaping (ours)

    /// A dead member is forgotten (reaped) this long after it was declared dead; until then it is a re-join target.
    public var deadReapTime: Duration
    /// A member that left is forgotten this long after it left; until then its tombstone stops stale alive gossip.
    public var leftReapTime: Duration

    /// Ours: probe a newly suspected member next (and again after each ack while the suspicion
    /// lasts), and re-gossip our own alive when accused at an old incarnation, so a node that
    /// missed a refutation gets it from the member itself. False behaves as memberlist does.
    public var recheckSuspects: Bool
    /// Ours: a leaving member tells every live member itself (memberlist gossips
    /// the leave to the fan-out only), since a mesh that vets gossip believes a
    /// leave only from the member itself (MeshCore.MeshNode) and takes one relayed by
    /// others as a suspicion.
    public var leaveToEveryone = true

    // MARK: Implementation limits

    /// Largest encoded message, in bytes (`SWIMPacket.encodedSize`); piggybacked gossip and push-pull parts are cut to fit.
    public var maxMessageSize: Int
    /// Largest metadata blob of one member, in bytes, so that one alive update always fits in a message.
    public var maxMetadataSize: Int

    public init(probeInterval: Duration, probeTimeout: Duration, indirectChecks: Int, suspicionMult: Int,
                suspicionMaxTimeoutMult: Int, awarenessMaxMultiplier: Int, retransmitMult: Int,
                gossipInterval: Duration, gossipNodes: Int, gossipToTheDeadTime: Duration, pushPullInterval: Duration,
                rejoinInterval: Duration, joinRetryInterval: Duration, deadReapTime: Duration, leftReapTime: Duration,
                recheckSuspects: Bool, maxMessageSize: Int, maxMetadataSize: Int) {
        self.probeInterval = probeInterval; self.probeTimeout = probeTimeout; self.indirectChecks = indirectChecks
        self.suspicionMult = suspicionMult; self.suspicionMaxTimeoutMult = suspicionMaxTimeoutMult
        self.awarenessMaxMultiplier = awarenessMaxMultiplier; self.retransmitMult = retransmitMult
        self.gossipInterval = gossipInterval; self.gossipNodes = gossipNodes; self.gossipToTheDeadTime = gossipToTheDeadTime
        self.pushPullInterval = pushPullInterval; self.rejoinInterval = rejoinInterval
        self.joinRetryInterval = joinRetryInterval; self.deadReapTime = deadReapTime; self.leftReapTime = leftReapTime
        self.recheckSuspects = recheckSuspects
        self.maxMessageSize = maxMessageSize; self.maxMetadataSize = maxMetadataSize
    }

    /// A local network, low latency, little loss: memberlist's DefaultLANConfig, probing twice as often.
    public static let lan = SWIMConfig(
        probeInterval: .milliseconds(500),      // a failure check twice a second: a crashed member is gone within about 3 s in a small mesh (memberlist: 1 s)
        probeTimeout: .milliseconds(250),       // half the interval, as memberlist: LAN round trips are well under 1 ms, and 250 ms absorbs a busy host and leaves as long for indirect probes (memberlist: 500 ms)
        indirectChecks: 3,                      // use 3 nodes for the indirect ping: one lossy path does not suspect
        suspicionMult: 4,                       // suspect a node for 4 * log10(N) * interval before declaring it dead
        suspicionMaxTimeoutMult: 6,             // for 10k nodes: 4 * 4 * 0.5 s = 8 s minimum, up to 48 s without confirmations
        awarenessMaxMultiplier: 8,              // probe interval backs off to 4 s at most on a struggling node
        retransmitMult: 4,                      // retransmit a message 4 * log10(N + 1) times: reaches all with high probability
        gossipInterval: .milliseconds(200),     // gossip often: dissemination latency is a few gossip rounds
        gossipNodes: 3,                         // fan-out 3: each round reaches three members
        gossipToTheDeadTime: .seconds(30),      // same as push-pull: a wrongly dead node hears of it before the next anti-entropy
        pushPullInterval: .seconds(30),         // full state sync every 30 s: repairs anything gossip lost, cheaply
        rejoinInterval: .seconds(30),           // serf's ReconnectInterval: a healed partition merges within about this long
        joinRetryInterval: .seconds(2),         // a lost join costs two seconds, not a re-join interval; a few RTTs at most
        deadReapTime: .seconds(24 * 3600),      // serf's ReconnectTimeout: partitions shorter than a day heal by themselves
        leftReapTime: .seconds(24 * 3600),      // serf's TombstoneTimeout: stale alive gossip cannot resurrect a left member
        recheckSuspects: true,                  // without it a live member was declared dead at 10 % loss (docs/swim.md)
        maxMessageSize: 1114,                   // the authenticated envelope's payload limit (MeshProtocol.Envelope.maxPayload): 1280-byte IPv6 MTU minus IPv6, UDP, envelope header and signature
        maxMetadataSize: 512                    // memberlist's MetaMaxSize: an alive update always fits with room for more
    )

    /// memberlist's DefaultWANConfig: starts from `.lan` and slows what latency and loss make unsafe.
    public static let wan: SWIMConfig = {
        var c = SWIMConfig.lan
        c.probeInterval = .seconds(5)           // probes cost more over the internet; detection in tens of seconds is fine
        c.probeTimeout = .seconds(3)            // intercontinental RTTs and queueing, with room to spare
        c.suspicionMult = 6                     // more time for refutation to cross lossy, long paths
        c.gossipInterval = .milliseconds(500)   // fewer, fuller gossip messages
        c.gossipNodes = 4                       // a larger fan-out compensates for the slower rounds
        c.gossipToTheDeadTime = .seconds(60)    // matches the push-pull interval
        c.pushPullInterval = .seconds(60)       // anti-entropy is more expensive across the WAN
        c.joinRetryInterval = .seconds(5)       // a few WAN RTTs
        return c
    }()

    /// memberlist's DefaultLANConfig exactly (1 s probe, 500 ms timeout, no
    /// suspect re-checks): the baseline that benchmarks put beside ours.
    public static let memberlistLAN: SWIMConfig = {
        var c = SWIMConfig.lan
        c.probeInterval = .seconds(1)
        c.probeTimeout = .milliseconds(500)
        c.recheckSuspects = false
        c.leaveToEveryone = false
        return c
    }()

    /// How long a relay waits for the target's ack before it sends a nack to
    /// the requester: 80 % of the window the requester gives indirect probes
    /// (probeInterval - probeTimeout), so the nack arrives while it still counts.
    public var indirectNackDelay: Duration {
        Scaling.scale(probeInterval - probeTimeout, by: 0.8)
    }
}
