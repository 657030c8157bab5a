// Scaling: the formulas that turn configuration into timeouts and limits as
// the cluster grows. They follow hashicorp/memberlist util.go and
// suspicion.go, so results are comparable with memberlist's. The logarithms
// are computed here because pure targets import no Foundation.

/// Cluster-size scaling of SWIM's timeouts and limits.
public enum Scaling {
    /// Lifeguard's minimum suspicion timeout:
    /// `suspicionMult * max(1, log10(max(1, n))) * probeInterval` (memberlist `suspicionTimeout`).
    public static func suspicionTimeout(mult: Int, members n: Int, interval: Duration) -> Duration {
        // memberlist keeps the scale in whole thousandths: time.Duration(nodeScale*1000) * interval / 1000.
        let nodeScale = max(1, log10(Double(max(1, n))))
        let thousandths = Int64(nodeScale * 1000 + 1e-9)   // exact powers of ten stay exact
        return interval * mult * Int(thousandths) / 1000
    }

    /// Retransmissions of one gossip update: `retransmitMult * ceil(log10(n + 1))` (memberlist `retransmitLimit`).
    public static func retransmitLimit(mult: Int, members n: Int) -> Int {
        mult * Int(log10(Double(n + 1)).rounded(.up))
    }

    /// memberlist's `pushPullScale`: the interval is multiplied by
    /// `ceil(log2(n) - log2(32)) + 1` above 32 members, so the total push-pull
    /// load grows like N log N instead of N^2.
    public static func pushPullInterval(_ interval: Duration, members n: Int) -> Duration {
        guard n > 32 else { return interval }
        let multiplier = (log2(Double(n)) - log2(32)).rounded(.up) + 1
        return scale(interval, by: multiplier)
    }

    /// Lifeguard's dynamic suspicion timeout (memberlist `remainingSuspicionTime`):
    /// `max(min, max - (max - min) * log(c + 1) / log(k + 1))` for `c`
    /// independent confirmations out of `k` expected; `min` when none are expected.
    public static func suspicionTimeout(confirmations c: Int, expected k: Int, minimum: Duration, maximum: Duration) -> Duration {
        guard k >= 1 else { return minimum }
        let fraction = naturalLog(Double(c + 1)) / naturalLog(Double(k + 1))
        let raw = maximum.seconds - fraction * (maximum - minimum).seconds
        let timeout = Duration.nanoseconds(Int64(raw * 1e9) / 1_000_000 * 1_000_000) // whole milliseconds, as memberlist
        return timeout < minimum ? minimum : timeout
    }

    /// `d * factor`, in whole nanoseconds.
    public static func scale(_ d: Duration, by factor: Double) -> Duration {
        .nanoseconds(Int64(Double(d.nanosecondsClamped) * factor))
    }

    // MARK: Logarithms without Foundation

    /// ln(x) for x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), and
    /// ln(m) = 2 atanh((m - 1) / (m + 1)) as a series (|s| < 0.18, so 20 terms are exact to a double).
    public static func naturalLog(_ x: Double) -> Double {
        precondition(x > 0 && x.isFinite, "naturalLog of \(x)")
        var m = x.significand
        var e = Double(x.exponent)
        if m > 1.4142135623730951 { m /= 2; e += 1 }
        let s = (m - 1) / (m + 1), s2 = s * s
        var term = s, sum = 0.0, k = 1.0
        for _ in 0..<20 { sum += term / k; term *= s2; k += 2 }
        return 2 * sum + e * 0.6931471805599453
    }

    public static func log10(_ x: Double) -> Double { naturalLog(x) / 2.302585092994046 }
    public static func log2(_ x: Double) -> Double { naturalLog(x) / 0.6931471805599453 }
}
