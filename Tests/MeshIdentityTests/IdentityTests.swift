import Testing
import MeshBase
import MeshCrypto
@testable import MeshIdentity

/// The three vectors of shared/vectors/identity.json (copied: tests must not
/// depend on files outside the repository).
struct IdentityVector: Sendable, CustomStringConvertible {
    let keyFile: String
    let pubFile: String
    let wireGuardPublic: String
    let ipv4: String
    let ipv6: String
    let blake3: String
    var description: String { Base64.abbreviate(pubFile) }
}

let identityVectors: [IdentityVector] = [
    .init(keyFile: "gV9tZwmVlv25c973cw+0BTKuSFRm8XQrygnfSJu4LT1F1PbkA8S2huxNBB7cgVZdF804UkDtxr36k9KZ39lu+w==\n",
          pubFile: "RdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs=\n",
          wireGuardPublic: "NTzlsz+fY2UezcDbAJZtcfGrIQhWls49MYywXfi6w3Y=",
          ipv4: "10.99.109.78", ipv6: "fd99:6d67::6d4e:581e:c1e7:2557",
          blake3: "6d4e581ec1e7255751523e7ec04330b2acb7a5f6578ee5c53bce045ef70fce40"),
    .init(keyFile: "YBBI22Lma/XgFgtmY07zkSaH/1U2CcNsdtr7mQk59cqLIIaD7V4ztu8yazmijSHRY46OBV5CW4rrcRnYf+MDcw==\n",
          pubFile: "iyCGg+1eM7bvMms5oo0h0WOOjgVeQluK63EZ2H/jA3M=\n",
          wireGuardPublic: "B0SssS+SfrPl45av2sxXktspRKvZGWO27LDIM2HxGRQ=",
          ipv4: "10.99.193.112", ipv6: "fd99:6d67::c170:f3c3:4945:d0e9",
          blake3: "c170f3c34945d0e9c5b281a8acf5eafeef4e0584997e3785205fe085c08b7766"),
    .init(keyFile: "gIqzJu5tPGeTDIkLdIQgI7WF05EUr88k5aIkmi1peYZbPAkGmgfYyzbnO2KN9Yuwn3gg7+WDrKiVALSh2xw8Vg==\n",
          pubFile: "WzwJBpoH2Ms25ztijfWLsJ94IO/lg6yolQC0odscPFY=\n",
          wireGuardPublic: "HBFOUh1zJyXfB+gVFE70STXMQWKB2ADxzvbCfupIChI=",
          ipv4: "10.99.71.225", ipv6: "fd99:6d67::47e1:3d8f:a9ed:43a5",
          blake3: "47e13d8fa9ed43a5ed3b9f54cc8cffb1e2c8b30d37c8108bae0bd319889e7e75"),
]

@Suite struct IdentityVectorTests {
    @Test(arguments: identityVectors)
    func reproducesVector(v: IdentityVector) throws {
        let id = try Identity(keyFile: v.keyFile)
        #expect(id.publicFileContents == v.pubFile)
        #expect(id.wireGuardPublicKey.base64 == v.wireGuardPublic)
        #expect(Hex.encode(BLAKE3.hash(id.publicKey.raw.bytes)) == v.blake3)
        #expect(id.meshAddresses.ipv4.description == v.ipv4)
        #expect(id.meshAddresses.ipv6 == IPv6Address(v.ipv6))
        #expect(id.meshAddresses.ipv6.description == v.ipv6)
        // Writing the key file back gives the same bytes.
        #expect(String(decoding: id.keyFileBytes(), as: UTF8.self) == v.keyFile)
        // The WireGuard private key derived from the seed matches the public key.
        #expect(id.wireGuardPrivateKey.publicKey == id.wireGuardPublicKey)
        // The public key alone derives the same things.
        let pub = try IdentityPublicKey(base64: v.pubFile)
        #expect(pub == id.publicKey)
        #expect(pub.wireGuardPublicKey.base64 == v.wireGuardPublic)
    }
}

@Suite struct KeyParsingTests {
    static let good = identityVectors[0]

    @Test func acceptsCRLFAndSurroundingBlanks() throws {
        let text = "  " + Self.good.pubFile.dropLast() + "\r\n\n"
        #expect(try IdentityPublicKey(base64: String(text)).base64 + "\n" == Self.good.pubFile)
    }

    @Test func rejectsBadPublicKeys() {
        #expect(throws: KeyError.empty) { try IdentityPublicKey(base64: "") }
        #expect(throws: KeyError.empty) { try IdentityPublicKey(base64: "\n \n") }
        #expect(throws: KeyError.notBase64) { try IdentityPublicKey(base64: "not a key!") }
        #expect(throws: KeyError.wrongLength(expected: 32, got: 3)) { try IdentityPublicKey(base64: "Zm9v") }
        #expect(throws: KeyError.wrongLength(expected: 32, got: 64)) { try IdentityPublicKey(base64: Self.good.keyFile) }
        #expect(throws: KeyError.trailingData) { try IdentityPublicKey(base64: Self.good.pubFile + "extra\n") }
        // 32 bytes that are not a valid point: all 0xff (non-canonical) and a small-order point.
        #expect(throws: KeyError.notACurvePoint) { try IdentityPublicKey(base64: Base64.encode([UInt8](repeating: 0xff, count: 32))) }
        var small = [UInt8](repeating: 0, count: 32); small[0] = 1
        #expect(throws: KeyError.notACurvePoint) { try IdentityPublicKey(base64: Base64.encode(small)) }
    }

