// Clocks: the only place the agent reads time. Protocol cores never read a
// clock; the event loops call `MonotonicClock.now()` and pass the `Instant` in
// (see Sources/MeshBase/Instant.swift). The wall clock is for the handshake's
// TAI64N timestamp and for humans, never for timers.
//
// clock_gettime(2): CLOCK_MONOTONIC never jumps (NTP slews it, settimeofday
// does not move it) but stops while the machine is suspended; CLOCK_REALTIME
// is wall time and may jump either way.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase

/// CLOCK_MONOTONIC as an `Instant` (nanoseconds since an arbitrary origin,
/// boot on Linux).
public struct MonotonicClock: Sendable {
    public init() {}

    /// The current monotonic time. clock_gettime cannot fail for
    /// CLOCK_MONOTONIC with a valid pointer; if it ever did, this returns
    /// `Instant.zero` rather than trapping.
    public static func now() -> Instant {
        var ts = timespec()
        guard clock_gettime(CLOCK_MONOTONIC, &ts) == 0, ts.tv_sec >= 0, ts.tv_nsec >= 0 else { return .zero }
        let (ns, overflow) = UInt64(ts.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        return Instant(nanoseconds: overflow ? .max : ns &+ UInt64(ts.tv_nsec))
    }
}

/// CLOCK_REALTIME: seconds and nanoseconds since the Unix epoch (UTC).
public struct WallClock: Sendable {
    /// A wall-clock reading. `nanoseconds` is in 0..<1_000_000_000.
    public struct Timestamp: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var seconds: Int64
        public var nanoseconds: UInt32

        public init(seconds: Int64, nanoseconds: UInt32) { self.seconds = seconds; self.nanoseconds = nanoseconds }

        public static func < (a: Timestamp, b: Timestamp) -> Bool { (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds) }

        public var description: String {
            let frac = String(nanoseconds)
            return "\(seconds).\(String(repeating: "0", count: max(0, 9 - frac.count)))\(frac)"
        }
    }

    public init() {}

    /// The current wall time; the epoch (0, 0) if clock_gettime failed, which
    /// it cannot for CLOCK_REALTIME with a valid pointer.
    public static func now() -> Timestamp {
        var ts = timespec()
        guard clock_gettime(CLOCK_REALTIME, &ts) == 0, (0..<1_000_000_000).contains(ts.tv_nsec) else {
            return Timestamp(seconds: 0, nanoseconds: 0)
        }
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }
}
