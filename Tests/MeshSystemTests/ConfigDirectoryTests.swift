import Testing
import Foundation
import MeshBase
import MeshIdentity
@testable import MeshSystem

/// A fresh temporary directory, removed at the end of the test.
final class TempDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mg-test-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func sub(_ name: String) -> String { path + "/" + name }
}

func mode(_ path: String) -> UInt32 { try! Files.info(path)!.permissions }

@Suite struct ResolutionTests {
    @Test func order() throws {
        #expect(try ConfigDirectory.resolve(flag: "/x", environment: ["MESHGUARD_CONFIG_DIR": "/y"], uid: 0).path == "/x")
        #expect(try ConfigDirectory.resolve(flag: nil, environment: ["MESHGUARD_CONFIG_DIR": "/y"], uid: 0).path == "/y")
        #expect(try ConfigDirectory.resolve(flag: nil, environment: ["MESHGUARD_CONFIG_DIR": ""], uid: 0).path == "/etc/meshguard")
        #expect(try ConfigDirectory.resolve(flag: nil, environment: ["HOME": "/home/u"], uid: 1000).path == "/home/u/.config/meshguard")
        #expect(try ConfigDirectory.resolve(flag: nil, environment: ["HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg"], uid: 1000).path == "/xdg/meshguard")
        #expect(throws: ConfigError.self) { try ConfigDirectory.resolve(flag: nil, environment: [:], uid: 1000) }
        #expect(throws: ConfigError.self) { try ConfigDirectory.resolve(flag: "", environment: [:], uid: 0) }
    }
}

@Suite struct IdentityFileTests {
    @Test func createLoadAndRefuseOverwrite() throws {
        let t = TempDir()
        let dir = ConfigDirectory(path: t.sub("conf/nested"))
        let id = Identity.generate()
        try dir.createIdentity(id, force: false)
        #expect(mode(dir.identityKeyPath) == 0o600)
        #expect(mode(dir.identityPubPath) == 0o600)
        #expect(try dir.loadIdentity().publicKey == id.publicKey)
        #expect(try dir.loadIdentityPub() == id.publicKey)
        // No temporary files are left behind.
        #expect(try Files.list(dir.path) == ["identity.key", "identity.pub"])
        // A second keygen without force is refused and changes nothing.
        #expect(throws: ConfigError.self) { try dir.createIdentity(Identity.generate(), force: false) }
        #expect(try dir.loadIdentity().publicKey == id.publicKey)
        let other = Identity.generate()
        try dir.createIdentity(other, force: true)
        #expect(try dir.loadIdentity().publicKey == other.publicKey)
    }

    @Test func refusesReadableKeyWithFix() throws {
        let t = TempDir()
        let dir = ConfigDirectory(path: t.path)
        try dir.createIdentity(Identity.generate(), force: false)
        chmod(dir.identityKeyPath, 0o640)
        do {
            _ = try dir.loadIdentity()
            Issue.record("a group-readable identity.key was accepted")
        } catch {
            #expect(error.description == "\(dir.identityKeyPath) is readable by group or others (mode 0640); fix with: chmod 600 \(dir.identityKeyPath)")
        }
    }

    @Test func reportsMissingAndCorrupt() throws {
        let t = TempDir()
        let dir = ConfigDirectory(path: t.path)
        #expect(throws: ConfigError("no identity at \(dir.identityKeyPath); create one with: meshguard-agent keygen")) { try dir.loadIdentity() }
        #expect(try dir.loadIdentityPub() == nil)
        try Files.writeAtomically(dir.identityKeyPath, contents: Array("garbage\n".utf8))
        #expect(throws: ConfigError("\(dir.identityKeyPath): the key is not valid base64")) { try dir.loadIdentity() }
        try Files.writeAtomically(dir.identityKeyPath, contents: [0xff, 0xfe])
        #expect(throws: ConfigError.self) { try dir.loadIdentity() }
        // A directory where the key should be.
        try Files.remove(dir.identityKeyPath)
        try Files.createDirectory(dir.identityKeyPath)
        #expect(throws: ConfigError.self) { try dir.loadIdentity() }
    }
}

@Suite struct TrustFileTests {
    static let a = try! IdentityPublicKey(base64: "RdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs=")
    static let b = try! IdentityPublicKey(base64: "iyCGg+1eM7bvMms5oo0h0WOOjgVeQluK63EZ2H/jA3M=")

