// Runs the built `meshguard-agent` binary against temporary configuration
// directories, with good and bad input, and checks output, exit codes, file
// modes, and that every failure is exactly one line on stderr.
import Testing
import Foundation

struct Result: CustomStringConvertible {
    let code: Int32
    let out: String
    let err: String
    var description: String { "exit \(code)\nstdout: \(out)\nstderr: \(err)" }
}

/// The binary sits beside the test bundle in the build directory.
let agentBinary: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("meshguard-agent").path
}()

func agent(_ args: [String], env: [String: String] = [:], executable: String = agentBinary) throws -> Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    var environment = ProcessInfo.processInfo.environment
    environment.removeValue(forKey: "MESHGUARD_CONFIG_DIR")
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Result(code: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
}

/// Asserts a clean failure: non-zero exit, nothing on stdout, one error line on stderr.
func expectOneLineError(_ r: Result, contains fragment: String, code: Int32 = 1, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.code == code, "\(r)", sourceLocation: sourceLocation)
    #expect(r.out.isEmpty, "\(r)", sourceLocation: sourceLocation)
    let lines = r.err.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines.count == 2 && lines[1].isEmpty, "stderr must be one line: \(r)", sourceLocation: sourceLocation)
    #expect(r.err.hasPrefix("meshguard-agent: error: "), "\(r)", sourceLocation: sourceLocation)
    #expect(r.err.contains(fragment), "\(r)", sourceLocation: sourceLocation)
    #expect(!r.err.contains("Fatal error") && !r.err.contains("backtrace"), sourceLocation: sourceLocation)
}

final class Scratch {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mg-cli-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let p = path + "/" + name
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: p, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: p)
        return p
    }
    func mode(_ rel: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path + "/" + rel)[.posixPermissions] as! NSNumber).intValue
    }
    func list(_ rel: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + rel)) ?? []).sorted()
    }
}

let vectorKey = "gV9tZwmVlv25c973cw+0BTKuSFRm8XQrygnfSJu4LT1F1PbkA8S2huxNBB7cgVZdF804UkDtxr36k9KZ39lu+w==\n"
let vectorPub = "RdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs="
let otherPub = "iyCGg+1eM7bvMms5oo0h0WOOjgVeQluK63EZ2H/jA3M="
let thirdPub = "WzwJBpoH2Ms25ztijfWLsJ94IO/lg6yolQC0odscPFY="

@Suite(.serialized) struct CLITests {
    @Test func binaryExists() {
        #expect(FileManager.default.isExecutableFile(atPath: agentBinary), "build the package first: \(agentBinary)")
    }

