// The STUN client on a virtual clock: RFC 8489's retransmission schedule to
// the millisecond, answers matched by transaction ID and source, the NAT
// mapping each set of answers shows, every drop counted by reason, refresh
// rounds, and random datagrams (never a trap). Answers are built here by an
// encoder of our own, so the codec is checked against a second writer.
import Testing
import MeshBase
import MeshProtocol
@testable import MeshCore

/// A STUN server's side, as a test needs it.
enum FakeSTUNServer {
    static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    /// The transaction ID of a request.
    static func transactionID(_ request: [UInt8]) -> [UInt8] { Array(request[8..<20]) }

    /// A message: header, attributes, and a FINGERPRINT when asked.
    static func message(type: UInt16, _ txid: [UInt8], attributes: [UInt8], fingerprint: Bool = true) -> [UInt8] {
        var m = u16(type) + u16(UInt16(attributes.count + (fingerprint ? 8 : 0))) + u32(STUN.magicCookie) + txid + attributes
        if fingerprint { m += u16(0x8028) + u16(4) + u32(CRC32.checksum(m) ^ 0x5354_554E) }
        return m
    }

    /// A Binding success response with XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    static func bindingSuccess(_ txid: [UInt8], mapped: Endpoint, fingerprint: Bool = true) -> [UInt8] {
        let key = u32(STUN.magicCookie) + txid
        var value: [UInt8] = [0]
        switch mapped.address {
        case .v4(let a):
            value += [1] + u16(mapped.port ^ 0x2112) + zip(u32(a.value), key).map { $0 ^ $1 }
        case .v6(let a):
            value += [2] + u16(mapped.port ^ 0x2112) + zip(a.bytes, key).map { $0 ^ $1 }
        }
        return message(type: 0x0101, txid, attributes: u16(0x0020) + u16(UInt16(value.count)) + value, fingerprint: fingerprint)
    }

    /// A Binding error response with ERROR-CODE (RFC 8489 §14.8).
    static func bindingError(_ txid: [UInt8], code: Int, reason: String) -> [UInt8] {
        var value: [UInt8] = [0, 0, UInt8(code / 100), UInt8(code % 100)] + Array(reason.utf8)
        let length = value.count
        while value.count % 4 != 0 { value.append(0) }
        return message(type: 0x0111, txid, attributes: u16(0x0009) + u16(UInt16(length)) + value)
    }
}

@Suite struct STUNClientTests {
    let serverA = Endpoint("198.51.100.1:3478")!
    let serverB = Endpoint("203.0.113.9:3478")!
    let local = Endpoint("192.168.1.2:51821")!
    let publicEndpoint = Endpoint("198.51.100.10:51821")!
    let t0 = Instant.seconds(1000)

    func client(_ servers: [Endpoint], local: Endpoint? = nil, configuration: STUNClient.Configuration = .init()) -> STUNClient {
        STUNClient(servers: servers, localEndpoint: local, configuration: configuration, random: SeededRandom(seed: 7), now: t0)
    }

    func drain(_ c: inout STUNClient) -> [(bytes: [UInt8], to: Endpoint)] {
        var out: [(bytes: [UInt8], to: Endpoint)] = []
        while let d = c.pollTransmit() { out.append(d) }
        return out
    }

    func at(_ ms: UInt64) -> Instant { t0 + .milliseconds(ms) }

    // Mutating calls, for use inside #expect (which cannot mutate its operands).
    func receive(_ c: inout STUNClient, _ bytes: [UInt8], from: Endpoint, now: Instant) -> Bool { c.receive(bytes, from: from, now: now) }
    func takeChanges(_ c: inout STUNClient) -> Bool { c.takeChanges() }
    func pollTransmit(_ c: inout STUNClient) -> (bytes: [UInt8], to: Endpoint)? { c.pollTransmit() }