    @Test func trustListRevoke() throws {
        let t = TempDir()
        let dir = ConfigDirectory(path: t.path)
        #expect(try dir.loadTrust().trust.count == 0)   // no authorized_keys yet
        try dir.trust(Self.a, name: "alpha")
        try dir.trust(Self.b, name: "beta")
        #expect(mode(Files.join(dir.authorizedKeysPath, "alpha.pub")) == 0o600)
        #expect(try Files.readText(Files.join(dir.authorizedKeysPath, "alpha.pub")) == Self.a.base64 + "\n")
        let (set, problems) = try dir.loadTrust()
        #expect(problems.isEmpty)
        #expect(set.peers.map(\.name) == ["alpha", "beta"])
        #expect(throws: ConfigError.self) { try dir.trust(Self.a, name: "again") }
        #expect(throws: ConfigError.self) { try dir.trust(Self.b, name: "alpha") }
        #expect(try dir.revoke("alpha").key == Self.a)
        #expect(try dir.revoke(Self.b.base64).name == "beta")
        #expect(try Files.list(dir.authorizedKeysPath).isEmpty)
        #expect(throws: ConfigError.self) { try dir.revoke("alpha") }
    }

    @Test func badFilesAreReportedNotFatal() throws {
        let t = TempDir()
        let dir = ConfigDirectory(path: t.path)
        try dir.trust(Self.a, name: "alpha")
        try Files.writeAtomically(Files.join(dir.authorizedKeysPath, "broken.pub"), contents: Array("nonsense\n".utf8))
        try Files.writeAtomically(Files.join(dir.authorizedKeysPath, "dup.pub"), contents: Array(Self.a.fileContents.utf8))
        try Files.writeAtomically(Files.join(dir.authorizedKeysPath, "README"), contents: Array("not a key file".utf8))
        let (set, problems) = try dir.loadTrust()
        #expect(set.peers.map(\.name) == ["alpha"])
        #expect(problems.map(\.file).sorted() == [Files.join(dir.authorizedKeysPath, "broken.pub"), Files.join(dir.authorizedKeysPath, "dup.pub")])
        // The broken file's name cannot be taken over silently.
        #expect(throws: ConfigError.self) { try dir.trust(Self.b, name: "broken") }
    }
}

@Suite struct FilesTests {
    @Test func atomicWriteReplacesAndSetsMode() throws {
        let t = TempDir()
        let p = t.sub("f")
        try Files.writeAtomically(p, contents: [1, 2, 3], mode: 0o644)
        #expect(try Files.read(p) == [1, 2, 3])
        #expect(mode(p) == 0o644)
        try Files.writeAtomically(p, contents: [4], mode: 0o600)
        #expect(try Files.read(p) == [4])
        #expect(mode(p) == 0o600)
        #expect(try Files.list(t.path) == ["f"])
    }

    @Test func writeIntoMissingDirectoryFailsCleanly() {
        let t = TempDir()
        #expect(throws: FileError.self) { try Files.writeAtomically(t.sub("no/such/f"), contents: [1]) }
    }

    @Test func readLimitAndErrors() throws {
        let t = TempDir()
        let p = t.sub("big")
        try Files.writeAtomically(p, contents: [UInt8](repeating: 7, count: 5000))
        #expect(throws: FileError.self) { try Files.read(p, limit: 4096) }
        #expect(try Files.read(p).count == 5000)
        do {
            _ = try Files.read(t.sub("missing"))
            Issue.record("read of a missing file succeeded")
        } catch {
            #expect(error.isNotFound)
            #expect(error.description == "cannot read \(t.sub("missing")): No such file or directory")
        }
        #expect(throws: FileError.self) { try Files.readText(t.path) }   // a directory
    }

    @Test func createDirectoryIsIdempotentAndRefusesFiles() throws {
        let t = TempDir()
        try Files.createDirectory(t.sub("a/b/c"))
        try Files.createDirectory(t.sub("a/b/c"))
        #expect(try Files.info(t.sub("a/b/c"))?.isDirectory == true)
        try Files.writeAtomically(t.sub("file"), contents: [])
        #expect(throws: FileError.self) { try Files.createDirectory(t.sub("file")) }
    }

    @Test func splitPaths() {
        #expect(Files.split("/a/b") == ("/a", "b"))
        #expect(Files.split("b") == ("", "b"))
        #expect(Files.split("/b") == ("/", "b"))
        #expect(Files.split("a/b/") == ("a", "b"))
    }
}
