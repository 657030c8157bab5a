// STUN servers as written on the command line and in the configuration file:
// every accepted form, the default port, and what is refused.
import Testing
import MeshBase
@testable import MeshCore

@Suite struct STUNServerSpecTests {
    @Test(arguments: [
        ("stun.example.com:3478", "stun.example.com:3478"),
        ("stun.example.com", "stun.example.com:3478"),
        ("STUN.Example.COM:19302", "stun.example.com:19302"),
        ("stun:stun.l.google.com:19302", "stun.l.google.com:19302"),
        ("192.0.2.1:3478", "192.0.2.1:3478"),
        ("192.0.2.1", "192.0.2.1:3478"),
        (" 192.0.2.1:5349 ", "192.0.2.1:5349"),
        ("[2001:db8::1]:3478", "[2001:db8::1]:3478"),
        ("[2001:db8::1]", "[2001:db8::1]:3478"),
        ("localhost:65535", "localhost:65535"),
    ])
    func accepted(text: String, canonical: String) throws {
        let s = try #require(STUNServerSpec(text))
        #expect(s.description == canonical)
    }

    @Test func addressesAreEndpointsNamesAreNot() {
        #expect(STUNServerSpec("192.0.2.1")?.endpoint == Endpoint("192.0.2.1:3478"))
        #expect(STUNServerSpec("[2001:db8::1]:1")?.endpoint == Endpoint("[2001:db8::1]:1"))
        #expect(STUNServerSpec("stun.example.com")?.endpoint == nil)
        #expect(STUNServerSpec("stun.example.com:10")?.host == .name("stun.example.com"))
        #expect(STUNServerSpec.defaultPort == 3478)
    }

    @Test(arguments: [
        "", "   ", "stun:", ":3478", "host:", "host:0", "host:65536", "host:34x8", "host:+347", "host:123456",
        "2001:db8::1", "2001:db8::1:3478", "[2001:db8::1", "[2001:db8::1]3478", "[192.0.2.1]:3478", "[]:1",
        "192.0.2", "192.0.2:3478", "256.0.0.1", "bad_host!:3478", "-bad.example:1", "a..b:1", "a b:1",
        "host:3478:1", "[fe80::1%eth0]:3478", "stun.example.com.:3478",
    ])
    func refused(text: String) {
        #expect(STUNServerSpec(text) == nil, "\(text)")
    }

    @Test func theProblemSaysWhatToWrite() {
        #expect(STUNServerSpec.problem("x:y") == "'x:y' is not a STUN server (use stun.example.com:3478, 192.0.2.1:3478 or [2001:db8::1]:3478)")
    }
}