    /// Starts a round and answers each server (in order) with its mapped endpoint, nil for silence.
    func round(_ c: inout STUNClient, now: Instant, answers: [Endpoint?]) {
        c.start(now: now)
        let requests = drain(&c)
        for (request, mapped) in zip(requests, answers) {
            guard let mapped else { continue }
            let answer = FakeSTUNServer.bindingSuccess(FakeSTUNServer.transactionID(request.bytes), mapped: mapped)
            #expect(receive(&c, answer, from: request.to, now: now + .milliseconds(10)))
        }
    }

    // MARK: Retransmissions

    /// RFC 8489 §6.2.1's example: requests at 0, 500, 1500, 3500, 7500, 15500, 31500 ms, given up at 39500 ms.
    @Test func retransmissionScheduleTimesAndCount() {
        var c = client([serverA])
        #expect(c.nextDeadline() == nil && !c.isFinished)
        c.start(now: t0)
        var sent: [(UInt64, [UInt8])] = drain(&c).map { (0, $0.bytes) }
        #expect(sent.count == 1 && sent[0].1.count == 28)
        while !c.isFinished, let deadline = c.nextDeadline() {
            c.handleTimers(now: deadline)
            for d in drain(&c) {
                #expect(d.to == serverA)
                sent.append(((deadline.nanoseconds - t0.nanoseconds) / 1_000_000, d.bytes))
            }
            #expect(deadline <= at(39_500))
        }
        #expect(sent.map(\.0) == [0, 500, 1500, 3500, 7500, 15500, 31500])
        #expect(Set(sent.map(\.1)).count == 1, "retransmissions reuse the transaction's ID and bytes")
        #expect(c.isFinished)
        #expect(c.results == [serverA: .noAnswer(requests: 7)])
        #expect(c.reflexive == nil && c.mapping == .unknown && !takeChanges(&c))
        #expect(c.nextDeadline() == at(39_500 + 60_000), "the next round, refreshInterval after this one")
    }

    @Test func timersEarlyDoNothing() {
        var c = client([serverA])
        c.start(now: t0)
        _ = drain(&c)
        c.handleTimers(now: at(499))
        #expect(pollTransmit(&c) == nil)
        #expect(c.nextDeadline() == at(500))
        c.handleTimers(now: at(500))
        #expect(pollTransmit(&c) != nil)
        #expect(c.nextDeadline() == at(1500))
    }

    @Test func aConfiguredScheduleIsFollowed() {
        var c = client([serverA], configuration: .init(initialRTO: .milliseconds(100), maxRequests: 3, lastWaitFactor: 4))
        c.start(now: t0)
        var times: [Instant] = [t0]
        _ = drain(&c)
        while !c.isFinished, let deadline = c.nextDeadline() {
            c.handleTimers(now: deadline)
            if !drain(&c).isEmpty { times.append(deadline) }
        }
        #expect(times == [t0, at(100), at(300)])
        #expect(c.results[serverA] == .noAnswer(requests: 3))
        // 300 ms + 4 × 100 ms.
        #expect(c.nextDeadline() == at(700) + .seconds(60))
    }

    @Test func nonsenseConfigurationNeverTraps() {
        var c = client([serverA], configuration: .init(initialRTO: .zero - .seconds(1), maxRequests: -3, lastWaitFactor: 0, refreshInterval: .zero))
        c.start(now: t0)
        #expect(drain(&c).count == 1)
        c.handleTimers(now: c.nextDeadline()!)
        #expect(c.isFinished && c.results[serverA] == .noAnswer(requests: 1))
        var big = client([serverA], configuration: .init(initialRTO: .seconds(1_000_000_000), maxRequests: 200, lastWaitFactor: .max))
        big.start(now: t0)
        for _ in 0..<300 { if let d = big.nextDeadline() { big.handleTimers(now: d) } }
        #expect(big.nextDeadline() != nil)
    }

    // MARK: Answers

