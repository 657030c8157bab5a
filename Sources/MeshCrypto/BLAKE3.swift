// BLAKE3 in Swift (libsodium has none), following the specification's
// reference structure: 1024-byte chunks of 64-byte blocks hashed into chaining
// values, merged pairwise up a binary tree as chunks complete (a stack of
// chaining values, one per set bit of the chunk count), and an extendable root
// output. Modes: hash, keyed hash, derive key. Mesh addresses are derived from
// BLAKE3-256 of the Ed25519 public key (MeshIdentity/MeshAddress.swift).

public struct BLAKE3: Sendable {
    static let outLength = 32
    static let keyLength = 32
    static let blockLength = 64
    static let chunkLength = 1024

    static let chunkStart: UInt32 = 1 << 0
    static let chunkEnd: UInt32 = 1 << 1
    static let parent: UInt32 = 1 << 2
    static let root: UInt32 = 1 << 3
    static let keyedHash: UInt32 = 1 << 4
    static let deriveKeyContext: UInt32 = 1 << 5
    static let deriveKeyMaterial: UInt32 = 1 << 6

    static let iv: [UInt32] = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
    static let permutation: [Int] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]

    /// The compression function: 7 rounds over a 16-word state.
    static func compress(_ cv: [UInt32], _ m0: [UInt32], _ counter: UInt64, _ blockLen: UInt32, _ flags: UInt32) -> [UInt32] {
        var v: [UInt32] = cv + [iv[0], iv[1], iv[2], iv[3],
                                UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32), blockLen, flags]
        var m = m0
        @inline(__always) func g(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt32, _ y: UInt32) {
            v[a] = v[a] &+ v[b] &+ x; v[d] = (v[d] ^ v[a]).rotatedRight(16)
            v[c] = v[c] &+ v[d]; v[b] = (v[b] ^ v[c]).rotatedRight(12)
            v[a] = v[a] &+ v[b] &+ y; v[d] = (v[d] ^ v[a]).rotatedRight(8)
            v[c] = v[c] &+ v[d]; v[b] = (v[b] ^ v[c]).rotatedRight(7)
        }
        for r in 0..<7 {
            g(0, 4, 8, 12, m[0], m[1]); g(1, 5, 9, 13, m[2], m[3])
            g(2, 6, 10, 14, m[4], m[5]); g(3, 7, 11, 15, m[6], m[7])
            g(0, 5, 10, 15, m[8], m[9]); g(1, 6, 11, 12, m[10], m[11])
            g(2, 7, 8, 13, m[12], m[13]); g(3, 4, 9, 14, m[14], m[15])
            if r < 6 { m = permutation.map { m[$0] } }
        }
        for i in 0..<8 { v[i] ^= v[i + 8]; v[i + 8] ^= cv[i] }
        return v
    }

    /// Little-endian 32-bit word `i` of `bytes`.
    @inline(__always) static func word(_ bytes: [UInt8], _ i: Int) -> UInt32 {
        let b0 = UInt32(bytes[4 * i]), b1 = UInt32(bytes[4 * i + 1])
        let b2 = UInt32(bytes[4 * i + 2]), b3 = UInt32(bytes[4 * i + 3])
        return b0 | b1 << 8 | b2 << 16 | b3 << 24
    }

    static func words(_ block: [UInt8]) -> [UInt32] { (0..<16).map { word(block, $0) } }

    /// What a node will output once its position (root or not) is known.
    struct Output {
        var inputCV: [UInt32]
        var blockWords: [UInt32]
        var counter: UInt64
        var blockLen: UInt32
        var flags: UInt32

        func chainingValue() -> [UInt32] {
            Array(compress(inputCV, blockWords, counter, blockLen, flags)[0..<8])
        }

        func rootBytes(_ count: Int) -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(count)
            var blockCounter: UInt64 = 0
            while out.count < count {
                let w = compress(inputCV, blockWords, blockCounter, blockLen, flags | BLAKE3.root)
                for word in w {
                    for s in stride(from: 0, to: 32, by: 8) where out.count < count {
                        out.append(UInt8(truncatingIfNeeded: word >> UInt32(s)))
                    }
                }
                blockCounter += 1
            }
            return out
        }
    }

    struct ChunkState {
        var cv: [UInt32]
        var chunkCounter: UInt64
        var block = [UInt8](repeating: 0, count: 64)
        var blockLen = 0
        var blocksCompressed = 0
        var flags: UInt32

        init(key: [UInt32], chunkCounter: UInt64, flags: UInt32) {
            cv = key; self.chunkCounter = chunkCounter; self.flags = flags
        }

        var length: Int { BLAKE3.blockLength * blocksCompressed + blockLen }
        var startFlag: UInt32 { blocksCompressed == 0 ? BLAKE3.chunkStart : 0 }

        mutating func update(_ input: ArraySlice<UInt8>) {
            var input = input
            while !input.isEmpty {
                if blockLen == BLAKE3.blockLength {
                    cv = Array(BLAKE3.compress(cv, BLAKE3.words(block), chunkCounter, UInt32(BLAKE3.blockLength), flags | startFlag)[0..<8])
                    blocksCompressed += 1
                    for i in 0..<64 { block[i] = 0 }
                    blockLen = 0
                }
                let take = min(BLAKE3.blockLength - blockLen, input.count)
                block.replaceSubrange(blockLen..<(blockLen + take), with: input.prefix(take))
                blockLen += take
                input = input.dropFirst(take)
            }
        }

        func output() -> Output {
            Output(inputCV: cv, blockWords: BLAKE3.words(block), counter: chunkCounter,
                   blockLen: UInt32(blockLen), flags: flags | startFlag | BLAKE3.chunkEnd)
        }
    }

    var key: [UInt32]
    var flags: UInt32
    var chunk: ChunkState
    var stack: [[UInt32]] = []

    init(keyWords: [UInt32], flags: UInt32) {
        key = keyWords; self.flags = flags
        chunk = ChunkState(key: keyWords, chunkCounter: 0, flags: flags)
    }

    /// Plain BLAKE3.
    public init() { self.init(keyWords: BLAKE3.iv, flags: 0) }

    /// Keyed BLAKE3 (a MAC / PRF) with a 32-byte key.
    public init(key: [UInt8]) {
        precondition(key.count == 32, "BLAKE3 keys are 32 bytes")
        self.init(keyWords: (0..<8).map { BLAKE3.word(key, $0) }, flags: BLAKE3.keyedHash)
    }

    /// Key derivation: a hasher whose output is a key for `context`, a
    /// hard-coded, globally unique, application-specific string.
    public init(deriveKeyContext context: String) {
        var ctx = BLAKE3(keyWords: BLAKE3.iv, flags: BLAKE3.deriveKeyContext)
        ctx.update(Array(context.utf8))
        let contextKey = ctx.finalize(outputLength: 32)
        self.init(keyWords: (0..<8).map { BLAKE3.word(contextKey, $0) },
                  flags: BLAKE3.deriveKeyMaterial)
    }

    static func parentOutput(_ left: [UInt32], _ right: [UInt32], key: [UInt32], flags: UInt32) -> Output {
        Output(inputCV: key, blockWords: left + right, counter: 0, blockLen: UInt32(blockLength), flags: parent | flags)
    }

    mutating func pushChunk(_ cv: [UInt32], totalChunks: UInt64) {
        var cv = cv
        var total = totalChunks
        // Merge every completed subtree: one merge per trailing zero bit.
        while total & 1 == 0 {
            cv = BLAKE3.parentOutput(stack.removeLast(), cv, key: key, flags: flags).chainingValue()
            total >>= 1
        }
        stack.append(cv)
    }

    public mutating func update(_ input: [UInt8]) {
        var rest = input[...]
        while !rest.isEmpty {
            if chunk.length == BLAKE3.chunkLength {
                let cv = chunk.output().chainingValue()
                let total = chunk.chunkCounter + 1
                pushChunk(cv, totalChunks: total)
                chunk = ChunkState(key: key, chunkCounter: total, flags: flags)
            }
            let take = min(BLAKE3.chunkLength - chunk.length, rest.count)
            chunk.update(rest.prefix(take))
            rest = rest.dropFirst(take)
        }
    }

    /// `outputLength` bytes of output (any length: BLAKE3 is an XOF).
    public func finalize(outputLength: Int = 32) -> [UInt8] {
        var output = chunk.output()
        var remaining = stack.count
        while remaining > 0 {
            remaining -= 1
            output = BLAKE3.parentOutput(stack[remaining], output.chainingValue(), key: key, flags: flags)
        }
        return output.rootBytes(outputLength)
    }

    /// One-shot BLAKE3-256 (or longer) of `input`.
    public static func hash(_ input: [UInt8], outputLength: Int = 32) -> [UInt8] {
        var h = BLAKE3()
        h.update(input)
        return h.finalize(outputLength: outputLength)
    }
}
