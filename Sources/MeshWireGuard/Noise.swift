// The Noise_IKpsk2 handshake as WireGuard uses it (paper section 5.4, kernel
// noise.c), as pure functions over explicit state. No I/O, no clock: the
// caller supplies ephemeral keys, indices and the timestamp.
//
//   Noise_IKpsk2:
//     <- s
//     ******
//     -> e, es, s, ss, {t}
//     <- e, ee, se, psk, {}
//
//   Ci = HASH(CONSTRUCTION), Hi = HASH(Ci || IDENTIFIER)
//   initiator -> responder (initiation):
//     C = Ci; H = HASH(Hi || S_r)
//     H = HASH(H || E_i); C = KDF1(C, E_i)                    "e"
//     (C, k) = KDF2(C, DH(E_i, S_r))                          "es"
//     static = AEAD(k, 0, S_i, H); H = HASH(H || static)      "s"
//     (C, k) = KDF2(C, DH(S_i, S_r))                          "ss"
//     ts = AEAD(k, 0, TAI64N, H); H = HASH(H || ts)           "{t}"
//   responder -> initiator (response):
//     H = HASH(H || E_r); C = KDF1(C, E_r)                    "e"
//     C = KDF1(C, DH(E_r, E_i))                               "ee"
//     C = KDF1(C, DH(E_r, S_i))                               "se"
//     (C, t, k) = KDF3(C, Q); H = HASH(H || t)                "psk"
//     empty = AEAD(k, 0, "", H); H = HASH(H || empty)         "{}"
//   both: (T_send, T_recv) = KDF2(C, "") — the initiator sends with the first.
import MeshBase
import MeshCrypto

public enum HandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    case noPrivateKey
    case lowOrderPoint
    case decryptionFailed
    case unknownPeer
    case replayedTimestamp
    case initiationFlood
    case unexpectedResponse

    public var description: String {
        switch self {
        case .noPrivateKey: return "no private key configured"
        case .lowOrderPoint: return "a public key is a low-order point"
        case .decryptionFailed: return "handshake decryption failed"
        case .unknownPeer: return "initiation from an unknown static key"
        case .replayedTimestamp: return "replayed handshake timestamp"
        case .initiationFlood: return "handshake initiations too frequent"
        case .unexpectedResponse: return "response to no pending initiation"
        }
    }
}

/// This device's static key pair and the values derived from it.
public struct LocalStatic: Sendable {
    public let privateKey: X25519.PrivateKey
    public let publicKey: Bytes32
    /// HASH(LABEL-MAC1 || S_pub): the key under which others' mac1 to us is checked.
    let mac1Key: [UInt8]
    /// HASH(LABEL-COOKIE || S_pub): encrypts cookie replies we send.
    let cookieKey: [UInt8]

    public init(privateKey: X25519.PrivateKey) {
        self.privateKey = privateKey
        publicKey = privateKey.publicKey
        mac1Key = BLAKE2s.hash(WireGuardProtocol.labelMAC1, publicKey.bytes)
        cookieKey = BLAKE2s.hash(WireGuardProtocol.labelCookie, publicKey.bytes)
    }
}

/// A remote static key and what is precomputed for it.
public struct RemoteStatic: Sendable {
    public let publicKey: Bytes32
    /// DH(S_local, S_remote), or nil when either key is a low-order point.
    let staticStatic: SecretBytes?
    /// HASH(LABEL-MAC1 || S_remote): mac1 of messages we send to it.
    let mac1Key: [UInt8]
    /// HASH(LABEL-COOKIE || S_remote): decrypts cookie replies it sends us.
    let cookieKey: [UInt8]

    public init(publicKey: Bytes32, local: LocalStatic?) {
        self.publicKey = publicKey
        staticStatic = try? local?.privateKey.sharedSecret(with: publicKey)
        mac1Key = BLAKE2s.hash(WireGuardProtocol.labelMAC1, publicKey.bytes)
        cookieKey = BLAKE2s.hash(WireGuardProtocol.labelCookie, publicKey.bytes)
    }
}

/// The symmetric state of a handshake in progress: chaining key C and hash H.
struct SymmetricState {
    var chainingKey: SecretBytes
    var hash: [UInt8]

    static let initialChainingKey = BLAKE2s.hash(WireGuardProtocol.construction)
    static let initialHash = BLAKE2s.hash(initialChainingKey, WireGuardProtocol.identifier)

    /// C = Ci, H = HASH(Hi || S_responder).
    init(responderStatic: Bytes32) {
        chainingKey = SecretBytes(copying: SymmetricState.initialChainingKey)
        hash = BLAKE2s.hash(SymmetricState.initialHash, responderStatic.bytes)
    }

