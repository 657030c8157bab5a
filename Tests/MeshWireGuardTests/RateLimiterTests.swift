// The per-source handshake rate limiter used under load (kernel ratelimiter.c):
// a burst then the steady rate, IPv6 sources grouped by /64, bounded memory.
import Testing
import MeshBase
@testable import MeshWireGuard

@Suite struct HandshakeRateLimiterTests {
    let t0 = Instant.seconds(100)

    @Test func aBurstThenTheSteadyRate() {
        var r = HandshakeRateLimiter()
        let a = IPAddress("192.0.2.1")!
        let allowed = (0..<20).filter { _ in r.allow(a, now: t0) }.count
        #expect(allowed == WireGuardProtocol.ratelimitBurst)
        // One more token every 1/20 s.
        do { let ok = r.allow(a, now: t0 + .milliseconds(50)); #expect(ok) }
        do { let ok = r.allow(a, now: t0 + .milliseconds(50)); #expect(!ok) }
        // Another source has its own bucket.
        do { let ok = r.allow(IPAddress("192.0.2.2")!, now: t0); #expect(ok) }
    }

    @Test func ipv6SourcesShareTheirSlash64() {
        var r = HandshakeRateLimiter()
        // An attacker owning a /64 rotates the low bits: one bucket for all of them.
        let allowed = (0..<50).filter { i in r.allow(IPAddress("2001:db8:1:2::\(String(i + 1, radix: 16))")!, now: t0) }.count
        #expect(allowed == WireGuardProtocol.ratelimitBurst)
        #expect(r.buckets.count == 1)
        do { let ok = r.allow(IPAddress("2001:db8:1:3::1")!, now: t0); #expect(ok) }
    }

    @Test func memoryIsBoundedAndSweptSourcesComeBack() {
        var r = HandshakeRateLimiter(capacity: 100)
        for i in 0..<300 { _ = r.allow(.v4(IPv4Address(UInt32(0x0A00_0000 + i))), now: t0) }
        #expect(r.buckets.count == 100)
        // A new source is refused while the table is full...
        do { let ok = r.allow(IPAddress("198.51.100.7")!, now: t0); #expect(!ok) }
        // ...and admitted once idle sources are swept (after a second).
        do { let ok = r.allow(IPAddress("198.51.100.7")!, now: t0 + .milliseconds(1500)); #expect(ok) }
        #expect(r.buckets.count == 1)
    }
}