    @Test func anAnswerStopsRetransmissionAndRecordsTheRTT() {
        var c = client([serverA])
        c.start(now: t0)
        let request = drain(&c)[0]
        let txid = FakeSTUNServer.transactionID(request.bytes)
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint), from: serverA, now: at(12)))
        #expect(c.results == [serverA: .mapped(publicEndpoint, rtt: .milliseconds(12))])
        #expect(c.reflexive == publicEndpoint && c.mapping == .unknown)
        #expect(c.isFinished && takeChanges(&c) && !takeChanges(&c))
        #expect(c.nextDeadline() == at(12) + .seconds(60))
        c.handleTimers(now: at(5000))
        #expect(pollTransmit(&c) == nil, "no retransmission after the answer")
        // A duplicate (the answer to a retransmission) is ignored, not counted.
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: Endpoint("192.0.2.99:1")!), from: serverA, now: at(5001)))
        #expect(c.results[serverA] == .mapped(publicEndpoint, rtt: .milliseconds(12)) && c.drops.isEmpty)
    }

    @Test func anAnswerAfterRetransmissionsTimesTheLatestRequest() {
        var c = client([serverA])
        c.start(now: t0)
        let txid = FakeSTUNServer.transactionID(drain(&c)[0].bytes)
        c.handleTimers(now: at(500))
        c.handleTimers(now: at(1500))
        #expect(drain(&c).count == 2)
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint), from: serverA, now: at(1530)))
        #expect(c.results[serverA] == .mapped(publicEndpoint, rtt: .milliseconds(30)))
        #expect(c.isFinished && c.nextDeadline() == at(1530) + .seconds(60))
    }

    @Test func anErrorResponseEndsTheTransaction() {
        var c = client([serverA])
        c.start(now: t0)
        let txid = FakeSTUNServer.transactionID(drain(&c)[0].bytes)
        #expect(receive(&c, FakeSTUNServer.bindingError(txid, code: 420, reason: "Unknown\u{1b}[31m Attribute"), from: serverA, now: at(5)))
        #expect(c.results[serverA] == .error(code: 420, reason: "Unknown[31m Attribute"))
        #expect(c.isFinished && c.reflexive == nil && c.drops.isEmpty)
    }

    @Test func anIPv6Answer() {
        let v6server = Endpoint("[2001:db8::3478]:3478")!, mapped = Endpoint("[2001:db8:1::10]:51821")!
        var c = client([v6server])
        c.start(now: t0)
        let request = drain(&c)[0]
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(FakeSTUNServer.transactionID(request.bytes), mapped: mapped, fingerprint: false),
                          from: v6server, now: at(3)))
        #expect(c.reflexive == mapped)
    }

    /// A dual-stack socket reporting the server as ::ffff:a.b.c.d is the same server.
    @Test func aV4MappedSourceIsTheServer() {
        var c = client([serverA])
        c.start(now: t0)
        let txid = FakeSTUNServer.transactionID(drain(&c)[0].bytes)
        let mappedSource = Endpoint(.v6(IPv6Address("::ffff:198.51.100.1")!), port: 3478)
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint), from: mappedSource, now: at(1)))
        #expect(c.reflexive == publicEndpoint && c.drops.isEmpty)
    }

    // MARK: Mapping

    @Test func twoServersSameMappingIsEndpointIndependent() {
        var c = client([serverA, serverB], local: local)
        round(&c, now: t0, answers: [publicEndpoint, publicEndpoint])
        #expect(c.isFinished && c.mapping == .endpointIndependent && c.reflexive == publicEndpoint)
        #expect(c.results[serverA]?.mapped == publicEndpoint && c.results[serverB]?.mapped == publicEndpoint)
        #expect(takeChanges(&c) && !takeChanges(&c))
    }

    @Test func twoServersDifferentMappingsAreEndpointDependent() {
        var c = client([serverA, serverB], local: local)
        round(&c, now: t0, answers: [publicEndpoint, Endpoint("198.51.100.10:40001")!])
        #expect(c.mapping == .endpointDependent)
        #expect(c.reflexive == publicEndpoint, "the first server's answer")
    }

    @Test func mappedEqualToLocalIsNoNAT() {
        var c = client([serverA, serverB], local: publicEndpoint)
        round(&c, now: t0, answers: [publicEndpoint, publicEndpoint])
        #expect(c.mapping == .none)
        var one = client([serverA], local: publicEndpoint)
        round(&one, now: t0, answers: [publicEndpoint])
        #expect(one.mapping == .none && one.reflexive == publicEndpoint)
    }

    @Test func oneAnswerIsUnknown() {
        var c = client([serverA], local: local)
        round(&c, now: t0, answers: [publicEndpoint])
        #expect(c.mapping == .unknown && c.reflexive == publicEndpoint)
        // Two servers, one silent: still one answer.
        var d = client([serverA, serverB], local: local)
        round(&d, now: t0, answers: [nil, publicEndpoint])
        #expect(d.mapping == .unknown && d.reflexive == publicEndpoint && !d.isFinished)
        d.endRound(now: at(3000))
        #expect(d.isFinished && d.results[serverA] == .noAnswer(requests: 1) && d.mapping == .unknown)
    }

    /// Only answers of the first answer's family are compared.
    @Test func anIPv6AnswerIsNoEvidenceAboutTheIPv4NAT() {
        let v6server = Endpoint("[2001:db8::3478]:3478")!
        var c = client([serverA, v6server, serverB], local: local)
        round(&c, now: t0, answers: [publicEndpoint, Endpoint("[2001:db8:1::10]:51821")!, publicEndpoint])
        #expect(c.mapping == .endpointIndependent)
    }

    @Test func duplicateServersAreAskedOnce() {
        var c = client([serverA, serverA, serverB])
        #expect(c.servers == [serverA, serverB])
        c.start(now: t0)
        #expect(drain(&c).map(\.to) == [serverA, serverB])
    }

    @Test func noServersFinishAtOnceAndNeverWake() {
        var c = client([])
        c.start(now: t0)
        #expect(c.isFinished && pollTransmit(&c) == nil && c.nextDeadline() == nil && c.results.isEmpty)
    }

    // MARK: Drops

    @Test func aSpoofedAnswerIsDroppedAndCounted() {
        var c = client([serverA])
        c.start(now: t0)
        let txid = FakeSTUNServer.transactionID(drain(&c)[0].bytes)
        let spoof = FakeSTUNServer.bindingSuccess(txid, mapped: Endpoint("192.0.2.66:6666")!)
        #expect(receive(&c, spoof, from: Endpoint("192.0.2.66:3478")!, now: at(1)))
        #expect(receive(&c, spoof, from: Endpoint("198.51.100.1:3479")!, now: at(2)), "right address, wrong port")
        #expect(c.drops == [STUNClient.unexpectedSource: 2])
        #expect(c.reflexive == nil && c.results.isEmpty && !c.isFinished)
        c.handleTimers(now: at(500))
        #expect(pollTransmit(&c) != nil, "still retransmitting")
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint), from: serverA, now: at(510)))
        #expect(c.reflexive == publicEndpoint)
        // After the answer, a spoof is still counted.
        #expect(receive(&c, spoof, from: Endpoint("192.0.2.66:3478")!, now: at(600)))
        #expect(c.drops == [STUNClient.unexpectedSource: 3])
    }

    @Test func aWrongTransactionIDIsDroppedAndCounted() {
        var c = client([serverA])
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(Array(repeating: 1, count: 12), mapped: publicEndpoint), from: serverA, now: t0),
                "before any round")
        c.start(now: t0)
        var txid = FakeSTUNServer.transactionID(drain(&c)[0].bytes)
        txid[11] ^= 1
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint), from: serverA, now: at(1)))
        #expect(c.drops == [STUNClient.unknownTransaction: 2] && c.reflexive == nil && !c.isFinished)
    }

    @Test func malformedAnswersAreDroppedWithTheCodecsReason() {
        var c = client([serverA])
        c.start(now: t0)
        let txid = FakeSTUNServer.transactionID(drain(&c)[0].bytes)
        let good = FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint)
        var b = good; b[3] ^= 4                       // length disagrees with the datagram
        #expect(receive(&c, b, from: serverA, now: at(1)))
        b = good; b[b.count - 1] ^= 0xFF              // FINGERPRINT
        #expect(receive(&c, b, from: serverA, now: at(2)))
        b = good; b[1] = 0x01; b[0] = 0x00            // a request, not a response
        #expect(receive(&c, b, from: serverA, now: at(3)))
        #expect(receive(&c, FakeSTUNServer.message(type: 0x0101, txid, attributes: []), from: serverA, now: at(4)))
        #expect(receive(&c, FakeSTUNServer.message(type: 0x0101, txid, attributes: [0, 0x7F, 0, 4, 1, 2, 3, 4]), from: serverA, now: at(5)))
        #expect(c.drops == ["malformed": 2, "bad fingerprint": 1, "no address": 1, "unknown required attribute": 1])
        #expect(!c.isFinished, "a bad datagram does not end the transaction")
        #expect(receive(&c, good, from: serverA, now: at(6)))
        #expect(c.reflexive == publicEndpoint)
    }

    @Test func everyCodecFailureHasAReason() {
        let failures: [STUN.Failure] = [.notSTUN("x"), .otherTransaction, .malformed("x"), .badFingerprint,
                                        .unknownRequiredAttribute(1), .errorResponse(code: 400, reason: "x"), .noAddress]
        let reasons = failures.map(STUNClient.dropReason)
        #expect(Set(reasons).count == failures.count)
        #expect(STUNClient.dropReason(.otherTransaction) == STUNClient.unknownTransaction)
    }

    @Test func nonSTUNBytesAreNotOurs() {
        var c = client([serverA])
        c.start(now: t0)
        _ = drain(&c)
        let handshake: [UInt8] = [1, 0, 0, 0] + Array(repeating: 0x42, count: 144)   // a WireGuard initiation
        #expect(!receive(&c, handshake, from: serverA, now: at(1)))
        #expect(!receive(&c, [], from: serverA, now: at(1)))
        #expect(!receive(&c, Array("hello".utf8), from: serverA, now: at(1)))
        #expect(c.drops.isEmpty)
    }

    /// Random datagrams, with and without our transaction ID, from the server and elsewhere: no trap, and counted.
    @Test func randomDatagramsNeverTrap() {
        var c = client([serverA, serverB])
        c.start(now: t0)
        let ids = drain(&c).map { FakeSTUNServer.transactionID($0.bytes) }
        var rng = SeededRandom(seed: 99)
        var stun = 0
        for i in 0..<20_000 {
            let n = Int(rng.next() % 120)
            var b = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n >= 20, i % 2 == 0 {
                b[0] &= 0x3F
                b.replaceSubrange(4..<8, with: FakeSTUNServer.u32(STUN.magicCookie))
                if i % 4 == 0 { b.replaceSubrange(8..<20, with: ids[i % 8 == 0 ? 0 : 1]) }
            }
            if c.receive(b, from: i % 3 == 0 ? serverB : serverA, now: at(1)) { stun += 1 }
        }
        #expect(c.drops.values.reduce(0, +) == UInt64(stun))
    }

    // MARK: Rounds

    @Test func aRefreshRoundAfterTheInterval() {
        var c = client([serverA])
        round(&c, now: t0, answers: [publicEndpoint])
        #expect(c.isFinished && takeChanges(&c))
        let refresh = at(10) + .seconds(60)
        #expect(c.nextDeadline() == refresh)
        c.handleTimers(now: refresh - .milliseconds(1))
        #expect(pollTransmit(&c) == nil && c.isFinished)
        c.handleTimers(now: refresh)
        #expect(!c.isFinished)
        let request = drain(&c)
        #expect(request.count == 1 && request[0].to == serverA)
        #expect(c.nextDeadline() == refresh + .milliseconds(500))
        // The round in progress keeps the last round's view.
        #expect(c.reflexive == publicEndpoint && c.results[serverA]?.mapped == publicEndpoint)
        let txid = FakeSTUNServer.transactionID(request[0].bytes)
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(txid, mapped: publicEndpoint), from: serverA, now: refresh + .milliseconds(8)))
        #expect(c.isFinished && c.results[serverA] == .mapped(publicEndpoint, rtt: .milliseconds(8)))
        #expect(!takeChanges(&c), "nothing changed")
    }

    @Test func everyRoundHasFreshTransactionIDs() {
        var c = client([serverA, serverB])
        c.start(now: t0)
        let first = drain(&c).map { FakeSTUNServer.transactionID($0.bytes) }
        c.start(now: at(1))
        let second = drain(&c).map { FakeSTUNServer.transactionID($0.bytes) }
        #expect(Set(first + second).count == 4)
        // An answer to the abandoned round is unknown now.
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(first[0], mapped: publicEndpoint), from: serverA, now: at(2)))
        #expect(c.drops == [STUNClient.unknownTransaction: 1] && c.reflexive == nil)
    }

    @Test func aChangedMappingIsReportedOnceWhenTheRoundEnds() {
        var c = client([serverA, serverB], local: local)
        round(&c, now: t0, answers: [publicEndpoint, publicEndpoint])
        #expect(c.mapping == .endpointIndependent && takeChanges(&c))
        // The NAT rebinds: a new public port, and now a different one per server.
        let refresh = at(10) + .seconds(60)
        c.handleTimers(now: refresh)
        let requests = drain(&c)
        #expect(requests.count == 2)
        let newA = Endpoint("198.51.100.10:40000")!, newB = Endpoint("198.51.100.10:40001")!
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(FakeSTUNServer.transactionID(requests[0].bytes), mapped: newA), from: serverA, now: refresh + .milliseconds(5)))
        #expect(!takeChanges(&c) && c.reflexive == publicEndpoint && c.mapping == .endpointIndependent, "no flicker mid-round")
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(FakeSTUNServer.transactionID(requests[1].bytes), mapped: newB), from: serverB, now: refresh + .milliseconds(6)))
        #expect(c.isFinished && c.reflexive == newA && c.mapping == .endpointDependent)
        #expect(takeChanges(&c) && !takeChanges(&c))
    }

    @Test func theFirstRoundReportsEachAnswerAtOnce() {
        var c = client([serverA, serverB], local: local)
        c.start(now: t0)
        let requests = drain(&c)
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(FakeSTUNServer.transactionID(requests[1].bytes), mapped: publicEndpoint), from: serverB, now: at(4)))
        #expect(!c.isFinished && c.reflexive == publicEndpoint && c.mapping == .unknown && takeChanges(&c))
        #expect(receive(&c, FakeSTUNServer.bindingSuccess(FakeSTUNServer.transactionID(requests[0].bytes), mapped: publicEndpoint), from: serverA, now: at(9)))
        #expect(c.isFinished && c.mapping == .endpointIndependent && takeChanges(&c))
    }

    @Test func endRoundRecordsTheSilentAsNoAnswer() {
        var c = client([serverA, serverB])
        c.start(now: t0)
        _ = drain(&c)
        c.handleTimers(now: at(500))
        c.handleTimers(now: at(1500))
        c.endRound(now: at(3000))
        #expect(c.isFinished && pollTransmit(&c) == nil)
        #expect(c.results == [serverA: .noAnswer(requests: 3), serverB: .noAnswer(requests: 3)])
        c.endRound(now: at(3001))   // nothing running: nothing happens
        #expect(c.nextDeadline() == at(3000) + .seconds(60))
    }
}
