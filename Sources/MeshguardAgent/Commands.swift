// The CLI's commands. Each one resolves the configuration directory, does one
// thing, and reports failures as CLIError (one line, exit 1).
import ArgumentParser
import MeshBase
import MeshIdentity
import MeshSystem
#if canImport(Glibc)
import Glibc
#endif

struct MeshguardAgentCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "meshguard-agent",
        abstract: "A serverless WireGuard mesh VPN agent.",
        discussion: """
        Every node holds an Ed25519 identity and a directory of the peers it trusts
        (authorized_keys/). Mesh addresses (IPv4 10.99.0.0/16, IPv6 fd99:6d67::/64)
        are derived from public keys, so no one allocates them.

        The configuration directory is --config-dir, else $MESHGUARD_CONFIG_DIR,
        else /etc/meshguard for root (~/.config/meshguard for other users).

        Examples:
          meshguard-agent keygen                       create this node's identity
          meshguard-agent show-identity                keys and mesh addresses
          meshguard-agent export > node-a.pub          share the public key
          meshguard-agent trust node-b.pub             trust a peer (named node-b)
          meshguard-agent trust 'RdT2…=' --name laptop trust a key given inline
          meshguard-agent trusted                      list trusted peers
          meshguard-agent revoke laptop                stop trusting a peer
          meshguard-agent wireguard wg0                userspace WireGuard only, set up with wg(8)
          meshguard-agent up --seed 192.0.2.1:51821    join the mesh through a seed
          meshguard-agent status                       what the running agent is doing (--json for tools)
        """,
        version: version,
        subcommands: [Up.self, Status.self, Netcheck.self, Peers.self, Down.self, Keygen.self, Export.self, ShowIdentity.self, Trust.self, Revoke.self, Trusted.self, WireGuardCommand.self, Debug.self]
    )
}

/// The option every command shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .customLong("config-dir"), help: ArgumentHelp("Configuration directory.", valueName: "dir"))
    var configDir: String?

    func directory() throws -> ConfigDirectory {
        var env: [String: String] = [:]
        for name in [ConfigDirectory.environmentVariable, "HOME", "XDG_CONFIG_HOME"] {
            if let v = getenv(name) { env[name] = String(cString: v) }
        }
        do {
            return try ConfigDirectory.resolve(flag: configDir, environment: env, uid: getuid())
        } catch {
            throw CLIError(error)
        }
    }
}

/// Runs a body that throws ConfigError and rethrows it as a one-line CLIError.
func cli<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as CLIError { throw e } catch { throw CLIError(error) }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create this node's identity (identity.key, identity.pub).",
        discussion: "Refuses to replace an existing identity unless --force is given: a new identity means new mesh addresses.")

    @OptionGroup var options: ConfigOptions
    @Flag(help: "Replace an existing identity.") var force = false

    func run() throws {
        let dir = try options.directory()
        let identity = Identity.generate()
        try cli { try dir.createIdentity(identity, force: force) }
        print("created identity \(identity.publicKey.base64) in \(dir.path)")
        print("mesh addresses \(identity.meshAddresses.ipv4) \(identity.meshAddresses.ipv6)")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print this node's public key (the contents of a .pub file).")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let dir = try options.directory()
        let identity = try cli { try dir.loadIdentity() }
        print(identity.publicKey.base64)
    }
}

struct ShowIdentity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show-identity",
        abstract: "Show this node's identity key, WireGuard public key and mesh addresses.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let dir = try options.directory()
        let identity = try cli { try dir.loadIdentity() }
        let pub = try cli { try dir.loadIdentityPub() }
        if pub == nil {
            Terminal.warn("\(dir.identityPubPath) is missing; recreate it with: meshguard-agent export > \(dir.identityPubPath)")
        } else if pub != identity.publicKey {
            Terminal.warn("\(dir.identityPubPath) does not match identity.key; recreate it with: meshguard-agent export > \(dir.identityPubPath)")
        }
        let a = identity.meshAddresses
        print("identity:   \(identity.publicKey.base64)")
        print("wireguard:  \(identity.wireGuardPublicKey.base64)")
        print("mesh ipv4:  \(a.ipv4)")
        print("mesh ipv6:  \(a.ipv6)")
    }
}

struct Trust: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trust a peer: add its public key to authorized_keys/.",
        discussion: """
        KEY-OR-FILE is a base64 Ed25519 public key or the path of a .pub file.
        The name defaults to the file's name without .pub, or peer-<hex> for an
        inline key. A key is trusted under one name only, and a name holds one key.
        """)
    @OptionGroup var options: ConfigOptions
    @Argument(help: ArgumentHelp("A base64 public key, or a .pub file.", valueName: "key-or-file")) var keyOrFile: String
    @Option(help: "The name to trust it as (letters, digits, '.', '_', '-').") var name: String?

    func run() throws {
        let dir = try options.directory()
        var fileStem: String?
        var text = keyOrFile
        // An existing file is read; base64 is a key; anything else that looks
        // like a path is read (and reports why it cannot be); the rest is a key.
        let exists = (try? Files.info(keyOrFile)) != nil
        let isBase64 = Base64.decode(keyOrFile) != nil
        let looksLikePath = keyOrFile.contains("/") || keyOrFile.hasSuffix(".pub")
        if exists || (!isBase64 && looksLikePath) {
            text = try cli { try Files.readText(keyOrFile, limit: 4096) }
            var base = Substring(keyOrFile.split(separator: "/").last ?? Substring(keyOrFile))
            if base.hasSuffix(".pub") { base = base.dropLast(4) }
            fileStem = String(base)
        }
        let key: IdentityPublicKey
        do {
            key = try IdentityPublicKey(base64: text)
        } catch {
            throw CLIError("\(fileStem == nil ? "key" : keyOrFile): \(error)")
        }
        let finalName = name ?? fileStem.flatMap { TrustSet.isValidName($0) ? $0 : nil } ?? TrustSet.defaultName(for: key)
        try cli { try dir.trust(key, name: finalName) }
        print("trusted \(finalName) \(key.base64) (\(key.meshAddresses.ipv4), \(key.meshAddresses.ipv6))")
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop trusting a peer, by name or key.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: ArgumentHelp("The peer's name or base64 key.", valueName: "name-or-key")) var nameOrKey: String

    func run() throws {
        let dir = try options.directory()
        let peer = try cli { try dir.revoke(nameOrKey) }
        print("revoked \(peer.name) \(peer.key.base64)")
    }
}

struct Trusted: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List trusted peers: name, key and mesh addresses.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let dir = try options.directory()
        let (set, problems) = try cli { try dir.loadTrust() }
        for p in problems { Terminal.warn("skipped \(p)") }
        let own = try? dir.loadIdentityPub()
        let collisions = set.ipv4Collisions(including: own ?? nil)
        let rows = set.peers.map { p -> [String] in
            let a = p.key.meshAddresses
            var v4 = "\(a.ipv4)"
            if let group = collisions[a.ipv4] { v4 += " (collides: \(group.filter { $0 != p.name }.joined(separator: ",")))" }
            return [p.name, p.key.base64, v4, "\(a.ipv6)"]
        }
        if rows.isEmpty {
            print("no trusted peers in \(dir.authorizedKeysPath)")
            return
        }
        printTable(header: ["NAME", "KEY", "MESH IPV4", "MESH IPV6"], rows: rows)
    }
}

func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = (0..<header.count).map { c in all.map { $0[c].count }.max() ?? 0 }
    for r in all {
        var line = ""
        for (c, cell) in r.enumerated() {
            line += c == r.count - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count + 2)
        }
        print(line)
    }
}
