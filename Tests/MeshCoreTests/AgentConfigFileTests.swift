// The configuration file: every key with its type, the TOML subset (arrays
// over lines, comments, escapes, CRLF), and every mistake reported with the
// file, the line and the fix.
import Testing
@testable import MeshCore

@Suite struct AgentConfigFileTests {
    let path = "/etc/meshguard/meshguard-agent.toml"

    @Test func everyKey() throws {
        let text = """
        # meshguard-agent configuration
        mode = "userspace"          # or kernel, auto
        interface = 'mg1'
        mtu = 1_380
        listen-port = 51821
        control-port = 51822
        seeds = [
            "192.0.2.1:51821",      # the first seed
            "[2001:db8::1]:51821",
            "dns:example.com",      # trailing comma next
        ]
        advertise = "192.0.2.10"
        peers-file = "/etc/meshguard/static-peers"
        runtime-dir = "/run/meshguard"
        admin-group = "netadm"
        log-level = "debug"
        log-format = "json"
        metrics-address = "127.0.0.1:9586"
        open = false
        "quoted-key-is-fine" = 1
        """
        // The last line's key is unknown: everything before it parsed.
        let e = #expect(throws: ConfigFileError.self) { try AgentConfigFile(text: text, path: path) }
        #expect(e?.line == 20)
        #expect(e?.message.hasPrefix("unknown key 'quoted-key-is-fine' (known keys: mode, interface,") == true)
        let c = try AgentConfigFile(text: text.split(separator: "\n").dropLast().joined(separator: "\r\n"), path: path)
        #expect(c.string("mode") == "userspace" && c.string("interface") == "mg1")
        #expect(c.integer("mtu") == 1380 && c.integer("listen-port") == 51821 && c.integer("control-port") == 51822)
        #expect(c.strings("seeds") == ["192.0.2.1:51821", "[2001:db8::1]:51821", "dns:example.com"])
        #expect(c.string("advertise") == "192.0.2.10" && c.string("admin-group") == "netadm")
        #expect(c.string("log-level") == "debug" && c.string("log-format") == "json" && c.bool("open") == false)
        #expect(c.entries["seeds"]?.line == 7 && c.entries["open"]?.line == 19)
        #expect(c.string("absent") == nil && c.integer("mode") == nil)
    }

    @Test func emptyAndCommentOnlyFilesSetNothing() throws {
        #expect(try AgentConfigFile(text: "", path: path).entries.isEmpty)
        #expect(try AgentConfigFile(text: "# nothing\n\n   # at all\n", path: path).entries.isEmpty)
    }

    /// Found by fuzzing (fuzz/, target config): deeply nested arrays recursed until the stack ran out.
    @Test func deeplyNestedArraysAreRefusedWithoutRecursion() {
        let text = "seeds = " + String(repeating: "[", count: 200_000)
        let e = #expect(throws: ConfigFileError.self) { try AgentConfigFile(text: text, path: path) }
        #expect(e?.line == 1 && e?.message.contains("nested arrays are not used") == true)
    }

    @Test func escapes() throws {
        let c = try AgentConfigFile(text: #"interface = "m\u0067\t0\\\"""#, path: path)
        #expect(c.string("interface") == "mg\t0\\\"")
    }

    /// Each mistake: (file text, line, a fragment of the message).
    @Test(arguments: [
        ("mtu = 100", 1, "'mtu' must be between 1280 and 65535 (not 100)"),
        ("mtu = \"1420\"", 1, "'mtu' must be an integer between 1280 and 65535, e.g. mtu = 1280 (not a string)"),
        ("\n\nmode = \"fast\"", 3, "'mode' must be one of \"auto\", \"kernel\", \"userspace\""),
        ("interface = mg0", 1, "'mg0' is not a value: strings need quotes (\"mg0\")"),
        ("open = yes", 1, "'yes' is not a value"),
        ("open = \"true\"", 1, "'open' must be true or false (not a string)"),
        ("seeds = \"192.0.2.1:51821\"", 1, "'seeds' must be an array of non-empty strings, e.g. seeds = ["),
        ("seeds = [1, 2]", 1, "'seeds' must be an array of non-empty strings"),
        ("stun-servers = \"192.0.2.1:3478\"", 1, "'stun-servers' must be an array of non-empty strings, e.g. stun-servers = [\"stun.example.com:3478\""),
        ("interface = \"\"", 1, "'interface' must be a non-empty string"),
        ("mtu = 1420\nmtu = 1380", 2, "'mtu' is set twice (first on line 1); keep one"),
        ("[agent]\nmtu = 1420", 1, "tables ([section]) are not used"),
        ("agent.mtu = 1420", 1, "dotted keys are not used"),
        ("mtu = 1420.5", 1, "'1420.5' is not an integer"),
        ("mtu = 01420", 1, "leading zeros are not allowed"),
        ("mtu 1420", 1, "expected '=' after 'mtu'"),
        ("mtu =", 1, "missing value after '='"),
        ("mtu = 1420 1380", 1, "unexpected '1' after the value"),
        ("interface = \"mg0", 1, "unterminated string: add the closing \""),
        ("seeds = [\"a\",\n \"b\"\n", 1, "unterminated array: add the closing ]"),
        ("seeds = [\"a\" \"b\"]", 1, "expected ',' or ']'"),
        ("interface = \"a\\qb\"", 1, "unknown escape '\\q'"),
        ("= 3", 1, "expected a key"),
        ("nonsense = 1", 1, "unknown key 'nonsense'"),
    ] as [(String, Int, String)])
    func mistakesNameTheLineAndTheFix(text: String, line: Int, fragment: String) {
        do {
            _ = try AgentConfigFile(text: text, path: path)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("\(path):\(line): "))
            #expect(!error.description.contains("\n"))
        }
    }
}
