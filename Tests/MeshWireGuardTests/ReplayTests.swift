// The kernel's anti-replay self-test (drivers/net/wireguard/selftest/counter.c)
// case by case, plus a comparison against a naive model of the window.
import Testing
import MeshWireGuard

/// Feeds `cases` (counter, expected verdict) to `window` in order; returns the
/// 1-based numbers of the cases whose verdict differed, as the kernel reports
/// "nonce counter self-test N: FAIL".
private func failures(_ window: inout ReplayWindow, _ cases: [(UInt64, Bool)]) -> [Int] {
    cases.enumerated().compactMap { i, c in window.accept(c.0) == c.1 ? nil : i + 1 }
}

@Suite struct ReplayTests {
    static let window = UInt64(ReplayWindow.windowSize)
    static let reject = ReplayWindow.rejectAfterMessages

    @Test func constantsAreTheKernels() {
        #expect(ReplayWindow.windowSize == 8192 - 64)
        // U64_MAX - COUNTER_WINDOW_SIZE - 1 = 2^64 - 8130.
        #expect(ReplayWindow.rejectAfterMessages == 18_446_744_073_709_543_486)
    }

    /// counter.c's numbered T(n, v) table, from one T_INIT, in order.
    @Test func kernelSelftestTable() {
        let lim = Self.window + 1   // T_LIM
        let r = Self.reject
        let table: [(UInt64, Bool)] = [
            /*  1 */ (0, true),
            /*  2 */ (1, true),
            /*  3 */ (1, false),
            /*  4 */ (9, true),
            /*  5 */ (8, true),
            /*  6 */ (7, true),
            /*  7 */ (7, false),
            /*  8 */ (lim, true),
            /*  9 */ (lim - 1, true),
            /* 10 */ (lim - 1, false),
            /* 11 */ (lim - 2, true),
            /* 12 */ (2, true),
            /* 13 */ (2, false),
            /* 14 */ (lim + 16, true),
            /* 15 */ (3, false),
            /* 16 */ (lim + 16, false),
            /* 17 */ (lim * 4, true),
            /* 18 */ (lim * 4 - (lim - 1), true),
            /* 19 */ (10, false),
            /* 20 */ (lim * 4 - lim, false),
            /* 21 */ (lim * 4 - (lim + 1), false),
            /* 22 */ (lim * 4 - (lim - 2), true),
            /* 23 */ (lim * 4 + 1 - lim, false),
            /* 24 */ (0, false),
            /* 25 */ (r, false),
            /* 26 */ (r - 1, true),
            /* 27 */ (r, false),
            /* 28 */ (r - 1, false),
            /* 29 */ (r - 2, true),
            /* 30 */ (r + 1, false),
            /* 31 */ (r + 2, false),
            /* 32 */ (r - 2, false),
            /* 33 */ (r - 3, true),
            /* 34 */ (0, false),
        ]
        #expect(table.count == 34)
        var w = ReplayWindow()
        #expect(failures(&w, table) == [])
    }

    // The loops after the table, each from a fresh window (T_INIT).

    @Test func ascendingFullWindowThenZero() {
        var w = ReplayWindow()
        #expect(failures(&w, (1...Self.window).map { ($0, true) } + [(0, true), (0, false)]) == [])
    }

    @Test func ascendingOnePastTheWindowThenOne() {
        var w = ReplayWindow()
        #expect(failures(&w, (2...(Self.window + 1)).map { ($0, true) } + [(1, true), (0, false)]) == [])
    }

    @Test func descendingFromWindow() {
        var w = ReplayWindow()
        #expect(failures(&w, (0...Self.window).reversed().map { ($0, true) }) == [])
    }

    @Test func descendingFromOnePastWindowThenZero() {
        var w = ReplayWindow()
        #expect(failures(&w, (1...(Self.window + 1)).reversed().map { ($0, true) } + [(0, false)]) == [])
    }

    @Test func descendingToOneThenFrontThenZero() {
        var w = ReplayWindow()
        #expect(failures(&w, (1...Self.window).reversed().map { ($0, true) } + [(Self.window + 1, true), (0, false)]) == [])
    }

    @Test func descendingToOneThenZeroThenFront() {
        var w = ReplayWindow()
        #expect(failures(&w, (1...Self.window).reversed().map { ($0, true) } + [(0, true), (Self.window + 1, true)]) == [])
    }

    /// Jumps longer than the whole ring clear it (the kernel caps the words it
    /// zeroes at COUNTER_BITS_TOTAL / BITS_PER_LONG).
    @Test func jumpBeyondTheRingForgetsEverything() {
        var w = ReplayWindow()
        let far: UInt64 = 1 << 40
        let cases: [(UInt64, Bool)] = (0..<64).map { ($0, true) } + [
            (far, true), (far, false), (far - Self.window, true), (far - Self.window - 1, false), (far - 1, true), (5, false),
        ]
        #expect(failures(&w, cases) == [])
    }

    @Test func copiesAreIndependent() {
        var a = ReplayWindow()
        #expect(failures(&a, [(7, true)]) == [])
        var b = a
        #expect(failures(&b, [(8, true), (7, false)]) == [])
        #expect(failures(&a, [(8, true), (8, false), (7, false)]) == [])
    }

    /// Random traffic around a moving front, with reorders, duplicates, old
    /// counters and long jumps, checked against the window's definition:
    /// accept a counter once, below the limit, at most `windowSize` behind the
    /// greatest accepted.
    @Test func matchesNaiveModel() {
        var rng = TablesRNG(seed: 6479)
        var w = ReplayWindow()
        var seen = Set<UInt64>()
        var greatest: UInt64?
        var front: UInt64 = 0
        var accepted = 0, rejected = 0
        for step in 0..<30_000 {
            let roll = rng.next() % 100
            if roll < 2 {
                front += rng.next() % (4 * Self.window)            // loss burst or long jump
            } else if roll < 60 {
                front += rng.next() % 3
            }
            // Up to 100 beyond either edge of the window around `front`.
            let low = front > Self.window + 100 ? front - Self.window - 100 : 0
            let counter = low + rng.next() % (2 * Self.window + 200)
            let expected = !seen.contains(counter) && counter < Self.reject
                && (greatest.map { counter + Self.window >= $0 } ?? true)
            let got = w.accept(counter)
            #expect(got == expected, "step \(step): counter \(counter), greatest \(String(describing: greatest))")
            if expected {
                seen.insert(counter)
                greatest = max(greatest ?? 0, counter)
                accepted += 1
            } else {
                rejected += 1
            }
        }
        #expect(accepted > 5_000 && rejected > 5_000)
    }

    /// The same model near REJECT_AFTER_MESSAGES: nothing at or above it.
    @Test func matchesNaiveModelAtTheLimit() {
        var rng = TablesRNG(seed: 13)
        var w = ReplayWindow()
        var seen = Set<UInt64>()
        var greatest: UInt64?
        let base = Self.reject - 3 * Self.window
        for step in 0..<20_000 {
            let counter = base + rng.next() % (4 * Self.window)
            let expected = !seen.contains(counter) && counter < Self.reject
                && (greatest.map { counter + Self.window >= $0 } ?? true)
            let got = w.accept(counter)
            #expect(got == expected, "step \(step): counter \(counter)")
            if expected {
                seen.insert(counter)
                greatest = max(greatest ?? 0, counter)
            }
        }
        #expect(greatest == Self.reject - 1)
        #expect(failures(&w, [(UInt64.max, false), (Self.reject - 1, false)]) == [])
    }
}