    mutating func mixHash(_ data: [UInt8]) { hash = BLAKE2s.hash(hash, data) }

    /// "e": H = HASH(H || E); C = KDF1(C, E).
    mutating func mixEphemeral(_ e: Bytes32) {
        mixHash(e.bytes)
        chainingKey = WireGuardKDF.kdf1(key: chainingKey, input: e.bytes)
    }

    /// (C, k) = KDF2(C, dh): for "es" and "ss".
    mutating func mixKey(_ dh: SecretBytes) -> SecretBytes {
        var input = dh.unsafeExportedBytes()
        defer { ConstantTime.wipe(&input) }
        let (c, k) = WireGuardKDF.kdf2(key: chainingKey, input: input)
        chainingKey = c
        return k
    }

    /// C = KDF1(C, dh): for "ee" and "se".
    mutating func mixDH(_ dh: SecretBytes) {
        var input = dh.unsafeExportedBytes()
        defer { ConstantTime.wipe(&input) }
        chainingKey = WireGuardKDF.kdf1(key: chainingKey, input: input)
    }

    /// (C, t, k) = KDF3(C, Q); H = HASH(H || t).
    mutating func mixPresharedKey(_ psk: SecretBytes) -> SecretBytes {
        var input = psk.unsafeExportedBytes()
        defer { ConstantTime.wipe(&input) }
        let (c, t, k) = WireGuardKDF.kdf3(key: chainingKey, input: input)
        chainingKey = c
        mixHash(t.unsafeExportedBytes())
        return k
    }

    /// AEAD(k, 0, plaintext, H), then H = HASH(H || ciphertext).
    mutating func encryptAndHash(_ plaintext: [UInt8], key: SecretBytes) -> [UInt8] {
        let c = ChaChaPoly.seal(key: key, counter: 0, plaintext: plaintext, aad: hash)
        mixHash(c)
        return c
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8], key: SecretBytes) throws(HandshakeError) -> [UInt8] {
        guard let p = try? ChaChaPoly.open(key: key, counter: 0, ciphertext: ciphertext, aad: hash) else {
            throw .decryptionFailed
        }
        mixHash(ciphertext)
        return p
    }

    /// (T1, T2) = KDF2(C, "").
    func transportKeys() -> (SecretBytes, SecretBytes) { WireGuardKDF.kdf2(key: chainingKey, input: []) }
}

/// What the initiator remembers between sending an initiation and receiving the response.
struct InitiatorHandshake {
    var state: SymmetricState
    let ephemeral: X25519.PrivateKey
    let localIndex: UInt32
}

/// What the responder learned from a valid initiation.
struct ConsumedInitiation {
    var state: SymmetricState
    let remoteStatic: Bytes32
    let remoteEphemeral: Bytes32
    let remoteIndex: UInt32
    let timestamp: [UInt8]
}

/// Transport keys of a completed handshake.
public struct SessionKeys: Sendable {
    public let sending: SecretBytes
    public let receiving: SecretBytes
    public let localIndex: UInt32
    public let remoteIndex: UInt32
    public let isInitiator: Bool
}

enum Noise {
    /// Builds an initiation (mac1 and mac2 left zero for the cookie layer).
    static func createInitiation(local: LocalStatic, remote: RemoteStatic, presharedKey: SecretBytes,
                                 ephemeral: X25519.PrivateKey, timestamp: [UInt8],
                                 localIndex: UInt32) throws(HandshakeError) -> ([UInt8], InitiatorHandshake) {
        guard let ss = remote.staticStatic else { throw .lowOrderPoint }
        var st = SymmetricState(responderStatic: remote.publicKey)
        let e = ephemeral.publicKey
        st.mixEphemeral(e)
        guard let es = try? ephemeral.sharedSecret(with: remote.publicKey) else { throw .lowOrderPoint }
        let k1 = st.mixKey(es)
        let encryptedStatic = st.encryptAndHash(local.publicKey.bytes, key: k1)
        let k2 = st.mixKey(ss)
        let encryptedTimestamp = st.encryptAndHash(timestamp, key: k2)
        var msg: [UInt8] = [WireGuardProtocol.messageHandshakeInitiation, 0, 0, 0]
        msg.reserveCapacity(WireGuardProtocol.initiationSize)
        msg.appendLE(localIndex)
        msg.append(e)
        msg += encryptedStatic
        msg += encryptedTimestamp
        msg += [UInt8](repeating: 0, count: 32)
        return (msg, InitiatorHandshake(state: st, ephemeral: ephemeral, localIndex: localIndex))
    }

