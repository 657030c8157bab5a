// The formulas and small parts of the core, ported from hashicorp/memberlist's
// own tests (util_test.go, suspicion_test.go, awareness_test.go), so our
// numbers are memberlist's numbers.
import Testing
import MeshBase
@testable import MeshSWIM

@Suite struct ScalingTests {
    @Test func logarithmsMatchKnownValues() {
        let cases: [(Double, Double)] = [(1, 0), (10, 1), (50, 1.6989700043360187), (1000, 3), (0.001, -3), (12345.678, 4.091514945)]
        for (x, expected) in cases { #expect(abs(Scaling.log10(x) - expected) < 1e-9, "log10(\(x))") }
        #expect(abs(Scaling.naturalLog(2.718281828459045) - 1) < 1e-12)
        #expect(abs(Scaling.log2(1024) - 10) < 1e-12)
    }

    /// memberlist util_test.go TestSuspicionTimeout: suspicionTimeout(3, n, 1 s) / 3.
    @Test func suspicionTimeoutAsMemberlist() {
        let table: [(Int, Int64)] = [(5, 1000), (10, 1000), (50, 1698), (100, 2000), (500, 2698), (1000, 3000)]
        for (n, ms) in table {
            #expect(Scaling.suspicionTimeout(mult: 3, members: n, interval: .seconds(1)) / 3 == .milliseconds(ms), "n = \(n)")
        }
    }

    /// memberlist util_test.go TestRetransmitLimit.
    @Test func retransmitLimitAsMemberlist() {
        #expect(Scaling.retransmitLimit(mult: 3, members: 0) == 0)
        #expect(Scaling.retransmitLimit(mult: 3, members: 1) == 3)
        #expect(Scaling.retransmitLimit(mult: 3, members: 99) == 6)
        #expect(Scaling.retransmitLimit(mult: 4, members: 200) == 12)
    }

    /// memberlist util_test.go TestPushPullScale.
    @Test func pushPullScaleAsMemberlist() {
        for n in 0...32 { #expect(Scaling.pushPullInterval(.seconds(1), members: n) == .seconds(1)) }
        for n in 33...64 { #expect(Scaling.pushPullInterval(.seconds(1), members: n) == .seconds(2)) }
        for n in 65...128 { #expect(Scaling.pushPullInterval(.seconds(1), members: n) == .seconds(3)) }
    }

    /// memberlist suspicion_test.go TestSuspicion_remainingSuspicionTime: (confirmations, k, elapsed, min, max, remaining).
    @Test func suspicionTimeoutShrinksWithConfirmations() {
        let table: [(Int, Int, Int64, Int64, Int64, Int64)] = [
            (0, 3, 0, 2000, 30000, 30000),
            (1, 3, 2000, 2000, 30000, 14000),
            (2, 3, 3000, 2000, 30000, 4810),
            (3, 3, 4000, 2000, 30000, -2000),
            (4, 3, 5000, 2000, 30000, -3000),
            (5, 3, 10000, 2000, 30000, -8000),
        ]
        for (c, k, elapsed, lo, hi, remaining) in table {
            let t = Scaling.suspicionTimeout(confirmations: c, expected: k, minimum: .milliseconds(lo), maximum: .milliseconds(hi))
            #expect(t - .milliseconds(elapsed) == .milliseconds(remaining), "confirmations \(c)")
        }
    }

    /// A Suspicion counts each confirmer once, never the first suspector, and at most k of them.
    @Test func suspicionCountsIndependentConfirmations() {
        let a = Bytes32.zero, b = Bytes32([UInt8](repeating: 1, count: 32))!, c = Bytes32([UInt8](repeating: 2, count: 32))!
        let d = Bytes32([UInt8](repeating: 3, count: 32))!
        var s = Suspicion(incarnation: 1, from: a, start: .seconds(10), minimum: .seconds(2), maximum: .seconds(30), expected: 2)
        #expect(s.deadline == .seconds(40))
        let again = s.confirm(from: a)
        #expect(!again)
        let first = s.confirm(from: b)
        #expect(first && s.deadline < .seconds(40) && s.deadline > .seconds(12))
        let twice = s.confirm(from: b)
        #expect(!twice)
        let second = s.confirm(from: c)
        #expect(second && s.deadline == .seconds(12))
        let beyond = s.confirm(from: d)
        #expect(!beyond && s.confirmations == 2)
    }

    /// memberlist awareness_test.go TestAwareness.
    @Test func awarenessAsMemberlist() {
        let steps: [(Int, Int, Int64)] = [(0, 0, 1), (-1, 0, 1), (-10, 0, 1), (1, 1, 2), (-1, 0, 1), (10, 7, 8), (-1, 6, 7),
                                          (-1, 5, 6), (-1, 4, 5), (-1, 3, 4), (-1, 2, 3), (-1, 1, 2), (-1, 0, 1), (-1, 0, 1)]
        var a = Awareness(maximum: 8)
        for (delta, score, seconds) in steps {
            a.apply(delta)
            #expect(a.score == score && a.scale(.seconds(1)) == .seconds(seconds))
        }
    }

    @Test func presetsAreMemberlistDefaults() {
        let lan = SWIMConfig.lan, wan = SWIMConfig.wan, ml = SWIMConfig.memberlistLAN
        // Ours probes twice as often on a LAN; memberlistLAN is memberlist's DefaultLANConfig exactly.
        #expect(lan.probeInterval == .milliseconds(500) && lan.probeTimeout == .milliseconds(250) && lan.indirectChecks == 3)
        #expect(ml.probeInterval == .seconds(1) && ml.probeTimeout == .milliseconds(500) && !ml.recheckSuspects && lan.recheckSuspects)
        #expect(ml.suspicionMult == lan.suspicionMult && ml.gossipInterval == lan.gossipInterval && ml.pushPullInterval == lan.pushPullInterval)
        #expect(lan.suspicionMult == 4 && lan.suspicionMaxTimeoutMult == 6 && lan.retransmitMult == 4 && lan.awarenessMaxMultiplier == 8)
        #expect(lan.gossipInterval == .milliseconds(200) && lan.gossipNodes == 3 && lan.pushPullInterval == .seconds(30))
        #expect(wan.probeInterval == .seconds(5) && wan.probeTimeout == .seconds(3) && wan.suspicionMult == 6)
        #expect(wan.gossipInterval == .milliseconds(500) && wan.gossipNodes == 4 && wan.pushPullInterval == .seconds(60))
        #expect(wan.indirectChecks == lan.indirectChecks && wan.retransmitMult == lan.retransmitMult)
        #expect(lan.indirectNackDelay == .milliseconds(200) && ml.indirectNackDelay == .milliseconds(400) && wan.indirectNackDelay == .milliseconds(1600))
    }
}
