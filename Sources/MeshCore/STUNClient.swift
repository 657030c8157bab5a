// A STUN client (RFC 8489 Binding, §6.2.1 retransmissions over UDP): asks
// every configured server what address and port our datagrams arrive from
// (the server-reflexive endpoint), and from the answers tells how the NAT in
// front of us maps (RFC 4787 §4.1: endpoint-independent or -dependent).
// Sans-IO: bytes in (`receive`), bytes out (`pollTransmit`), time passed in as
// `now`, the next time it needs attention out (`nextDeadline`). It never
// reads a clock, never sleeps, never blocks: a server that does not answer is
// recorded as no answer when its transaction times out, and the round ends.
//
// One round is one transaction per server, each with a fresh 96-bit
// transaction ID. A transaction's retransmissions reuse its ID and double the
// RTO (RFC 8489 §6.2.1, with the defaults below):
//
//     request  1    2    3     4     5      6      7           gives up
//     time     0  500 1500  3500  7500  15500  31500 ms ... 39500 ms (31500 + Rm·RTO)
//
// Round lifecycle:
//
//     idle ──start──► running ──every transaction answered, failed or timed out──► finished
//                        ▲                                                            │
//                        └───────────── handleTimers, refreshInterval later ◄─────────┘
//
// An answer is taken only when it carries a transaction ID of the current
// round AND comes from the endpoint that transaction was sent to (a right ID
// from elsewhere is spoofed: counted as "unexpected source"). A duplicate
// answer (one per retransmission) is ignored. Unusable STUN datagrams are
// counted in `drops` by reason; datagrams that are not STUN at all are left to
// the caller (`receive` returns false), since the socket is shared.
//
// What the client reports (`results`, `reflexive`, `mapping`) is the last
// finished round's view; during the very first round it grows answer by
// answer, so the first answer is usable at once. Later rounds replace the
// view only when they finish, so a refresh in progress never makes the
// mapping flicker.
//
// Transaction IDs come from the `SeededRandom` passed in: seed it from the
// system's secure random source (RFC 8489 §6: IDs must be hard to guess, as
// they are the only thing tying an answer to our request).
import MeshBase
import MeshProtocol

/// How the NAT in front of this node maps our UDP endpoint (RFC 4787 §4.1).
public enum NATMapping: String, Sendable {
    /// Not enough answers to tell.
    case unknown
    /// No NAT: the servers see our own address and port.
    case none
    /// The same public endpoint toward every destination: hole punching works.
    case endpointIndependent = "endpoint-independent"
    /// A different public endpoint per destination: peers behind NATs need a relay.
    case endpointDependent = "endpoint-dependent"
}