    @Test func rejectsBadIdentityFiles() {
        #expect(throws: KeyError.wrongLength(expected: 64, got: 32)) { try Identity(keyFile: Self.good.pubFile) }
        #expect(throws: KeyError.notBase64) { try Identity(keyFile: "%%%%\n") }
        // Flip one bit of the public half: the seed no longer matches it.
        var raw = Base64.decode(String(Self.good.keyFile.dropLast()))!
        raw[40] ^= 1
        #expect(throws: KeyError.secretPublicMismatch) { try Identity(keyFile: Base64.encode(raw)) }
    }

    @Test func generatedIdentitiesRoundTrip() throws {
        let id = Identity.generate()
        let back = try Identity(keyFile: String(decoding: id.keyFileBytes(), as: UTF8.self))
        #expect(back.publicKey == id.publicKey)
        #expect(back.signingKey.secretKey.constantTimeEquals(id.signingKey.secretKey))
    }
}

@Suite struct MeshAddressTests {
    // The octet rules: third 0 -> 1, fourth 0 -> 1 and 255 -> 254. Search
    // random keys for hashes that hit each rule and check the mapping.
    @Test func octetRulesHold() {
        var seen = Set<String>()
        for i in 0..<40_000 {
            var b = [UInt8](repeating: 0, count: 32)
            b[0] = UInt8(i & 0xff); b[1] = UInt8(i >> 8 & 0xff); b[2] = UInt8(i >> 16)
            let key = Bytes32(b)!
            let h = BLAKE3.hash(b)
            let a = MeshAddresses(publicKey: key)
            let o = a.ipv4.octets
            #expect(o[0] == 10 && o[1] == 99)
            #expect(o[2] == (h[0] == 0 ? 1 : h[0]))
            #expect(o[3] == (h[1] == 0 ? 1 : h[1] == 255 ? 254 : h[1]))
            if h[0] == 0 { seen.insert("third0") }
            if h[1] == 0 { seen.insert("fourth0") }
            if h[1] == 255 { seen.insert("fourth255") }
            #expect(a.ipv6.high == 0xfd99_6d67_0000_0000)
            #expect(a.ipv6.low == h[0..<8].reduce(0) { $0 << 8 | UInt64($1) })
        }
        #expect(seen == ["third0", "fourth0", "fourth255"])
    }
}

@Suite struct TrustSetTests {
    static let a = try! IdentityPublicKey(base64: identityVectors[0].pubFile)
    static let b = try! IdentityPublicKey(base64: identityVectors[1].pubFile)

    @Test func addFindRemove() throws {
        var t = TrustSet()
        try t.add(name: "alpha", key: Self.a)
        try t.add(name: "beta", key: Self.b)
        #expect(t.count == 2 && t.contains(Self.a))
        #expect(t.find("alpha")?.key == Self.a)
        #expect(t.find(Self.b.base64)?.name == "beta")
        #expect(t.find("gamma") == nil)
        #expect(t.peers.map(\.name) == ["alpha", "beta"])
        let removed = try t.remove(Self.a.base64)
        #expect(removed.name == "alpha" && !t.contains(Self.a))
        #expect(throws: TrustError.notFound("alpha")) { try t.remove("alpha") }
    }

    @Test func refusesCollisions() throws {
        var t = TrustSet()
        try t.add(name: "alpha", key: Self.a)
        #expect(throws: TrustError.keyAlreadyTrusted(key: Self.a.base64, existingName: "alpha")) { try t.add(name: "other", key: Self.a) }
        #expect(throws: TrustError.nameTaken(name: "alpha", existingKey: Self.a.base64)) { try t.add(name: "alpha", key: Self.b) }
    }

    @Test(arguments: ["", ".hidden", "-flag", "a/b", "a b", "ä", String(repeating: "x", count: 65), "..", "a\nb"])
    func refusesBadNames(name: String) {
        var t = TrustSet()
        #expect(throws: TrustError.invalidName(name)) { try t.add(name: name, key: Self.a) }
    }

    @Test func acceptsGoodNames() throws {
        var t = TrustSet()
        try t.add(name: "node-1.example_B", key: Self.a)
        #expect(TrustSet.isValidName(String(repeating: "x", count: 64)))
        #expect(TrustSet.defaultName(for: Self.a) == "peer-" + Hex.encode(Self.a.raw.bytes.prefix(6)))
    }

    @Test func findsIPv4Collisions() throws {
        // Find two valid keys whose IPv4 addresses collide (birthday search).
        var byAddress: [IPv4Address: IdentityPublicKey] = [:]
        var pair: (IdentityPublicKey, IdentityPublicKey)?
        while pair == nil {
            let k = Identity.generate().publicKey
            if let other = byAddress[k.meshAddresses.ipv4] { pair = (other, k) } else { byAddress[k.meshAddresses.ipv4] = k }
        }
        var t = TrustSet()
        try t.add(name: "one", key: pair!.0)
        try t.add(name: "two", key: pair!.1)
        try t.add(name: "three", key: Self.a)
        let c = t.ipv4Collisions()
        #expect(c == [pair!.0.meshAddresses.ipv4: ["one", "two"]])
        #expect(t.ipv4Collisions(including: Self.a) == c.merging([Self.a.meshAddresses.ipv4: ["self", "three"]]) { x, _ in x })
    }
}
