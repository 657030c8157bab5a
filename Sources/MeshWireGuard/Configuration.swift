// The data-plane model: one description of a WireGuard device that both
// engines apply (the kernel module over generic netlink, our userspace engine
// directly) and both report. In the spirit of wireguard-tools' containers.h,
// presence is explicit: an optional that is nil means "not given" (in a
// change) or "not set" (in a snapshot), never a magic zero, and the replace /
// remove flags are separate booleans.
//
// As a change (what `wg set`, `wg setconf` or the agent asks for):
//   - privateKey / listenPort / firewallMark: set when non-nil;
//   - replacePeers: remove every peer not listed;
//   - per peer: remove, updateOnly (do not create), replaceAllowedIPs, and the
//     optional fields set when non-nil. A zero preshared key clears it; a
//     persistent keepalive of 0 turns it off.
// As a snapshot (what `wg show` reads): every field that the device has.
import MeshBase
import MeshCrypto

public struct DeviceConfiguration: Sendable {
    /// The X25519 private key (32 bytes, wiped on release). In a change, nil
    /// leaves it as is; a key of all zeros removes it.
    public var privateKey: SecretBytes?
    /// The public key of `privateKey` (snapshots only; derived, never set).
    public var publicKey: Bytes32?
    /// UDP listen port; 0 asks for a random port.
    public var listenPort: UInt16?
    /// SO_MARK for outgoing packets; 0 clears it.
    public var firewallMark: UInt32?
    /// Remove every existing peer before applying `peers`.
    public var replacePeers: Bool
    public var peers: [PeerConfiguration]

    public init(privateKey: SecretBytes? = nil, publicKey: Bytes32? = nil, listenPort: UInt16? = nil,
                firewallMark: UInt32? = nil, replacePeers: Bool = false, peers: [PeerConfiguration] = []) {
        self.privateKey = privateKey; self.publicKey = publicKey; self.listenPort = listenPort
        self.firewallMark = firewallMark; self.replacePeers = replacePeers; self.peers = peers
    }
}

public struct PeerConfiguration: Sendable, Equatable {
    public var publicKey: Bytes32
    /// Remove this peer (the other fields are ignored).
    public var remove: Bool
    /// Only change this peer if it exists; never create it.
    public var updateOnly: Bool
    /// 32-byte preshared key; all zeros clears it.
    public var presharedKey: Bytes32?
    public var endpoint: Endpoint?
    /// Seconds between keepalives, 0 = off.
    public var persistentKeepaliveInterval: UInt16?
    /// Replace the peer's allowed IPs with `allowedIPs` instead of adding to them.
    public var replaceAllowedIPs: Bool
    public var allowedIPs: [IPPrefix]

    // Snapshot-only statistics.
    /// Wall-clock time of the last completed handshake, nil if never.
    public var lastHandshake: WallTime?
    public var receivedBytes: UInt64
    public var transmittedBytes: UInt64
    /// WireGuard protocol version (1); set in snapshots.
    public var protocolVersion: Int?

    public init(publicKey: Bytes32, remove: Bool = false, updateOnly: Bool = false, presharedKey: Bytes32? = nil,
                endpoint: Endpoint? = nil, persistentKeepaliveInterval: UInt16? = nil,
                replaceAllowedIPs: Bool = false, allowedIPs: [IPPrefix] = [],
                lastHandshake: WallTime? = nil, receivedBytes: UInt64 = 0, transmittedBytes: UInt64 = 0,
                protocolVersion: Int? = nil) {
        self.publicKey = publicKey; self.remove = remove; self.updateOnly = updateOnly
        self.presharedKey = presharedKey; self.endpoint = endpoint
        self.persistentKeepaliveInterval = persistentKeepaliveInterval
        self.replaceAllowedIPs = replaceAllowedIPs; self.allowedIPs = allowedIPs
        self.lastHandshake = lastHandshake; self.receivedBytes = receivedBytes
        self.transmittedBytes = transmittedBytes; self.protocolVersion = protocolVersion
    }
}

/// A wall-clock time (seconds and nanoseconds since the Unix epoch), as the
/// UAPI and netlink report a peer's last handshake.
public struct WallTime: Hashable, Sendable, Comparable {
    public var seconds: Int64
    public var nanoseconds: Int64
    public init(seconds: Int64, nanoseconds: Int64) { self.seconds = seconds; self.nanoseconds = nanoseconds }
    public static func < (a: WallTime, b: WallTime) -> Bool { (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds) }
}

extension DeviceConfiguration: Equatable {
    public static func == (a: DeviceConfiguration, b: DeviceConfiguration) -> Bool {
        let keysEqual: Bool
        switch (a.privateKey, b.privateKey) {
        case (nil, nil): keysEqual = true
        case let (x?, y?): keysEqual = x.constantTimeEquals(y)
        default: keysEqual = false
        }
        return keysEqual && a.publicKey == b.publicKey && a.listenPort == b.listenPort
            && a.firewallMark == b.firewallMark && a.replacePeers == b.replacePeers && a.peers == b.peers
    }
}
