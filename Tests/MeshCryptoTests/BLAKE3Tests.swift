import Testing
import MeshBase
@testable import MeshCrypto
#if canImport(Foundation)
import Foundation
#endif

/// The BLAKE3 team's official vectors (test_vectors/test_vectors.json): input
/// byte i is i % 251; first 32 bytes of each output.
struct BLAKE3Vector: Sendable, CustomStringConvertible {
    let length: Int
    let hash: String
    let keyed: String
    let derive: String
    var description: String { "input length \(length)" }
}

let blake3Key = Array("whats the Elvish word for friend".utf8)
let blake3Context = "BLAKE3 2019-12-27 16:29:52 test vectors context"
func blake3Input(_ n: Int) -> [UInt8] { (0..<n).map { UInt8($0 % 251) } }

let blake3Vectors: [BLAKE3Vector] = [
    .init(length: 0, hash: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
          keyed: "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26",
          derive: "2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d"),
    .init(length: 1, hash: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
          keyed: "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b",
          derive: "b3e2e340a117a499c6cf2398a19ee0d29cca2bb7404c73063382693bf66cb06c"),
    .init(length: 1023, hash: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
          keyed: "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e",
          derive: "74a16c1c3d44368a86e1ca6df64be6a2f64cce8f09220787450722d85725dea5"),
    .init(length: 1024, hash: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
          keyed: "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4",
          derive: "7356cd7720d5b66b6d0697eb3177d9f8d73a4a5c5e968896eb6a689684302706"),
    .init(length: 1025, hash: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
          keyed: "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69",
          derive: "effaa245f065fbf82ac186839a249707c3bddf6d3fdda22d1b95a3c970379bcb"),
    .init(length: 2048, hash: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
          keyed: "879cf1fa2ea0e79126cb1063617a05b6ad9d0b696d0d757cf053439f60a99dd1",
          derive: "7b2945cb4fef70885cc5d78a87bf6f6207dd901ff239201351ffac04e1088a23"),
    .init(length: 2049, hash: "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
          keyed: "9f29700902f7c86e514ddc4df1e3049f258b2472b6dd5267f61bf13983b78dd5",
          derive: "2ea477c5515cc3dd606512ee72bb3e0e758cfae7232826f35fb98ca1bcbdf273"),
    .init(length: 3072, hash: "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
          keyed: "044a0e7b172a312dc02a4c9a818c036ffa2776368d7f528268d2e6b5df191770",
          derive: "050df97f8c2ead654d9bb3ab8c9178edcd902a32f8495949feadcc1e0480c46b"),
    .init(length: 3073, hash: "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
          keyed: "68dede9bef00ba89e43f31a6825f4cf433389fedae75c04ee9f0cf16a427c95a",
          derive: "72613c9ec9ff7e40f8f5c173784c532ad852e827dba2bf85b2ab4b76f7079081"),
    .init(length: 4096, hash: "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
          keyed: "befc660aea2f1718884cd8deb9902811d332f4fc4a38cf7c7300d597a081bfc0",
          derive: "1e0d7f3db8c414c97c6307cbda6cd27ac3b030949da8e23be1a1a924ad2f25b9"),
    .init(length: 4097, hash: "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995",
          keyed: "00df940cd36bb9fa7cbbc3556744e0dbc8191401afe70520ba292ee3ca80abbc",
          derive: "aca51029626b55fda7117b42a7c211f8c6e9ba4fe5b7a8ca922f34299500ead8"),
    .init(length: 5121, hash: "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff",
          keyed: "6ccf1c34753e7a044db80798ecd0782a8f76f33563accaddbfbb2e0ea4b2d024",
          derive: "b07f01e518e702f7ccb44a267e9e112d403a7b3f4883a47ffbed4b48339b3c34"),
    .init(length: 8193, hash: "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b",
          keyed: "954a2a75420c8d6547e3ba5b98d963e6fa6491addc8c023189cc519821b4a1f5",
          derive: "af1e0346e389b17c23200270a64aa4e1ead98c61695d917de7d5b00491c9b0f1"),
    .init(length: 16384, hash: "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4",
          keyed: "9e9fc4eb7cf081ea7c47d1807790ed211bfec56aa25bb7037784c13c4b707b0d",
          derive: "160e18b5878cd0df1c3af85eb25a0db5344d43a6fbd7a8ef4ed98d0714c3f7e1"),
    .init(length: 31744, hash: "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
          keyed: "efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419",
          derive: "39772aef80e0ebe60596361e45b061e8f417429d529171b6764468c22928e28e"),
    .init(length: 102400, hash: "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
          keyed: "1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7",
          derive: "4652cff7a3f385a6103b5c260fc1593e13c778dbe608efb092fe7ee69df6e9c6"),
]