public struct STUNClient: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// RTO: the wait before the first retransmission, doubled after each.
        /// 500 ms: RFC 8489 §6.2.1's recommended lower bound for an unknown path.
        public var initialRTO: Duration
        /// Rc: requests sent in all before giving up. 7: RFC 8489 §6.2.1's default.
        public var maxRequests: Int
        /// Rm: after the last request, wait Rm × initialRTO for an answer.
        /// 16: RFC 8489 §6.2.1's default (8 s with a 500 ms RTO).
        public var lastWaitFactor: Int
        /// Time from the end of one round to the start of the next. 60 s: NAT
        /// UDP bindings last at least 2 minutes (RFC 4787 REQ-5), so a mapping
        /// change is noticed well within a binding's life, at the cost of one
        /// small request per server per minute.
        public var refreshInterval: Duration

        public init(initialRTO: Duration = .milliseconds(500), maxRequests: Int = 7, lastWaitFactor: Int = 16,
                    refreshInterval: Duration = .seconds(60)) {
            self.initialRTO = initialRTO
            self.maxRequests = maxRequests
            self.lastWaitFactor = lastWaitFactor
            self.refreshInterval = refreshInterval
        }

        /// RFC 8489's defaults.
        public static let `default` = Configuration()

        /// Values that cannot work replaced by the nearest that can: at least
        /// 1 ms RTO, one request, a last wait factor of 1, and 1 s between rounds.
        var normalized: Configuration {
            var c = self
            if c.initialRTO < .milliseconds(1) { c.initialRTO = .milliseconds(1) }
            c.maxRequests = max(1, c.maxRequests)
            c.lastWaitFactor = max(1, c.lastWaitFactor)
            if c.refreshInterval < .seconds(1) { c.refreshInterval = .seconds(1) }
            return c
        }
    }

    /// What one server said in its latest finished transaction.
    public enum ServerResult: Equatable, Sendable {
        /// It saw us at `endpoint`. `rtt` runs from the latest request sent to
        /// the answer: exact when one request was sent, a lower bound after
        /// retransmissions (they share the ID, so the answer may be to an earlier one).
        case mapped(Endpoint, rtt: Duration)
        /// No answer after `requests` requests (timed out, or the round was ended).
        case noAnswer(requests: Int)
        /// A Binding error response (RFC 8489 §14.8). `reason` is the server's
        /// text reduced to printable ASCII, at most 128 characters.
        case error(code: Int, reason: String)

        /// The mapped endpoint, when the server answered with one.
        public var mapped: Endpoint? {
            if case .mapped(let e, _) = self { return e }
            return nil
        }
    }

    /// Drop reasons (the keys of `drops`) beyond the codec's.
    public static let unexpectedSource = "unexpected source"
    public static let unknownTransaction = "unknown transaction"

    /// The `drops` key for a codec failure: stable words, never the detail
    /// (which may quote bytes an attacker chose).
    public static func dropReason(_ failure: STUN.Failure) -> String {
        switch failure {
        case .notSTUN: "not STUN"
        case .otherTransaction: unknownTransaction
        case .malformed: "malformed"
        case .badFingerprint: "bad fingerprint"
        case .unknownRequiredAttribute: "unknown required attribute"
        case .errorResponse: "error response"
        case .noAddress: "no address"
        }
    }

    struct Transaction {
        enum State: Equatable {
            /// Sent `requests` times, the latest at `lastSent`; at `due` comes
            /// the next retransmission, or the timeout after the last one.
            case waiting(requests: Int, lastSent: Instant, due: Instant)
            case concluded
        }
        let server: Endpoint
        let id: [UInt8]
        let request: [UInt8]
        var state: State
    }

    enum Phase: Equatable {
        case idle
        case running
        case finished(refreshAt: Instant)
    }

    public let servers: [Endpoint]
    public let localEndpoint: Endpoint?
    public let configuration: Configuration
    var random: SeededRandom
    var phase: Phase = .idle
    var transactions: [Transaction] = []
    /// The current round's conclusions, published when it finishes.
    var roundResults: [Endpoint: ServerResult] = [:]
    var hasFinishedRound = false
    var outbox: [(bytes: [UInt8], to: Endpoint)] = []
    var changed = false

    /// Per server: its latest answer, error, or no answer (servers not yet
    /// concluded are absent). See the file header for when this changes.
    public private(set) var results: [Endpoint: ServerResult] = [:]
    /// Our public endpoint: the mapped endpoint of the first server, in server order, that answered.
    public private(set) var reflexive: Endpoint?
    public private(set) var mapping: NATMapping = .unknown
    /// STUN datagrams not taken, by reason: `dropReason(_:)` of the codec's
    /// failure, `unexpectedSource`, `unknownTransaction`.
    public private(set) var drops: [String: UInt64] = [:]

    /// `servers` in order of preference (duplicates dropped); `localEndpoint`:
    /// the address and port the socket sends from, when known, to recognise
    /// "no NAT". Nothing is sent before `start`.
    public init(servers: [Endpoint], localEndpoint: Endpoint?, configuration: Configuration = .init(),
                random: SeededRandom, now: Instant) {
        var seen = Set<Endpoint>()
        self.servers = servers.map(Self.normalized).filter { seen.insert($0).inserted }
        self.localEndpoint = localEndpoint.map(Self.normalized)
        self.configuration = configuration.normalized
        self.random = random
    }

    // MARK: Inputs

    /// Starts a round now: one transaction with a fresh ID per server, its
    /// first request queued for `pollTransmit`. A round in progress is
    /// abandoned (its unanswered servers are not recorded; late answers to it
    /// count as unknown transactions).
    public mutating func start(now: Instant) {
        transactions = []
        roundResults = [:]
        outbox = []
        phase = .running
        for server in servers {
            let id = nextTransactionID()
            let request = STUN.bindingRequest(transactionID: id)
            transactions.append(Transaction(server: server, id: id, request: request,
                                            state: .waiting(requests: 1, lastSent: now, due: now + retransmissionWait(after: 1))))
            outbox.append((request, server))
        }
        finishRoundIfDone(now: now)
    }

    /// Retransmits what is due, gives up on transactions past their last
    /// wait, and starts the next round when `refreshInterval` has passed since
    /// the last one finished. Call it at `nextDeadline()` (earlier or later is harmless).
    public mutating func handleTimers(now: Instant) {
        switch phase {
        case .idle:
            return
        case .finished(let refreshAt):
            if now >= refreshAt, !servers.isEmpty { start(now: now) }
            return
        case .running:
            break
        }
        for i in transactions.indices {
            guard case .waiting(let requests, _, let due) = transactions[i].state, now >= due else { continue }
            if requests < configuration.maxRequests {
                let sent = requests + 1
                transactions[i].state = .waiting(requests: sent, lastSent: now, due: now + retransmissionWait(after: sent))
                outbox.append((transactions[i].request, transactions[i].server))
            } else {
                conclude(i, .noAnswer(requests: requests))
            }
        }
        finishRoundIfDone(now: now)
    }

    /// Ends the current round now: every server still waiting is recorded as
    /// no answer (with the requests sent so far), as for a caller with a
    /// deadline of its own. Nothing happens when no round is running.
    public mutating func endRound(now: Instant) {
        guard phase == .running else { return }
        for i in transactions.indices {
            if case .waiting(let requests, _, _) = transactions[i].state { conclude(i, .noAnswer(requests: requests)) }
        }
        outbox = []
        finishRoundIfDone(now: now)
    }

    /// True when the datagram was a STUN message for this client (consumed,
    /// answer or counted drop); false if it is not STUN at all (RFC 8489 §6:
    /// first two bits zero and the magic cookie), for the caller's other protocols.
    public mutating func receive(_ bytes: [UInt8], from: Endpoint, now: Instant) -> Bool {
        guard STUN.looksLikeSTUN(bytes) else { return false }
        let id = Array(bytes[8..<20])
        guard let i = transactions.firstIndex(where: { $0.id == id }) else {
            drop(Self.unknownTransaction)
            return true
        }
        guard Self.normalized(from) == transactions[i].server else {
            drop(Self.unexpectedSource)
            return true
        }
        guard case .waiting(_, let lastSent, _) = transactions[i].state else {
            return true   // a duplicate: the answer to a retransmission, or a late one after the timeout
        }
        do {
            let mapped = try STUN.parseBindingResponse(bytes, transactionID: id)
            conclude(i, .mapped(Self.normalized(mapped), rtt: now - lastSent))
        } catch .errorResponse(let code, let reason) {
            conclude(i, .error(code: code, reason: Self.printable(reason)))
        } catch {
            // Unusable: the transaction goes on (a good answer may still come).
            drop(Self.dropReason(error))
            return true
        }
        finishRoundIfDone(now: now)
        return true
    }

    // MARK: Outputs

    /// The next datagram to send, in order; nil when there is none.
    public mutating func pollTransmit() -> (bytes: [UInt8], to: Endpoint)? {
        outbox.isEmpty ? nil : outbox.removeFirst()
    }

    /// When `handleTimers` must next be called: the earliest retransmission
    /// or timeout of the running round, else the next refresh; nil before
    /// `start` or without servers.
    public func nextDeadline() -> Instant? {
        switch phase {
        case .idle:
            return nil
        case .finished(let refreshAt):
            return servers.isEmpty ? nil : refreshAt
        case .running:
            return transactions.compactMap { t -> Instant? in
                if case .waiting(_, _, let due) = t.state { return due }
                return nil
            }.min()
        }
    }

    /// The current round is over: every server answered, failed or was given up on.
    /// False before the first `start`.
    public var isFinished: Bool {
        if case .finished = phase { return true }
        return false
    }

    /// True once after `reflexive` or `mapping` changed (the daemon re-signs
    /// its member record then); false until the next change.
    public mutating func takeChanges() -> Bool {
        defer { changed = false }
        return changed
    }

    // MARK: Pieces

    /// The wait after request number `sent`: RTO × 2^(sent-1) before the next
    /// request, or Rm × RTO after the last one.
    func retransmissionWait(after sent: Int) -> Duration {
        let rto = configuration.initialRTO.nanosecondsClamped
        if sent >= configuration.maxRequests {
            let (ns, overflow) = rto.multipliedReportingOverflow(by: Int64(configuration.lastWaitFactor))
            return .nanoseconds(overflow ? .max : ns)
        }
        let shift = sent - 1
        guard shift < 62, rto <= Int64.max >> shift else { return .nanoseconds(Int64.max) }
        return .nanoseconds(rto << shift)
    }

    mutating func nextTransactionID() -> [UInt8] {
        let a = random.next(), b = random.next()
        return (0..<8).map { UInt8(truncatingIfNeeded: a >> (8 * UInt64($0))) }
            + (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * UInt64($0))) }
    }

    mutating func conclude(_ i: Int, _ result: ServerResult) {
        transactions[i].state = .concluded
        roundResults[transactions[i].server] = result
        if !hasFinishedRound {
            results[transactions[i].server] = result
            publish()
        }
    }

    mutating func finishRoundIfDone(now: Instant) {
        guard phase == .running, transactions.allSatisfy({ $0.state == .concluded }) else { return }
        phase = .finished(refreshAt: now + configuration.refreshInterval)
        hasFinishedRound = true
        results = roundResults
        publish()
    }

    /// Derives `reflexive` and `mapping` from `results`, noting a change.
    mutating func publish() {
        let answers = servers.compactMap { results[$0]?.mapped }
        let newReflexive = answers.first
        let newMapping = Self.classify(answers, local: localEndpoint)
        if newReflexive != reflexive || newMapping != mapping { changed = true }
        reflexive = newReflexive
        mapping = newMapping
    }

    /// The mapping the answers (mapped endpoints in server order) show. Only
    /// answers of the first answer's address family are compared: an IPv4
    /// and an IPv6 mapping are different paths, not evidence about the NAT.
    /// Distinct servers differ in address or port; RFC 4787 §4.1's test wants
    /// different addresses, and servers on one address only tell
    /// port-dependent from independent mapping.
    static func classify(_ answers: [Endpoint], local: Endpoint?) -> NATMapping {
        guard let first = answers.first else { return .unknown }
        let same = answers.filter { $0.address.isIPv4 == first.address.isIPv4 }
        guard same.allSatisfy({ $0 == first }) else { return .endpointDependent }
        if first == local { return .none }
        return same.count >= 2 ? .endpointIndependent : .unknown
    }

    mutating func drop(_ reason: String) { drops[reason, default: 0] &+= 1 }

    /// IPv4-mapped IPv6 addresses as IPv4, so a dual-stack socket's view and ours agree.
    static func normalized(_ e: Endpoint) -> Endpoint { Endpoint(e.address.unmapped, port: e.port) }

    static func printable(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { (0x20...0x7E).contains($0.value) }.prefix(128)))
    }
}
