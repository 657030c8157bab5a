// Time as protocol cores see it: a monotonic instant passed in by the caller.
// Cores never read a clock; the I/O layer reads CLOCK_MONOTONIC (or a test's
// virtual clock) and hands `now` to every call.

/// A point on a monotonic clock, in nanoseconds since an arbitrary origin.
public struct Instant: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    public static let zero = Instant(nanoseconds: 0)

    public static func seconds(_ s: Double) -> Instant { Instant(nanoseconds: UInt64(s * 1e9)) }

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    /// `self + d`, saturating at the ends of the clock.
    public static func + (a: Instant, d: Duration) -> Instant {
        let ns = d.nanosecondsClamped
        if ns >= 0 {
            let (r, o) = a.nanoseconds.addingReportingOverflow(UInt64(ns))
            return Instant(nanoseconds: o ? .max : r)
        }
        let m = UInt64(-ns)
        return Instant(nanoseconds: a.nanoseconds > m ? a.nanoseconds - m : 0)
    }

    public static func - (a: Instant, d: Duration) -> Instant { a + (.zero - d) }

    /// The time from `b` to `a` (negative when `a` is earlier).
    public static func - (a: Instant, b: Instant) -> Duration {
        a >= b ? .nanoseconds(Int64(clamping: a.nanoseconds - b.nanoseconds))
               : .zero - .nanoseconds(Int64(clamping: b.nanoseconds - a.nanoseconds))
    }

    public var description: String { "t+\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to Int64.
    public var nanosecondsClamped: Int64 {
        let (s, a) = components
        let (ns, o1) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o1 { return s < 0 ? .min : .max }
        let (r, o2) = ns.addingReportingOverflow(a / 1_000_000_000)
        return o2 ? (s < 0 ? .min : .max) : r
    }

    public var seconds: Double { Double(nanosecondsClamped) / 1e9 }
}
