// STUN Binding: RFC 5769's sample responses, our request's bytes and
// FINGERPRINT, and every way an answer can be wrong (each refused with its
// reason, never a trap), plus random bytes.
import Testing
import MeshBase
@testable import MeshProtocol

@Suite struct STUNTests {
    static func bytes(_ hex: String) -> [UInt8] {
        hex.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { UInt8($0, radix: 16)! }
    }
    let txid = bytes("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")

    /// RFC 5769 §2.2: a success response carrying 192.0.2.1:32853 (with SOFTWARE, MESSAGE-INTEGRITY, FINGERPRINT).
    static let ipv4Response = bytes("""
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """)
    /// RFC 5769 §2.3: the same for [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    static let ipv6Response = bytes("""
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c
        """)

    @Test func rfc5769SampleResponses() throws {
        #expect(try STUN.parseBindingResponse(Self.ipv4Response, transactionID: txid) == Endpoint("192.0.2.1:32853"))
        #expect(try STUN.parseBindingResponse(Self.ipv6Response, transactionID: txid) == Endpoint("[2001:db8:1234:5678:11:2233:4455:6677]:32853"))
        #expect(STUN.looksLikeSTUN(Self.ipv4Response))
    }

    @Test func crc32() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
    }

    @Test func ourRequest() throws {
        let r = STUN.bindingRequest(transactionID: txid)
        #expect(r.count == 28)
        #expect(Array(r[0..<8]) == [0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42])
        #expect(Array(r[8..<20]) == txid)
        #expect(Array(r[20..<24]) == [0x80, 0x28, 0x00, 0x04])
        #expect(STUN.readU32(r, 24) == CRC32.checksum(Array(r[0..<20])) ^ 0x5354_554E)
        #expect(STUN.looksLikeSTUN(r))
        // A server's answer built the same way parses back.
        var answer = STUN.header(type: 0x0101, length: 12 + 8, transactionID: txid)
        answer += [0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0x21 ^ 0xc3, 0x12 ^ 0x50]    // port 50000
        answer += [203 ^ 0x21, 0 ^ 0x12, 113 ^ 0xa4, 7 ^ 0x42]                      // 203.0.113.7
        STUN.appendFingerprint(&answer)
        #expect(try STUN.parseBindingResponse(answer, transactionID: txid) == Endpoint("203.0.113.7:50000"))
    }

    @Test func mappedAddressWhenThereIsNoXorMappedAddress() throws {
        var m = STUN.header(type: 0x0101, length: 12, transactionID: txid)
        m += [0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x13, 0x88, 198, 51, 100, 9]
        #expect(try STUN.parseBindingResponse(m, transactionID: txid) == Endpoint("198.51.100.9:5000"))
    }

    /// Each mistake and its reason.
    @Test func refusals() {
        func refused(_ b: [UInt8], _ txid: [UInt8]? = nil) -> STUN.Failure? {
            do { _ = try STUN.parseBindingResponse(b, transactionID: txid ?? self.txid); return nil } catch { return error }
        }
        let good = Self.ipv4Response
        #expect(refused([]) == .notSTUN("0 bytes, shorter than the header"))
        #expect(refused(Array(good.prefix(19))) == .notSTUN("19 bytes, shorter than the header"))
        var b = good; b[0] |= 0x80
        #expect(refused(b) == .notSTUN("the first two bits are not zero"))
        b = good; b[5] ^= 1
        #expect(refused(b) == .notSTUN("no magic cookie"))
        #expect(refused(good, Array(repeating: 0, count: 12)) == .otherTransaction)
        #expect(refused(Array(good.dropLast(4))) == .malformed("length 60 but 56 bytes follow the header"))
        b = good; b[3] = 0x3d
        #expect(refused(b) == .malformed("length 61 is not a multiple of 4"))
        b = good; b[0] = 0x00; b[1] = 0x01
        #expect(refused(b) == .malformed("message type 0x1 is not a Binding response"))
        b = good; b[b.count - 1] ^= 0xff
        #expect(refused(b) == .badFingerprint)
        b = good; b[33] ^= 1   // a byte of SOFTWARE: FINGERPRINT no longer matches
        #expect(refused(b) == .badFingerprint)
        // An attribute running past the end.
        var m = STUN.header(type: 0x0101, length: 8, transactionID: txid)
        m += [0x00, 0x20, 0x00, 0x10, 0, 1, 0, 0]
        #expect(refused(m) == .malformed("attribute 0x20 runs past the end"))
        // Unknown comprehension-required attribute.
        m = STUN.header(type: 0x0101, length: 8, transactionID: txid)
        m += [0x00, 0x7f, 0x00, 0x04, 1, 2, 3, 4]
        #expect(refused(m) == .unknownRequiredAttribute(0x7f))
        // An unknown comprehension-optional attribute is skipped; then no address.
        m = STUN.header(type: 0x0101, length: 8, transactionID: txid)
        m += [0x80, 0x7f, 0x00, 0x04, 1, 2, 3, 4]
        #expect(refused(m) == .noAddress)
        // Bad address family / size.
        m = STUN.header(type: 0x0101, length: 12, transactionID: txid)
        m += [0x00, 0x20, 0x00, 0x08, 0x00, 0x02, 0, 0, 1, 2, 3, 4]
        #expect(refused(m) == .malformed("address family 2 with 8 bytes"))
        // An error response says its code.
        m = STUN.header(type: 0x0111, length: 12, transactionID: txid)
        m += [0x00, 0x09, 0x00, 0x07, 0, 0, 4, 20] + Array("Bad".utf8) + [0]
        #expect(refused(m) == .errorResponse(code: 420, reason: "Bad"))
        // FINGERPRINT not last.
        m = STUN.header(type: 0x0101, length: 16, transactionID: txid)
        m += [0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0, 0x80, 0x22, 0x00, 0x04, 0x61, 0x62, 0x63, 0x64]
        #expect(refused(m) == .malformed("FINGERPRINT is not the last 4-byte attribute"))
    }

    /// The byte offsets of every attribute's type and length fields.
    static func attributeHeaders(_ m: [UInt8]) -> Set<Int> {
        var out: Set<Int> = [], at = 20
        while at + 4 <= m.count {
            out.formUnion(at..<at + 4)
            at += 4 + ((Int(STUN.readU16(m, at + 2)) + 3) & ~3)
        }
        return out
    }

    /// Random and mutated datagrams: always a reason, never a trap or a wrong success.
    @Test func randomBytesNeverTrap() {
        var rng = SeededRandom(seed: 5769)
        var randomAccepted = 0, mutatedAccepted = 0, mutatedWithoutFingerprint = 0
        for i in 0..<20_000 {
            if i % 2 == 0 {
                let b = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if (try? STUN.parseBindingResponse(b, transactionID: txid)) != nil { randomAccepted += 1 }
            } else {
                var b = i % 4 == 1 ? Self.ipv4Response : Self.ipv6Response
                var touched: Set<Int> = []
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let at = Int.random(in: 0..<b.count, using: &rng)
                    b[at] ^= UInt8.random(in: 1...255, using: &rng)
                    touched.insert(at)
                }
                if (try? STUN.parseBindingResponse(b, transactionID: txid)) != nil {
                    mutatedAccepted += 1
                    // FINGERPRINT is optional in STUN: only a change to an attribute's type or length
                    // (renaming the FINGERPRINT, or swallowing it into the attribute before) can hide it.
                    let original = i % 4 == 1 ? Self.ipv4Response : Self.ipv6Response
                    let changed = Set(touched.filter { b[$0] != original[$0] })   // two flips of one byte can cancel
                    if !changed.isEmpty, changed.isDisjoint(with: Self.attributeHeaders(original)) { mutatedWithoutFingerprint += 1 }
                }
            }
        }
        #expect(randomAccepted == 0)
        #expect(mutatedWithoutFingerprint == 0, "a mutation that left every attribute header alone was accepted")
        #expect(mutatedAccepted < 500)
    }
}
