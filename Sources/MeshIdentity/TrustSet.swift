// The trust set: the peers this node trusts, by name, as held in
// `authorized_keys/<name>.pub`. Pure evaluation; reading and writing the
// directory is MeshSystem.TrustStore's job.
//
// Invariants: names are unique and valid file stems; a key appears under at
// most one name.
import MeshBase

public enum TrustError: Error, Equatable, CustomStringConvertible {
    case invalidName(String)
    case nameTaken(name: String, existingKey: String)
    case keyAlreadyTrusted(key: String, existingName: String)
    case notFound(String)

    public var description: String {
        switch self {
        case let .invalidName(n):
            return "invalid name '\(n)': use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        case let .nameTaken(n, k):
            return "the name '\(n)' is already used for key \(k); choose another with --name or revoke it first"
        case let .keyAlreadyTrusted(k, n):
            return "key \(k) is already trusted as '\(n)'"
        case let .notFound(what):
            return "no trusted peer named or keyed '\(what)'"
        }
    }
}

public struct TrustedPeer: Hashable, Sendable {
    public let name: String
    public let key: IdentityPublicKey
    public init(name: String, key: IdentityPublicKey) { self.name = name; self.key = key }
}

public struct TrustSet: Sendable, Equatable {
    public private(set) var peersByName: [String: IdentityPublicKey] = [:]
    private var namesByKey: [IdentityPublicKey: String] = [:]

    public init() {}

    /// Valid names are safe file stems: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'.
    public static func isValidName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard (1...64).contains(u.count), u[0] != UInt8(ascii: "."), u[0] != UInt8(ascii: "-") else { return false }
        return u.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45
        }
    }

    /// A default name for a key given without one: `peer-` and the first 12
    /// hex digits of the key.
    public static func defaultName(for key: IdentityPublicKey) -> String {
        "peer-" + Hex.encode(key.raw.bytes.prefix(6))
    }

    public var count: Int { peersByName.count }
    public var peers: [TrustedPeer] { peersByName.keys.sorted().map { TrustedPeer(name: $0, key: peersByName[$0]!) } }
    public func contains(_ key: IdentityPublicKey) -> Bool { namesByKey[key] != nil }
    public func name(of key: IdentityPublicKey) -> String? { namesByKey[key] }

    /// Adds `key` as `name`; refuses an invalid or taken name and a key trusted under another name.
    public mutating func add(name: String, key: IdentityPublicKey) throws {
        guard TrustSet.isValidName(name) else { throw TrustError.invalidName(name) }
        if let existing = namesByKey[key] { throw TrustError.keyAlreadyTrusted(key: key.base64, existingName: existing) }
        if let other = peersByName[name] { throw TrustError.nameTaken(name: name, existingKey: other.base64) }
        peersByName[name] = key
        namesByKey[key] = name
    }

    /// Finds a peer by name, or else by its base64 key.
    public func find(_ nameOrKey: String) -> TrustedPeer? {
        if let k = peersByName[nameOrKey] { return TrustedPeer(name: nameOrKey, key: k) }
        if let k = try? IdentityPublicKey(base64: nameOrKey), let n = namesByKey[k] { return TrustedPeer(name: n, key: k) }
        return nil
    }

    /// Removes a peer by name or key and returns it.
    @discardableResult
    public mutating func remove(_ nameOrKey: String) throws -> TrustedPeer {
        guard let p = find(nameOrKey) else { throw TrustError.notFound(nameOrKey) }
        peersByName[p.name] = nil
        namesByKey[p.key] = nil
        return p
    }

    /// Groups of trusted keys (and optionally this node's own key, named
    /// `self`) whose derived IPv4 addresses collide. Sorted for stable output.
    public func ipv4Collisions(including own: IdentityPublicKey? = nil) -> [IPv4Address: [String]] {
        var byAddress: [IPv4Address: [String]] = [:]
        for p in peers { byAddress[p.key.meshAddresses.ipv4, default: []].append(p.name) }
        if let own { byAddress[own.meshAddresses.ipv4, default: []].append("self") }
        return byAddress.filter { $0.value.count > 1 }.mapValues { $0.sorted() }
    }

    public static func == (a: TrustSet, b: TrustSet) -> Bool { a.peersByName == b.peersByName }
}
