// The authenticated envelope every control-plane message travels in
// (docs/wire-protocol.md). It names its sender, is signed by the sender's
// identity key, and carries (epoch, counter) for replay protection:
//
//   envelope = "MG" | version u8 (1) | kind u8 | sender key 32
//            | epoch u64 | counter u64 | length u16 | payload
//            | signature 64 (Ed25519 over "meshguard envelope v1" || all before it)
//
// The first byte 'M' (0x4D) can be neither a WireGuard message type (1-4) nor
// a STUN message (top two bits 00), so the shared UDP port classifies it.
// The epoch is chosen by the sender when it starts (its wall clock in
// milliseconds, kept above any epoch it used before); the counter counts
// messages within an epoch. A receiver keeps, per sender, the newest epoch and
// a window of recent counters: an older epoch, or a counter seen or too old,
// is a replay. A message from a key outside the trust set is dropped before
// anything else is looked at.
import MeshBase
import MeshCrypto
import MeshIdentity

public enum EnvelopeKind: UInt8, Sendable, CaseIterable {
    case swim = 1
    case natTraversal = 2
    case relay = 3
}

public struct Envelope: Equatable, Sendable {
    public static let magic: [UInt8] = [0x4d, 0x47]   // "MG"
    public static let version: UInt8 = 1
    static let context = Array("meshguard envelope v1".utf8)
    /// Header before the payload: 2 magic + 1 version + 1 kind + 32 key + 8 epoch + 8 counter + 2 length.
    public static let headerSize = 54
    public static let signatureSize = 64
    /// Largest payload: keeps a whole envelope within a 1280-byte IPv6 path MTU
    /// (1280 - 40 IPv6 - 8 UDP - 54 header - 64 signature = 1114).
    public static let maxPayload = 1114

    public let kind: EnvelopeKind
    public let sender: IdentityPublicKey
    public let epoch: UInt64
    public let counter: UInt64
    public let payload: [UInt8]

    /// True when a datagram starts like an envelope (for port multiplexing).
    public static func looksLikeEnvelope(_ b: UnsafeRawBufferPointer) -> Bool {
        b.count >= 3 && b[0] == magic[0] && b[1] == magic[1]
    }
}

/// Seals envelopes for this node: one epoch per run, a counter per message.
public struct EnvelopeSealer: Sendable {
    public let identity: Identity
    public let epoch: UInt64
    public private(set) var counter: UInt64 = 0

    public init(identity: Identity, epoch: UInt64) { self.identity = identity; self.epoch = epoch }

    public mutating func seal(_ kind: EnvelopeKind, payload: [UInt8]) throws(WireError) -> [UInt8] {
        guard payload.count <= Envelope.maxPayload else { throw WireError(.tooLarge, "payload of \(payload.count) bytes") }
        counter += 1
        var w = ByteWriter()
        w.raw(Envelope.magic)
        w.u8(Envelope.version)
        w.u8(kind.rawValue)
        w.key(identity.publicKey.raw)
        w.u64(epoch)
        w.u64(counter)
        w.blob(payload)
        let signature = identity.signingKey.sign(Envelope.context + w.bytes)
        w.raw(signature)
        return w.bytes
    }
}

/// Per-sender replay state: the newest epoch and a 256-counter window.
struct ReplayState {
    var epoch: UInt64
    var highest: UInt64 = 0
    var seen: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)   // bit i: highest - i was seen

    static let window: UInt64 = 256

    func isSeen(_ back: UInt64) -> Bool {
        let word = back / 64, bit = back % 64
        switch word {
        case 0: return seen.0 >> bit & 1 == 1
        case 1: return seen.1 >> bit & 1 == 1
        case 2: return seen.2 >> bit & 1 == 1
        default: return seen.3 >> bit & 1 == 1
        }
    }

    mutating func mark(_ back: UInt64) {
        let word = back / 64, bit = UInt64(1) << (back % 64)
        switch word {
        case 0: seen.0 |= bit
        case 1: seen.1 |= bit
        case 2: seen.2 |= bit
        default: seen.3 |= bit
        }
    }

    /// Accepts a counter of the current epoch once.
    mutating func accept(_ counter: UInt64) -> Bool {
        if counter > highest {
            let shift = counter - highest
            highest = counter
            if shift >= ReplayState.window {
                seen = (0, 0, 0, 0)
            } else {
                // Shift the 256-bit window left (word 0 holds the newest bits).
                var left = shift
                while left > 0 {
                    let s = min(left, 63)
                    seen.3 = seen.3 << s | seen.2 >> (64 - s)
                    seen.2 = seen.2 << s | seen.1 >> (64 - s)
                    seen.1 = seen.1 << s | seen.0 >> (64 - s)
                    seen.0 = seen.0 << s
                    left -= s
                }
            }
            mark(0)
            return true
        }
        let back = highest - counter
        guard back < ReplayState.window, !isSeen(back) else { return false }
        mark(back)
        return true
    }
}

/// Opens envelopes: trust, signature, replay. Sans-IO; one owner.
public struct EnvelopeOpener: Sendable {
    private var replay: [Bytes32: ReplayState] = [:]
    /// Senders whose replay state is kept (oldest forgotten first beyond this).
    public let maxSenders: Int

    public init(maxSenders: Int = 65_536) { self.maxSenders = maxSenders }

    /// Decodes `bytes`; checks that the sender is trusted (`isTrusted`), that
    /// the signature is the sender's, and that the message is not a replay.
    public mutating func open(_ bytes: [UInt8], isTrusted: (IdentityPublicKey) -> Bool) throws(WireError) -> Envelope {
        var r = ByteReader(bytes)
        guard Array(try r.take(2)) == Envelope.magic else { throw WireError(.badMagic) }
        let version = try r.u8()
        guard version == Envelope.version else { throw WireError(.unsupportedVersion, "envelope version \(version)") }
        guard let kind = EnvelopeKind(rawValue: try r.u8()) else { throw WireError(.unknownType) }
        let raw = try r.key()
        guard let sender = try? IdentityPublicKey(raw: raw) else { throw WireError(.untrustedSender, "not a valid key") }
        guard isTrusted(sender) else { throw WireError(.untrustedSender, sender.abbreviated) }
        let epoch = try r.u64(), counter = try r.u64()
        let payload = try r.blob(max: Envelope.maxPayload)
        let signed = Array(bytes[0..<r.offset])
        let signature = Array(try r.take(Envelope.signatureSize))
        try r.expectEnd()
        guard Ed25519.verify(signature: signature, message: Envelope.context + signed, publicKey: raw) else {
            throw WireError(.badSignature, "envelope from \(sender.abbreviated)")
        }
        var state = replay[raw] ?? ReplayState(epoch: epoch)
        if epoch > state.epoch { state = ReplayState(epoch: epoch) }
        guard epoch == state.epoch, state.accept(counter) else { throw WireError(.replayed, "from \(sender.abbreviated)") }
        if replay[raw] == nil && replay.count >= maxSenders, let victim = replay.keys.first { replay[victim] = nil }
        replay[raw] = state
        return Envelope(kind: kind, sender: sender, epoch: epoch, counter: counter, payload: payload)
    }

    /// Forgets a sender (e.g. when it is revoked).
    public mutating func forget(_ key: IdentityPublicKey) { replay[key.raw] = nil }
}
