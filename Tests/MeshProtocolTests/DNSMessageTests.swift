import Testing
import MeshBase
@testable import MeshProtocol

/// Builds a DNS response for `question` with answers (type, rdata), using a
/// compression pointer to the question name for every answer's owner name.
func dnsResponse(question: String, qtype: UInt16, answers: [(UInt16, [UInt8])], rcode: UInt16 = 0) -> [UInt8] {
    var m: [UInt8] = [0x12, 0x34, 0x81, UInt8(0x80 | rcode), 0, 1, 0, UInt8(answers.count), 0, 0, 0, 0]
    for label in question.split(separator: ".") { m.append(UInt8(label.utf8.count)); m += Array(label.utf8) }
    m += [0, UInt8(qtype >> 8), UInt8(qtype & 0xff), 0, 1]
    for (type, rdata) in answers {
        m += [0xc0, 12, UInt8(type >> 8), UInt8(type & 0xff), 0, 1, 0, 0, 0, 60, UInt8(rdata.count >> 8), UInt8(rdata.count & 0xff)]
        m += rdata
    }
    return m
}

func dnsName(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    for label in s.split(separator: ".") { out.append(UInt8(label.utf8.count)); out += Array(label.utf8) }
    return out + [0]
}

@Suite struct DNSMessageTests {
    @Test func srvRecordsSortedByPriorityThenWeight() throws {
        let srv1: [UInt8] = [0, 20, 0, 5, 0xc8, 0x5d] + dnsName("b.mesh.test")     // prio 20, port 51293
        let srv2: [UInt8] = [0, 10, 0, 5, 0xc8, 0x5d] + dnsName("a.mesh.test")
        let m = dnsResponse(question: "_meshguard._udp.mesh.test", qtype: 33, answers: [(33, srv1), (33, srv2)])
        let r = try DNSMessage.srvRecords(m)
        #expect(r.map(\.target) == ["a.mesh.test", "b.mesh.test"])
        #expect(r[0].port == 0xc85d && r[0].priority == 10)
    }

    @Test func srvTargetsMayBeCompressed() throws {
        // Target "seed" + pointer to the question name at offset 12.
        let rdata: [UInt8] = [0, 1, 0, 1, 0xc8, 0x5d, 4] + Array("seed".utf8) + [0xc0, 12]
        let m = dnsResponse(question: "mesh.test", qtype: 33, answers: [(33, rdata)])
        #expect(try DNSMessage.srvRecords(m).map(\.target) == ["seed.mesh.test"])
    }

    @Test func txtStrings() throws {
        let rdata: [UInt8] = [20] + Array("seed=192.0.2.1:51821".utf8) + [3] + Array("x=y".utf8)
        let m = dnsResponse(question: "_meshguard._udp.mesh.test", qtype: 16, answers: [(16, rdata), (1, [192, 0, 2, 1])])
        #expect(try DNSMessage.txtStrings(m) == ["seed=192.0.2.1:51821", "x=y"])
    }

    @Test func malformedAnswersThrowNeverTrap() {
        // An error response, a pointer loop, a truncated rdata.
        #expect(throws: WireError.self) { try DNSMessage.txtStrings(dnsResponse(question: "a.test", qtype: 16, answers: [], rcode: 3)) }
        var loop = dnsResponse(question: "a.test", qtype: 33, answers: [(33, [0, 1, 0, 1, 0, 1, 0xc0, 0])])
        let rdataStart = loop.count - 2
        loop[rdataStart] = 0xc0; loop[rdataStart + 1] = UInt8(rdataStart)   // points at itself
        #expect(throws: WireError.self) { try DNSMessage.srvRecords(loop) }
        let good = dnsResponse(question: "_meshguard._udp.mesh.test", qtype: 16, answers: [(16, [5] + Array("hello".utf8))])
        for cut in 0..<good.count { _ = try? DNSMessage.txtStrings(Array(good.prefix(cut))) }
        var rng = SeededRandom(seed: 4)
        for _ in 0..<3000 {
            var m = good
            m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next())
            _ = try? DNSMessage.txtStrings(m)
            _ = try? DNSMessage.srvRecords((0..<Int(rng.next() % 100)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
    }
}
