// HMAC (RFC 2104) over BLAKE2s-256 (block 64 bytes), and the WireGuard KDF
// built on it (the Noise HKDF, WireGuard paper section 5.4):
//   T0 = HMAC(key, input)
//   T1 = HMAC(T0, 0x01)
//   T2 = HMAC(T0, T1 || 0x02)
//   T3 = HMAC(T0, T2 || 0x03)
// KDF_n returns (T1, ..., Tn). Outputs are SecretBytes: they are chaining keys
// and session keys.

public enum HMACBLAKE2s {
    public static func authenticate<K: ContiguousBytes>(key: K, _ parts: [UInt8]...) -> SecretBytes {
        authenticate(key: key, parts: parts)
    }

    public static func authenticate<K: ContiguousBytes>(key: K, parts: [[UInt8]]) -> SecretBytes {
        var block = [UInt8](repeating: 0, count: BLAKE2s.blockLength)
        key.withUnsafeBytes { k in
            if k.count > BLAKE2s.blockLength {
                var h = BLAKE2s(); h.update(k)
                let d = h.finalize()
                block.replaceSubrange(0..<d.count, with: d)
            } else {
                for i in 0..<k.count { block[i] = k[i] }
            }
        }
        var inner = BLAKE2s()
        var pad = block.map { $0 ^ 0x36 }
        inner.update(pad)
        for p in parts { inner.update(p) }
        var innerDigest = inner.finalize()
        var outer = BLAKE2s()
        for i in 0..<pad.count { pad[i] = block[i] ^ 0x5c }
        outer.update(pad)
        outer.update(innerDigest)
        var digest = outer.finalize()
        let result = SecretBytes(copying: digest)
        ConstantTime.wipe(&block); ConstantTime.wipe(&pad); ConstantTime.wipe(&innerDigest); ConstantTime.wipe(&digest)
        return result
    }
}

public enum WireGuardKDF {
    /// (T1)
    public static func kdf1<K: ContiguousBytes>(key: K, input: [UInt8]) -> SecretBytes {
        derive(key: key, input: input, count: 1)[0]
    }

    /// (T1, T2)
    public static func kdf2<K: ContiguousBytes>(key: K, input: [UInt8]) -> (SecretBytes, SecretBytes) {
        let t = derive(key: key, input: input, count: 2)
        return (t[0], t[1])
    }

    /// (T1, T2, T3)
    public static func kdf3<K: ContiguousBytes>(key: K, input: [UInt8]) -> (SecretBytes, SecretBytes, SecretBytes) {
        let t = derive(key: key, input: input, count: 3)
        return (t[0], t[1], t[2])
    }

    static func derive<K: ContiguousBytes>(key: K, input: [UInt8], count: Int) -> [SecretBytes] {
        let t0 = HMACBLAKE2s.authenticate(key: key, input)
        var out: [SecretBytes] = []
        var previous: [UInt8] = []
        for i in 1...count {
            let ti = HMACBLAKE2s.authenticate(key: t0, previous + [UInt8(i)])
            ConstantTime.wipe(&previous)
            previous = ti.unsafeExportedBytes()
            out.append(ti)
        }
        ConstantTime.wipe(&previous)
        return out
    }
}