@Suite struct BLAKE3Tests {
    @Test(arguments: blake3Vectors)
    func officialVectors(v: BLAKE3Vector) {
        let input = blake3Input(v.length)
        #expect(Hex.encode(BLAKE3.hash(input)) == v.hash)
        var keyed = BLAKE3(key: blake3Key); keyed.update(input)
        #expect(Hex.encode(keyed.finalize()) == v.keyed)
        var derive = BLAKE3(deriveKeyContext: blake3Context); derive.update(input)
        #expect(Hex.encode(derive.finalize()) == v.derive)
    }

    // Extended output (131 bytes, crossing two 64-byte output blocks).
    @Test func extendedOutput() {
        #expect(Hex.encode(BLAKE3.hash(blake3Input(1), outputLength: 131)) ==
            "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213c3a6cb8bf623e20cdb535f8d1a5ffb86342d9c0b64aca3bce1d31f60adfa137b358ad4d79f97b47c3d5e79f179df87a3b9776ef8325f8329886ba42f07fb138bb502f4081cbcec3195c5871e6c23e2cc97d3c69a613eba131e5f1351f3f1da786545e5")
        var d = BLAKE3(deriveKeyContext: blake3Context)
        #expect(Hex.encode(d.finalize(outputLength: 131)) ==
            "2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d905630c8be290dfcf3e6842f13bddd573c098c3f17361f1f206b8cad9d088aa4a3f746752c6b0ce6a83b0da81d59649257cdf8eb3e9f7d4998e41021fac119deefb896224ac99f860011f73609e6e0e4540f93b273e56547dfd3aa1a035ba6689d89a0")
        d.update([])
    }

    @Test func incrementalEqualsOneShot() {
        var rng = SeededRandom(seed: 3)
        let data = (0..<5000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var h = BLAKE3()
        var i = 0
        while i < data.count {
            let n = Int(rng.next() % 1500)
            h.update(Array(data[i..<min(data.count, i + n)]))
            i += n
        }
        #expect(h.finalize() == BLAKE3.hash(data))
    }

    /// Debian's b3sum (the BLAKE3 team's tool) as an oracle on random inputs.
    @Test func agreesWithB3sum() throws {
        let b3sum = "/usr/bin/b3sum"
        try #require(FileManager.default.isExecutableFile(atPath: b3sum),
                     "b3sum is missing: run scripts/bootstrap (it installs Debian's b3sum)")
        var rng = SeededRandom(seed: 11)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("b3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [(URL, [UInt8])] = []
        for len in [0, 7, 64, 1024, 1025, 4095, 9000, 65537] {
            let data = (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let url = dir.appendingPathComponent("in-\(len)")
            try Data(data).write(to: url)
            files.append((url, data))
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: b3sum)
        p.arguments = ["--no-names"] + files.map { $0.0.path }
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let lines = out.split(separator: "\n").map(String.init)
        try #require(lines.count == files.count)
        for (line, (_, data)) in zip(lines, files) {
            #expect(line == Hex.encode(BLAKE3.hash(data)), "length \(data.count)")
        }
    }
}
