// Reading DNS answers (RFC 1035 section 4, RFC 2782 SRV, RFC 1035 TXT) for
// seed discovery. Strict: every length is checked, name compression pointers
// must point backwards (no loops), and a malformed answer throws.
import MeshBase

public struct SRVRecord: Equatable, Sendable {
    public let priority: UInt16
    public let weight: UInt16
    public let port: UInt16
    public let target: String
}

public enum DNSMessage {
    static let typeTXT: UInt16 = 16
    static let typeSRV: UInt16 = 33

    /// The SRV records in the answer section.
    public static func srvRecords(_ m: [UInt8]) throws(WireError) -> [SRVRecord] {
        var out: [SRVRecord] = []
        try answers(m) { type, rdata, start throws(WireError) in
            guard type == typeSRV else { return }
            var r = ByteReader(m)
            _ = try r.take(start)
            let prio = try r.u16(), weight = try r.u16(), port = try r.u16()
            var offset = r.offset
            let target = try name(m, at: &offset)
            guard offset == start + rdata else { throw WireError(.badValue, "SRV length") }
            out.append(SRVRecord(priority: prio, weight: weight, port: port, target: target))
        }
        return out.sorted { ($0.priority, UInt16.max - $0.weight) < ($1.priority, UInt16.max - $1.weight) }
    }

    /// The character strings of the TXT records in the answer section.
    public static func txtStrings(_ m: [UInt8]) throws(WireError) -> [String] {
        var out: [String] = []
        try answers(m) { type, rdata, start throws(WireError) in
            guard type == typeTXT else { return }
            var i = start
            while i < start + rdata {
                let n = Int(m[i])
                guard i + 1 + n <= start + rdata else { throw WireError(.truncated, "TXT string") }
                out.append(String(decoding: m[(i + 1)..<(i + 1 + n)], as: UTF8.self))
                i += 1 + n
            }
        }
        return out
    }

    /// Calls `body(type, rdlength, rdataOffset)` for every answer record.
    static func answers(_ m: [UInt8], _ body: (UInt16, Int, Int) throws(WireError) -> Void) throws(WireError) {
        var r = ByteReader(m)
        _ = try r.u16()                       // id
        let flags = try r.u16()
        guard flags & 0x8000 != 0 else { throw WireError(.badValue, "not a response") }
        guard flags & 0x000f == 0 else { throw WireError(.badValue, "DNS error code \(flags & 0x000f)") }
        let qd = Int(try r.u16()), an = Int(try r.u16())
        _ = try r.u16(); _ = try r.u16()      // authority, additional
        var offset = r.offset
        for _ in 0..<qd {
            _ = try name(m, at: &offset)
            offset += 4
        }
        for _ in 0..<an {
            _ = try name(m, at: &offset)
            guard offset + 10 <= m.count else { throw WireError(.truncated, "answer") }
            let type = UInt16(m[offset]) << 8 | UInt16(m[offset + 1])
            let rdlength = Int(m[offset + 8]) << 8 | Int(m[offset + 9])
            offset += 10
            guard offset + rdlength <= m.count else { throw WireError(.truncated, "rdata") }
            try body(type, rdlength, offset)
            offset += rdlength
        }
    }

    /// Reads a (possibly compressed) domain name at `offset`, advancing it past the name.
    static func name(_ m: [UInt8], at offset: inout Int) throws(WireError) -> String {
        var labels: [String] = []
        var i = offset
        var jumped = false
        var limit = i          // compression pointers must point strictly backwards
        while true {
            guard i < m.count else { throw WireError(.truncated, "name") }
            let len = Int(m[i])
            if len & 0xc0 == 0xc0 {
                guard i + 1 < m.count else { throw WireError(.truncated, "name pointer") }
                let target = (len & 0x3f) << 8 | Int(m[i + 1])
                guard target < limit else { throw WireError(.badValue, "name pointer loop") }
                if !jumped { offset = i + 2; jumped = true }
                limit = target
                i = target
                continue
            }
            guard len & 0xc0 == 0 else { throw WireError(.badValue, "label type") }
            if len == 0 { if !jumped { offset = i + 1 }; break }
            guard i + 1 + len <= m.count else { throw WireError(.truncated, "label") }
            labels.append(String(decoding: m[(i + 1)..<(i + 1 + len)], as: UTF8.self))
            guard labels.count <= 127 else { throw WireError(.tooLarge, "name") }
            i += 1 + len
        }
        return labels.joined(separator: ".")
    }
}
