import Testing
@testable import MeshBase

@Suite struct IPv4Tests {
    @Test func parsesAndPrints() {
        let a = IPv4Address("10.99.109.78")
        #expect(a == IPv4Address(10, 99, 109, 78))
        #expect(a?.value == 0x0a63_6d4e)
        #expect(a?.description == "10.99.109.78")
        #expect(IPv4Address("0.0.0.0")?.value == 0)
        #expect(IPv4Address("255.255.255.255")?.value == .max)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..3.4", "a.b.c.d", " 1.2.3.4", "1.2.3.-4", "1234.1.1.1"])
    func rejects(text: String) {
        #expect(IPv4Address(text) == nil)
    }
}

@Suite struct IPv6Tests {
    // RFC 5952 section 4 canonical forms.
    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("2001:DB8::AbCd", "2001:db8::abcd"),
        ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("::ffff:1.2.3.4", "::ffff:102:304"),
        ("fd99:6d67:0:0:6d4e:581e:c1e7:2557", "fd99:6d67::6d4e:581e:c1e7:2557"),
    ])
    func canonicalText(input: String, canonical: String) throws {
        let a = try #require(IPv6Address(input))
        #expect(a.description == canonical)
        #expect(IPv6Address(canonical) == a)
        #expect(IPv6Address(bytes: a.bytes) == a)
        #expect(IPv6Address(groups: a.groups) == a)
    }

    @Test(arguments: ["", ":", ":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:", ":1", "g::", "1::2:", "::1.2.3", "1.2.3.4::", "::1.2.3.4:5"])
    func rejects(text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func bytesAreNetworkOrder() {
        let a = IPv6Address("fd99:6d67::1")!
        #expect(a.bytes.prefix(4) == [0xfd, 0x99, 0x6d, 0x67])
        #expect(a.bytes.last == 1)
        #expect(a.uncompressed == "fd99:6d67:0:0:0:0:0:1")
    }
}
