// Base64 (RFC 4648 section 4, standard alphabet, with padding), strict.
// Key files and WireGuard keys use this encoding; decoding refuses anything
// that is not the canonical encoding of some bytes (bad characters, missing
// or extra padding, non-zero trailing bits), so one key has one spelling.

public enum Base64 {
    @usableFromInline static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static let decodeTable: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()

    public static func encode<C: Collection>(_ data: C) -> String where C.Element == UInt8 {
        let bytes = Array(data)
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(UInt8(ascii: "=")); out.append(UInt8(ascii: "="))
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The decoded bytes, or nil when `text` is not canonical padded base64.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        if chars.isEmpty { return [] }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 4 * 3)
        let eq = UInt8(ascii: "=")
        var i = 0
        while i < chars.count {
            let last = i + 4 == chars.count
            let c0 = chars[i], c1 = chars[i + 1], c2 = chars[i + 2], c3 = chars[i + 3]
            let pad = (c3 == eq ? 1 : 0) + (c2 == eq ? 1 : 0)
            if pad > 0 && !last { return nil }
            if c2 == eq && c3 != eq { return nil }
            let v0 = decodeTable[Int(c0)], v1 = decodeTable[Int(c1)]
            let v2 = c2 == eq ? 0 : decodeTable[Int(c2)]
            let v3 = c3 == eq ? 0 : decodeTable[Int(c3)]
            if v0 < 0 || v1 < 0 || v2 < 0 || v3 < 0 { return nil }
            let n = UInt32(v0) << 18 | UInt32(v1) << 12 | UInt32(v2) << 6 | UInt32(v3)
            out.append(UInt8(n >> 16 & 0xff))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xff)) } else if n & 0xffff != 0 { return nil }
            if pad < 1 { out.append(UInt8(n & 0xff)) } else if n & 0xff != 0 { return nil }
            i += 4
        }
        return out
    }

    /// `AbCd…WxYz`: the first and last four characters of a base64 key (padding
    /// dropped), enough to tell keys apart in logs without printing them whole.
    public static func abbreviate(_ encoded: String) -> String {
        let body = encoded.utf8.reversed().drop(while: { $0 == UInt8(ascii: "=") }).reversed()
        guard body.count > 8 else { return String(decoding: body, as: UTF8.self) }
        return String(decoding: body.prefix(4), as: UTF8.self) + "…" + String(decoding: body.suffix(4), as: UTF8.self)
    }
}

public enum Hex {
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode<C: Collection>(_ data: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(data.count * 2)
        for b in data { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of an even-length hex string (either case), or nil.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
