import Testing
@testable import MeshBase

@Suite struct Base64Tests {
    // RFC 4648 section 10.
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                      ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test func roundTripsEveryLength() {
        var rng = SeededRandom(seed: 1)
        for n in 0..<200 {
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
    }

    @Test(arguments: ["Zg", "Zg=", "Zm9", "Z===", "Zg==Zg==", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zm9v!", "====", "=Zm9", "Zm=v", "Zé9v"])
    func rejectsNonCanonical(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test func abbreviatesKeys() {
        #expect(Base64.abbreviate("RdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs=") == "RdT2…Zbvs")
        #expect(Base64.abbreviate("short") == "short")
    }

    @Test func hexRoundTripAndRejects() {
        #expect(Hex.encode([0x00, 0xab, 0xff]) == "00abff")
        #expect(Hex.decode("00ABff") == [0x00, 0xab, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}

@Suite struct Bytes32Tests {
    @Test func construction() {
        #expect(Bytes32([UInt8](repeating: 1, count: 31)) == nil)
        #expect(Bytes32([UInt8](repeating: 1, count: 33)) == nil)
        let v = Bytes32(Array(0..<32))!
        #expect(v.bytes == Array(0..<32))
        #expect(!v.isZero && Bytes32.zero.isZero)
        #expect(Bytes32(base64: v.base64) == v)
        #expect(Bytes32(base64: "Zm9v") == nil)
        #expect(v.description == Base64.abbreviate(v.base64))
    }

    @Test func orderIsLexicographic() {
        var a = [UInt8](repeating: 0, count: 32), b = a
        a[0] = 1; b[31] = 0xff
        #expect(Bytes32(b)! < Bytes32(a)!)
        #expect(!(Bytes32(a)! < Bytes32(a)!))
    }
}