    @Test func showIdentityPrintsTheVector() throws {
        let s = Scratch()
        _ = try s.file("identity.key", vectorKey)
        let r = try agent(["show-identity", "--config-dir", s.path])
        #expect(r.code == 0, "\(r)")
        #expect(r.out == """
            identity:   RdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs=
            wireguard:  NTzlsz+fY2UezcDbAJZtcfGrIQhWls49MYywXfi6w3Y=
            mesh ipv4:  10.99.109.78
            mesh ipv6:  fd99:6d67::6d4e:581e:c1e7:2557

            """)
        // identity.pub is missing: one warning line, still success.
        #expect(r.err.contains("warning: ") && r.err.contains("identity.pub is missing"))
        let e = try agent(["export", "--config-dir", s.path])
        #expect(e.code == 0 && e.out == vectorPub + "\n")
    }

    @Test func configDirFromEnvironment() throws {
        let s = Scratch()
        _ = try s.file("identity.key", vectorKey)
        let r = try agent(["export"], env: ["MESHGUARD_CONFIG_DIR": s.path])
        #expect(r.code == 0 && r.out == vectorPub + "\n", "\(r)")
        // The flag wins over the environment.
        let other = Scratch()
        let f = try agent(["export", "--config-dir", other.path], env: ["MESHGUARD_CONFIG_DIR": s.path])
        expectOneLineError(f, contains: "no identity at \(other.path)/identity.key")
    }

    @Test func keygenCreatesPrivateFilesAndRefusesOverwrite() throws {
        let s = Scratch()
        let dir = s.path + "/conf"
        let r = try agent(["keygen", "--config-dir", dir])
        #expect(r.code == 0, "\(r)")
        #expect(r.out.hasPrefix("created identity "))
        #expect(try s.mode("conf/identity.key") == 0o600)
        #expect(try s.mode("conf/identity.pub") == 0o600)
        #expect(s.list("conf") == ["identity.key", "identity.pub"])
        let pub = try String(contentsOfFile: dir + "/identity.pub", encoding: .utf8)
        #expect(try agent(["export", "--config-dir", dir]).out == pub)
        let again = try agent(["keygen", "--config-dir", dir])
        expectOneLineError(again, contains: "already exists")
        #expect(try String(contentsOfFile: dir + "/identity.pub", encoding: .utf8) == pub)
        let forced = try agent(["keygen", "--force", "--config-dir", dir])
        #expect(forced.code == 0)
        #expect(try String(contentsOfFile: dir + "/identity.pub", encoding: .utf8) != pub)
        #expect(s.list("conf") == ["identity.key", "identity.pub"])
    }

    @Test func insecureIdentityIsRefusedWithFix() throws {
        let s = Scratch()
        let p = try s.file("identity.key", vectorKey, mode: 0o644)
        for cmd in ["show-identity", "export"] {
            let r = try agent([cmd, "--config-dir", s.path])
            expectOneLineError(r, contains: "readable by group or others (mode 0644); fix with: chmod 600 \(p)")
        }
    }

    @Test func trustListRevoke() throws {
        let s = Scratch()
        let d = ["--config-dir", s.path]
        let file = try s.file("incoming/node-b.pub", otherPub + "\n")
        var r = try agent(["trust", file] + d)
        #expect(r.code == 0 && r.out.hasPrefix("trusted node-b "), "\(r)")
        r = try agent(["trust", vectorPub, "--name", "laptop"] + d)
        #expect(r.code == 0, "\(r)")
        r = try agent(["trust", thirdPub] + d)   // inline, default name
        #expect(r.code == 0 && r.out.hasPrefix("trusted peer-"), "\(r)")
        #expect(try s.mode("authorized_keys/laptop.pub") == 0o600)
        r = try agent(["trusted"] + d)
        #expect(r.code == 0)
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("NAME"))
        #expect(lines[1].hasPrefix("laptop") && lines[1].contains(vectorPub) && lines[1].contains("10.99.109.78") && lines[1].contains("fd99:6d67::6d4e:581e:c1e7:2557"))
        #expect(lines[2].hasPrefix("node-b") && lines[2].contains(otherPub))
        r = try agent(["revoke", "laptop"] + d)
        #expect(r.code == 0 && r.out.hasPrefix("revoked laptop"))
        r = try agent(["revoke", otherPub] + d)
        #expect(r.code == 0 && r.out.hasPrefix("revoked node-b"))
        #expect(s.list("authorized_keys").count == 1)
        expectOneLineError(try agent(["revoke", "laptop"] + d), contains: "no trusted peer named or keyed 'laptop'")
    }

    @Test func trustRefusesCollisionsAndBadKeys() throws {
        let s = Scratch()
        let d = ["--config-dir", s.path]
        #expect(try agent(["trust", vectorPub, "--name", "a"] + d).code == 0)
        expectOneLineError(try agent(["trust", vectorPub, "--name", "b"] + d), contains: "already trusted as 'a'")
        expectOneLineError(try agent(["trust", otherPub, "--name", "a"] + d), contains: "the name 'a' is already used")
        expectOneLineError(try agent(["trust", "garbage!!", "--name", "c"] + d), contains: "not valid base64")
        expectOneLineError(try agent(["trust", "Zm9vYmFy", "--name", "c"] + d), contains: "decodes to 6 bytes, expected 32")
        let notPoint = Data(repeating: 0xff, count: 32).base64EncodedString()
        expectOneLineError(try agent(["trust", notPoint, "--name", "c"] + d), contains: "not a valid Ed25519 public key")
        expectOneLineError(try agent(["trust", s.path + "/missing.pub"] + d), contains: "No such file or directory")
        let twoKeys = try s.file("two.pub", vectorPub + "\n" + otherPub + "\n")
        expectOneLineError(try agent(["trust", twoKeys] + d), contains: "unexpected extra content")
        let empty = try s.file("empty.pub", "")
        expectOneLineError(try agent(["trust", empty] + d), contains: "the key is empty")
        expectOneLineError(try agent(["trust", otherPub, "--name", "../escape"] + d), contains: "invalid name", code: 1)
        // Nothing half-written or extra was left behind.
        #expect(s.list("authorized_keys") == ["a.pub"])
    }

    @Test func badInvocationsAreOneLine() throws {
        let s = Scratch()
        expectOneLineError(try agent(["--bogus"]), contains: "Unknown option '--bogus'", code: 64)
        expectOneLineError(try agent(["keygen", "--bogus", "--config-dir", s.path]), contains: "Unknown option", code: 64)
        expectOneLineError(try agent(["frobnicate"]), contains: "frobnicate", code: 64)
        expectOneLineError(try agent(["trust"]), contains: "Missing expected argument", code: 64)
        expectOneLineError(try agent(["show-identity", "--config-dir"]), contains: "Missing value for '--config-dir", code: 64)
        expectOneLineError(try agent(["show-identity", "--config-dir", ""]), contains: "--config-dir must not be empty")
        expectOneLineError(try agent(["show-identity", "--config-dir", s.path]), contains: "no identity at")
        // authorized_keys is a file, not a directory.
        _ = try s.file("authorized_keys", "oops")
        expectOneLineError(try agent(["trusted", "--config-dir", s.path]), contains: "authorized_keys")
        expectOneLineError(try agent(["trust", vectorPub, "--config-dir", s.path]), contains: "authorized_keys")
        // A configuration directory under a regular file.
        expectOneLineError(try agent(["keygen", "--config-dir", s.path + "/authorized_keys/x"]), contains: "authorized_keys")
        // Control-socket commands with no agent behind the socket (none, and a stale socket file).
        for cmd in ["status", "peers", "down"] {
            expectOneLineError(try agent([cmd, "--runtime-dir", s.path + "/run"]), contains: "no meshguard-agent is running (nothing answers on \(s.path)/run/control.sock)")
        }
        _ = try s.file("run2/control.sock", "")
        expectOneLineError(try agent(["status", "--json", "--runtime-dir", s.path + "/run2"]), contains: "no meshguard-agent is running")
        expectOneLineError(try agent(["up", "--admin-group"]), contains: "Missing value for '--admin-group", code: 64)
        // NAT traversal flags.
        expectOneLineError(try agent(["up", "--stun-server", "2001:db8::1"]), contains: "'2001:db8::1' is not a STUN server", code: 64)
        expectOneLineError(try agent(["up", "--relay", "sometimes"]), contains: "--relay", code: 64)
        expectOneLineError(try agent(["netcheck", "--stun-server", "stun.example.com:99999"]), contains: "is not a STUN server", code: 64)
        expectOneLineError(try agent(["netcheck", "--config-dir", s.path + "/empty"]), contains: "netcheck: no STUN servers (give --stun-server host:port")
    }

    /// `up` reads <config-dir>/meshguard-agent.toml before it touches anything; a mistake names the file, the line and the fix.
    @Test func configurationFileMistakesAreOneLineWithFileAndLine() throws {
        let s = Scratch()
        let file = try s.file("meshguard-agent.toml", "# settings\nmtu = 100\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):2: 'mtu' must be between 1280 and 65535 (not 100)")
        _ = try s.file("meshguard-agent.toml", "seeds = [\n  \"192.0.2.1:51821\",\n]\nadvertise = \"example\"\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):4: 'example' is not an IP address")
        _ = try s.file("meshguard-agent.toml", "\n\nseeds = [\"nowhere\"]\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):3: 'nowhere' is not a seed")
        _ = try s.file("meshguard-agent.toml", "interface = \"much-too-long-name\"\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):1: invalid interface name 'much-too-long-name'")
        _ = try s.file("meshguard-agent.toml", "[agent]\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):1: tables ([section]) are not used")
        expectOneLineError(try agent(["up", "--config-dir", s.path, "--config", s.path + "/missing.toml"]), contains: "missing.toml")
        expectOneLineError(try agent(["up", "--config", ""]), contains: "--config must not be empty", code: 64)
        _ = try s.file("meshguard-agent.toml", "stun-servers = [\"192.0.2.1:3478\", \"[2001:db8::1]3478\"]\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):1: '[2001:db8::1]3478' is not a STUN server")
        _ = try s.file("meshguard-agent.toml", "relay = \"maybe\"\n")
        expectOneLineError(try agent(["up", "--config-dir", s.path]), contains: "\(file):1:")
    }

    /// An unreadable configuration directory (run as an unprivileged user; CI runs as root).
    @Test func unreadableDirectoryIsAOneLineError() throws {
        try #require(getuid() == 0, "needs root to switch to an unprivileged user")
        let s = Scratch()
        _ = try s.file("conf/identity.key", vectorKey)
        chmod(s.path + "/conf", 0o700)
        chmod(s.path, 0o755)
        let r = try agent(["--reuid=65534", "--regid=65534", "--clear-groups", agentBinary, "show-identity", "--config-dir", s.path + "/conf"],
                          executable: "/usr/bin/setpriv")
        expectOneLineError(r, contains: "Permission denied")
        let t = try agent(["--reuid=65534", "--regid=65534", "--clear-groups", agentBinary, "trusted", "--config-dir", s.path + "/conf"],
                          executable: "/usr/bin/setpriv")
        expectOneLineError(t, contains: "Permission denied")
    }

    @Test func versionAndHelp() throws {
        let v = try agent(["--version"])
        #expect(v.code == 0 && v.out == "0.1.0\n")
        let h = try agent(["--help"])
        #expect(h.code == 0)
        for word in ["keygen", "export", "show-identity", "trust", "revoke", "trusted", "Examples:"] {
            #expect(h.out.contains(word), "help lacks \(word)")
        }
        let sub = try agent(["trust", "--help"])
        #expect(sub.code == 0 && sub.out.contains("--name"))
    }

    @Test func trustedWarnsAboutBrokenFilesAndShowsCollisions() throws {
        let s = Scratch()
        let d = ["--config-dir", s.path]
        #expect(try agent(["trust", vectorPub, "--name", "good"] + d).code == 0)
        _ = try s.file("authorized_keys/bad.pub", "nonsense\n")
        let r = try agent(["trusted"] + d)
        #expect(r.code == 0)
        #expect(r.out.contains("good"))
        #expect(r.err.contains("warning: skipped") && r.err.contains("bad.pub"))
    }
}
