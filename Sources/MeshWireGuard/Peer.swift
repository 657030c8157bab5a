// A peer of the userspace device: its static key and precomputed values,
// handshake state, keypairs, staged packets, timers and statistics. Owned and
// mutated only by its WireGuardDevice.
import MeshBase
import MeshCrypto

/// Handshake state of a peer (kernel noise.h: handshake_state).
enum HandshakeState {
    case none
    /// We sent an initiation and wait for the response.
    case initiated(InitiatorHandshake)
}

final class Peer {
    let id: UInt32
    var remote: RemoteStatic
    var presharedKey: SecretBytes
    var endpoint: Endpoint?
    /// Seconds, 0 = off.
    var persistentKeepaliveInterval: UInt16 = 0

    var handshake: HandshakeState = .none
    /// The local index of the pending initiation, registered in the index table.
    var handshakeIndex: UInt32?
    /// Newest TAI64N timestamp accepted from this peer's initiations.
    var latestTimestamp = [UInt8](repeating: 0, count: 12)
    var lastInitiationConsumed: Instant?
    var lastSentHandshake: Instant?
    var keypairs = Keypairs()
    var cookie = CookieGenerator()
    var timers = PeerTimerState()

    /// IP packets waiting for a session, oldest first.
    var staged: [[UInt8]] = []

    var receivedBytes: UInt64 = 0
    var transmittedBytes: UInt64 = 0
    var lastHandshake: WallTime?

    init(id: UInt32, remote: RemoteStatic, presharedKey: SecretBytes) {
        self.id = id
        self.remote = remote
        self.presharedKey = presharedKey
    }

    var publicKey: Bytes32 { remote.publicKey }
}

/// Why a packet was dropped; counted per reason in `DeviceStatistics`.
public enum DropReason: String, CaseIterable, Sendable {
    // Outgoing (from the TUN device).
    case invalidPacket = "invalid-packet"
    case noRoute = "no-route"
    case noEndpoint = "no-endpoint"
    case bufferTooSmall = "buffer-too-small"
    case stagedQueueFull = "staged-queue-full"
    // Incoming (from the network).
    case malformed = "malformed"
    case invalidMAC = "invalid-mac"
    case cookieRequired = "cookie-required"
    case rateLimited = "rate-limited"
    case handshakeFailed = "handshake-failed"
    case replayedHandshake = "replayed-handshake"
    case handshakeFlood = "handshake-flood"
    case unexpectedResponse = "unexpected-response"
    case invalidCookieReply = "invalid-cookie-reply"
    case unknownIndex = "unknown-index"
    case expiredKeypair = "expired-keypair"
    case decryptionFailed = "decryption-failed"
    case replayedPacket = "replayed-packet"
    case invalidInnerPacket = "invalid-inner-packet"
    case disallowedSource = "disallowed-source"
    case noPrivateKey = "no-private-key"
}

/// Counters of the device: drops by reason, and handshake events.
public struct DeviceStatistics: Sendable, Equatable {
    public var drops: [DropReason: UInt64] = [:]
    public var handshakeInitiationsSent: UInt64 = 0
    public var handshakeResponsesSent: UInt64 = 0
    public var cookieRepliesSent: UInt64 = 0
    public var sessionsDerived: UInt64 = 0

    public init() {}

    public func dropped(_ r: DropReason) -> UInt64 { drops[r] ?? 0 }
    public var totalDrops: UInt64 { drops.values.reduce(0, +) }
}
