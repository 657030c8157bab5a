// Files under failure: a writer killed before its rename leaves a temporary
// file that the next write removes (never a live writer's); trust files others
// can write are refused; a failed keygen changes nothing.
import Testing
import Foundation
import MeshBase
import MeshIdentity
@testable import MeshSystem

@Suite struct FilesRobustnessTests {
    @Test func theNextWriteRemovesADeadWritersTemporaryFileOnly() throws {
        let d = TempDir()
        // A pid that does not exist (pid_max is at most 2^22) and our own, in the suffix's top 32 bits.
        let dead = String(UInt64(4_194_999) << 32 | 0xabc, radix: 16)
        let mine = String(UInt64(getpid()) << 32 | 0xdef, radix: 16)
        let parent = String(UInt64(getppid()) << 32 | 0x123, radix: 16)   // alive: the test runner's parent
        for s in [dead, mine, parent] { FileManager.default.createFile(atPath: d.sub(".identity.key.tmp-" + s), contents: Data("half".utf8)) }
        FileManager.default.createFile(atPath: d.sub(".other.tmp-" + dead), contents: Data("x".utf8))
        try Files.writeAtomically(d.sub("identity.key"), contents: Array("whole".utf8))
        let left = Set(try Files.list(d.path))
        #expect(!left.contains(".identity.key.tmp-" + dead))
        #expect(left.contains(".identity.key.tmp-" + mine) && left.contains(".identity.key.tmp-" + parent))
        #expect(left.contains(".other.tmp-" + dead))   // another file's temporaries are not ours to judge
        #expect(try Files.readText(d.sub("identity.key")) == "whole")
    }

    @Test func aTrustFileOthersCanWriteIsRefused() throws {
        let d = TempDir()
        let p = d.sub("peer.pub")
        try Files.writeAtomically(p, contents: Array("key".utf8), mode: 0o600)
        #expect(try Files.readText(p, trusted: true) == "key")
        for m in [0o620, 0o602, 0o666] {
            chmod(p, mode_t(m))
            #expect(throws: FileError.self) { try Files.readText(p, trusted: true) }
            #expect(try Files.readText(p) == "key")   // other files are read as before
        }
    }
}
