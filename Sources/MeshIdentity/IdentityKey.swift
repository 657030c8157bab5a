// Node identity: an Ed25519 key pair, and the file formats that hold it
// (compatible with the earlier implementation, see docs/identity.md):
//   identity.key             base64(64-byte libsodium secret key = seed || public) + "\n"
//   identity.pub             base64(32-byte public key) + "\n"
//   authorized_keys/<n>.pub  base64(32-byte public key) + "\n"
import MeshBase
import MeshCrypto

/// Why a key or key file was refused. Each case reads as one line.
public enum KeyError: Error, Equatable, CustomStringConvertible {
    case empty
    case notBase64
    case wrongLength(expected: Int, got: Int)
    case notACurvePoint
    case secretPublicMismatch
    case trailingData

    public var description: String {
        switch self {
        case .empty: return "the key is empty"
        case .notBase64: return "the key is not valid base64"
        case let .wrongLength(e, g): return "the key decodes to \(g) bytes, expected \(e)"
        case .notACurvePoint: return "the key is not a valid Ed25519 public key"
        case .secretPublicMismatch: return "the public half does not match the secret seed"
        case .trailingData: return "unexpected extra content after the key"
        }
    }
}

/// The text of a one-line key file: the first line, which must be the only
/// non-empty one, with surrounding blanks and a trailing newline (LF or CRLF) dropped.
func singleLine(_ text: String) throws -> String {
    let lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
    let nonBlank = lines.map { $0.trimmingBlanks() }.filter { !$0.isEmpty }
    guard let first = nonBlank.first else { throw KeyError.empty }
    guard nonBlank.count == 1 else { throw KeyError.trailingData }
    return first
}

extension Substring {
    func trimmingBlanks() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

/// A validated Ed25519 public key: 32 bytes of canonical base64 that encode a
/// valid curve point (so it also has a WireGuard public key).
public struct IdentityPublicKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let raw: Bytes32

    public init(raw: Bytes32) throws {
        guard Ed25519.isValidPublicKey(raw) else { throw KeyError.notACurvePoint }
        self.raw = raw
    }

    /// Parses base64 text (a trailing newline is allowed, as in `.pub` files).
    public init(base64 text: String) throws {
        let line = try singleLine(text)
        guard let bytes = Base64.decode(line) else { throw KeyError.notBase64 }
        guard let raw = Bytes32(bytes) else { throw KeyError.wrongLength(expected: 32, got: bytes.count) }
        try self.init(raw: raw)
    }

    public var base64: String { raw.base64 }
    public var abbreviated: String { raw.abbreviated }
    /// The `.pub` file contents.
    public var fileContents: String { base64 + "\n" }

    /// The WireGuard (X25519) public key of this identity.
    public var wireGuardPublicKey: Bytes32 {
        // Valid points always convert (checked at construction).
        (try? Ed25519.x25519PublicKey(raw)) ?? .zero
    }

    /// The mesh addresses derived from this key.
    public var meshAddresses: MeshAddresses { MeshAddresses(publicKey: raw) }

    public var description: String { abbreviated }
    public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
}

/// This node's identity: the Ed25519 signing key and what derives from it.
public struct Identity: Sendable {
    public let signingKey: Ed25519.SigningKey
    public let publicKey: IdentityPublicKey

    public init(signingKey: Ed25519.SigningKey) {
        self.signingKey = signingKey
        // libsodium derives a valid point from any seed.
        self.publicKey = try! IdentityPublicKey(raw: signingKey.publicKey)
    }

    /// A new random identity.
    public static func generate() -> Identity { Identity(signingKey: .generate()) }

    /// Parses `identity.key` contents: base64 of seed || public key. The public
    /// half must be the one the seed yields, so a corrupted file is caught.
    public init(keyFile text: String) throws {
        let line = try singleLine(text)
        guard var bytes = Base64.decode(line) else { throw KeyError.notBase64 }
        defer { ConstantTime.wipe(&bytes) }
        guard bytes.count == Ed25519.secretKeyLength else {
            throw KeyError.wrongLength(expected: Ed25519.secretKeyLength, got: bytes.count)
        }
        let key = try Ed25519.SigningKey(seed: bytes[0..<32])
        guard Bytes32(bytes[32..<64]) == key.publicKey else { throw KeyError.secretPublicMismatch }
        self.init(signingKey: key)
    }

    /// `identity.key` contents as bytes, for an atomic 0600 write. The caller
    /// wipes the returned array after writing.
    public func keyFileBytes() -> [UInt8] {
        var raw = signingKey.secretKey.unsafeExportedBytes()
        defer { ConstantTime.wipe(&raw) }
        return Array((Base64.encode(raw) + "\n").utf8)
    }

    /// `identity.pub` contents.
    public var publicFileContents: String { publicKey.fileContents }

    /// The WireGuard private key (X25519) derived from the identity.
    public var wireGuardPrivateKey: X25519.PrivateKey { signingKey.x25519PrivateKey }
    /// The WireGuard public key derived from the identity.
    public var wireGuardPublicKey: Bytes32 { publicKey.wireGuardPublicKey }
    public var meshAddresses: MeshAddresses { publicKey.meshAddresses }
}