    /// Decrypts an initiation addressed to `local`: the initiator's static key
    /// first, then (through `lookup`, which gives that peer's precomputed
    /// values) the timestamp. Replay and flood checks are the caller's, with
    /// the returned timestamp.
    static func consumeInitiation(_ m: UnsafeRawBufferPointer, local: LocalStatic,
                                  lookup: (Bytes32) -> RemoteStatic?) throws(HandshakeError) -> ConsumedInitiation {
        typealias L = Layout.Initiation
        var st = SymmetricState(responderStatic: local.publicKey)
        let e = m.bytes32(at: L.ephemeral)
        st.mixEphemeral(e)
        guard let es = try? local.privateKey.sharedSecret(with: e) else { throw .lowOrderPoint }
        let k1 = st.mixKey(es)
        let staticBytes = try st.decryptAndHash(m.array(L.encryptedStatic..<L.encryptedTimestamp), key: k1)
        guard let remoteKey = Bytes32(staticBytes) else { throw .decryptionFailed }
        guard let remote = lookup(remoteKey) else { throw .unknownPeer }
        guard let ss = remote.staticStatic else { throw .lowOrderPoint }
        let k2 = st.mixKey(ss)
        let timestamp = try st.decryptAndHash(m.array(L.encryptedTimestamp..<L.mac1), key: k2)
        return ConsumedInitiation(state: st, remoteStatic: remoteKey, remoteEphemeral: e,
                                  remoteIndex: m.u32(at: L.sender), timestamp: timestamp)
    }

    /// Builds the response to a consumed initiation and derives the responder's keys.
    static func createResponse(_ consumed: ConsumedInitiation, remote: RemoteStatic, presharedKey: SecretBytes,
                               ephemeral: X25519.PrivateKey, localIndex: UInt32) throws(HandshakeError) -> ([UInt8], SessionKeys) {
        var st = consumed.state
        let e = ephemeral.publicKey
        st.mixEphemeral(e)
        guard let ee = try? ephemeral.sharedSecret(with: consumed.remoteEphemeral),
              let se = try? ephemeral.sharedSecret(with: consumed.remoteStatic) else { throw .lowOrderPoint }
        st.mixDH(ee)
        st.mixDH(se)
        let k = st.mixPresharedKey(presharedKey)
        let empty = st.encryptAndHash([], key: k)
        var msg: [UInt8] = [WireGuardProtocol.messageHandshakeResponse, 0, 0, 0]
        msg.reserveCapacity(WireGuardProtocol.responseSize)
        msg.appendLE(localIndex)
        msg.appendLE(consumed.remoteIndex)
        msg.append(e)
        msg += empty
        msg += [UInt8](repeating: 0, count: 32)
        let (t1, t2) = st.transportKeys()
        return (msg, SessionKeys(sending: t2, receiving: t1, localIndex: localIndex,
                                 remoteIndex: consumed.remoteIndex, isInitiator: false))
    }

    /// Checks a response against the pending initiation and derives the initiator's keys.
    static func consumeResponse(_ m: UnsafeRawBufferPointer, pending: InitiatorHandshake, local: LocalStatic,
                                presharedKey: SecretBytes) throws(HandshakeError) -> SessionKeys {
        typealias L = Layout.Response
        var st = pending.state
        let e = m.bytes32(at: L.ephemeral)
        st.mixEphemeral(e)
        guard let ee = try? pending.ephemeral.sharedSecret(with: e),
              let se = try? local.privateKey.sharedSecret(with: e) else { throw .lowOrderPoint }
        st.mixDH(ee)
        st.mixDH(se)
        let k = st.mixPresharedKey(presharedKey)
        _ = try st.decryptAndHash(m.array(L.encryptedNothing..<L.mac1), key: k)
        let (t1, t2) = st.transportKeys()
        return SessionKeys(sending: t1, receiving: t2, localIndex: pending.localIndex,
                           remoteIndex: m.u32(at: L.sender), isInitiator: true)
    }
}

/// TAI64N timestamps (cr.yp.to/libtai/tai64.html): 8 bytes big-endian TAI64
/// seconds, 4 bytes big-endian nanoseconds, rounded down to
/// `timestampGranularityNanoseconds`. Big-endian, so byte order is time order.
enum TAI64N {
    static func encode(_ t: WallTime) -> [UInt8] {
        let secs = WireGuardProtocol.tai64Base &+ UInt64(bitPattern: t.seconds)
        let g = WireGuardProtocol.timestampGranularityNanoseconds
        let nanos = UInt32(clamping: t.nanoseconds - t.nanoseconds % g)
        var out: [UInt8] = []
        Swift.withUnsafeBytes(of: secs.bigEndian) { out.append(contentsOf: $0) }
        Swift.withUnsafeBytes(of: nanos.bigEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// True when `a` is strictly later than `b`.
    static func isAfter(_ a: [UInt8], _ b: [UInt8]) -> Bool { b.lexicographicallyPrecedes(a) }
}
