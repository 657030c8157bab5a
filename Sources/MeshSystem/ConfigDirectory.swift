// The configuration directory and the identity and trust files in it
// (docs/identity.md):
//   <dir>/identity.key                 0600, base64 of the Ed25519 secret key
//   <dir>/identity.pub                 0600, base64 of the Ed25519 public key
//   <dir>/authorized_keys/<name>.pub   0600, one trusted peer each
// Resolution order: --config-dir, then $MESHGUARD_CONFIG_DIR, then
// /etc/meshguard for root, else $XDG_CONFIG_HOME/meshguard or ~/.config/meshguard.
import MeshBase
import MeshIdentity

public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct ConfigDirectory: Sendable, Equatable {
    public static let systemPath = "/etc/meshguard"
    public static let environmentVariable = "MESHGUARD_CONFIG_DIR"

    public let path: String
    public init(path: String) { self.path = path }

    public var identityKeyPath: String { Files.join(path, "identity.key") }
    public var identityPubPath: String { Files.join(path, "identity.pub") }
    public var authorizedKeysPath: String { Files.join(path, "authorized_keys") }

    /// Where the configuration lives, from the flag, the environment and the user.
    public static func resolve(flag: String?, environment: [String: String], uid: UInt32) throws(ConfigError) -> ConfigDirectory {
        if let f = flag {
            guard !f.isEmpty else { throw ConfigError("--config-dir must not be empty") }
            return ConfigDirectory(path: f)
        }
        if let e = environment[environmentVariable], !e.isEmpty { return ConfigDirectory(path: e) }
        if uid == 0 { return ConfigDirectory(path: systemPath) }
        if let x = environment["XDG_CONFIG_HOME"], x.hasPrefix("/") { return ConfigDirectory(path: Files.join(x, "meshguard")) }
        if let h = environment["HOME"], h.hasPrefix("/") { return ConfigDirectory(path: Files.join(h, ".config/meshguard")) }
        throw ConfigError("cannot find a configuration directory: set --config-dir or \(environmentVariable)")
    }

    // MARK: identity

    /// Loads `identity.key`, refusing one that group or others can read.
    public func loadIdentity() throws(ConfigError) -> Identity {
        let p = identityKeyPath
        var bytes: [UInt8]
        do {
            bytes = try Files.read(p, limit: 4096, secret: true)
        } catch {
            if error.isNotFound { throw ConfigError("no identity at \(p); create one with: meshguard-agent keygen") }
            throw ConfigError(error.description)
        }
        defer { for i in bytes.indices { bytes[i] = 0 } }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ConfigError("\(p): not a key file (not UTF-8 text)") }
        do {
            return try Identity(keyFile: text)
        } catch {
            throw ConfigError("\(p): \(error)")
        }
    }

    /// The public key in `identity.pub`, or nil when the file is absent.
    public func loadIdentityPub() throws(ConfigError) -> IdentityPublicKey? {
        let p = identityPubPath
        do {
            return try IdentityPublicKey(base64: Files.readText(p, limit: 4096))
        } catch let e as FileError where e.isNotFound {
            return nil
        } catch {
            throw ConfigError("\(p): \(error)")
        }
    }

    /// Writes a new identity, both files 0600 and atomic: identity.pub first,
    /// then identity.key; if the key cannot be written (a full disk), the
    /// public file is put back as it was, so a failed keygen changes nothing
    /// (a crash between the two leaves a public file without, or not matching,
    /// its key: show-identity says so and keygen can simply be run again).
    /// Refuses to replace an existing identity.key unless `force`.
    public func createIdentity(_ identity: Identity, force: Bool) throws(ConfigError) {
        do {
            try Files.createDirectory(path, mode: 0o755)
            if !force, try Files.exists(identityKeyPath) {
                throw ConfigError("an identity already exists at \(identityKeyPath); use --force to replace it (this changes the node's addresses)")
            }
            var keyBytes = identity.keyFileBytes()
            defer { for i in keyBytes.indices { keyBytes[i] = 0 } }
            let previousPub = try? Files.read(identityPubPath, limit: 4096)
            try Files.writeAtomically(identityPubPath, contents: Array(identity.publicFileContents.utf8), mode: 0o600)
            do {
                try Files.writeAtomically(identityKeyPath, contents: keyBytes, mode: 0o600)
            } catch {
                if let old = previousPub { try? Files.writeAtomically(identityPubPath, contents: old, mode: 0o600) } else { try? Files.remove(identityPubPath) }
                throw error
            }
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError("\(error)")
        }
    }

    // MARK: trust

    /// A file in authorized_keys/ that could not be used, and why.
    public struct TrustProblem: Sendable, Equatable, CustomStringConvertible {
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// Reads authorized_keys/: every `<name>.pub` with a valid key. Files that
    /// are not keys, or repeat a key, are reported in `problems` and skipped,
    /// so one bad file never takes the whole trust set down. A missing
    /// directory is an empty trust set.
    public func loadTrust() throws(ConfigError) -> (trust: TrustSet, problems: [TrustProblem]) {
        let dir = authorizedKeysPath
        var set = TrustSet()
        var problems: [TrustProblem] = []
        let names: [String]
        do {
            guard try Files.exists(dir) else { return (set, []) }
            names = try Files.list(dir)
        } catch {
            throw ConfigError(error.description)
        }
        for file in names where file.hasSuffix(".pub") && !file.hasPrefix(".") {
            let name = String(file.dropLast(4))
            let p = Files.join(dir, file)
            do {
                // Whoever can write here decides who is trusted: group/other-writable files are refused.
                let key = try IdentityPublicKey(base64: Files.readText(p, limit: 4096, trusted: true))
                try set.add(name: name, key: key)
            } catch {
                problems.append(TrustProblem(file: p, reason: "\(error)"))
            }
        }
        return (set, problems)
    }

    /// Trusts `key` as `name`: validates against the current set, then writes
    /// authorized_keys/<name>.pub atomically (0600).
    public func trust(_ key: IdentityPublicKey, name: String) throws(ConfigError) {
        var (set, _) = try loadTrust()
        do {
            try set.add(name: name, key: key)
        } catch {
            throw ConfigError("\(error)")
        }
        let p = Files.join(authorizedKeysPath, name + ".pub")
        do {
            // A file there that did not load (a broken key) still owns the name.
            if try Files.exists(p) {
                throw ConfigError("\(p) already exists but is not a valid key; remove it or choose another --name")
            }
            try Files.createDirectory(authorizedKeysPath, mode: 0o755)
            try Files.writeAtomically(p, contents: Array(key.fileContents.utf8), mode: 0o600)
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError("\(error)")
        }
    }

    /// Removes the peer with this name or key; returns it.
    @discardableResult
    public func revoke(_ nameOrKey: String) throws(ConfigError) -> TrustedPeer {
        var (set, _) = try loadTrust()
        let peer: TrustedPeer
        do {
            peer = try set.remove(nameOrKey)
            try Files.remove(Files.join(authorizedKeysPath, peer.name + ".pub"))
        } catch {
            throw ConfigError("\(error)")
        }
        return peer
    }
}
