// What the data plane should look like, from this node's identity, the peers
// it trusts and what it knows of their endpoints. Pure: the daemon feeds it
// and hands the result to a DataPlane, which reconciles.
//
//   private key   the identity's X25519 key
//   each peer     WireGuard key from its identity key; allowed IPs its mesh
//                 /32 and /128; endpoint if known
import MeshBase
import MeshCrypto
import MeshIdentity
import MeshWireGuard

public struct MeshPeerState: Equatable, Sendable {
    public let key: IdentityPublicKey
    public var endpoint: Endpoint?
    public var persistentKeepalive: UInt16?
    /// False while the peer may not know us yet: it is configured (key and
    /// endpoint, so its handshakes are answered) without allowed IPs, so no
    /// traffic starts a handshake toward it that it would drop.
    public var routed: Bool
    public init(key: IdentityPublicKey, endpoint: Endpoint?, persistentKeepalive: UInt16? = nil, routed: Bool = true) {
        self.key = key; self.endpoint = endpoint; self.persistentKeepalive = persistentKeepalive; self.routed = routed
    }
}

public enum DesiredState {
    /// The mesh addresses of this node, as interface addresses (IPv4 /16, IPv6 /64).
    public static func interfaceAddresses(_ identity: Identity) -> [(IPAddress, Int)] {
        let a = identity.meshAddresses
        return [(.v4(a.ipv4), MeshAddresses.ipv4PrefixLength), (.v6(a.ipv6), MeshAddresses.ipv6PrefixLength)]
    }

    /// The WireGuard device for `identity` with `peers` (untrusted keys must
    /// already be filtered out). A peer that loses an IPv4 collision
    /// (AddressCollisions) gets only its IPv6 /128.
    public static func device(identity: Identity, listenPort: UInt16, peers: [MeshPeerState]) -> DeviceConfiguration {
        var c = DeviceConfiguration(privateKey: identity.wireGuardPrivateKey.secret, listenPort: listenPort)
        let losers = AddressCollisions.ipv4Losers(peers.map(\.key) + [identity.publicKey])
        for p in peers where p.key != identity.publicKey {
            let a = p.key.meshAddresses
            let ips: [IPPrefix] = !p.routed ? [] : losers.contains(p.key) ? [.host(.v6(a.ipv6))] : [.host(.v4(a.ipv4)), .host(.v6(a.ipv6))]
            c.peers.append(PeerConfiguration(publicKey: p.key.wireGuardPublicKey, endpoint: p.endpoint,
                                             persistentKeepaliveInterval: p.persistentKeepalive, allowedIPs: ips))
        }
        return c
    }

    /// A keepalive interval that is only ever turned on and at once off again (`nudge`).
    public static let greetingKeepalive: UInt16 = 25

    /// The first of two applies, when some peers need a packet sent now (nil
    /// when none does); the second applies `peers` as they are. Turning a
    /// persistent keepalive on makes either engine send one at once (a
    /// handshake when there is no session):
    ///
    /// - a peer across a NAT whose endpoint moved (punched, relayed, back to
    ///   direct) gets its keepalive off here and on again, so the new path
    ///   opens now rather than at the next keepalive;
    /// - a peer routed for the first time (new, or heard from at last) with an
    ///   endpoint and no keepalive of its own is greeted: on here, off again.
    ///   A member that restarted before the others noticed has lost its
    ///   sessions; they keep sending with keys it no longer has until theirs
    ///   times out (KEEPALIVE + REKEY_TIMEOUT, 15 s). Its greeting is a
    ///   handshake that replaces their stale session at once.
    public static func nudge(_ peers: [MeshPeerState], before: [IdentityPublicKey: MeshPeerState]) -> [MeshPeerState]? {
        var any = false
        let first = peers.map { p -> MeshPeerState in
            var q = p
            let was = before[p.key]
            if let was, p.persistentKeepalive != nil, was.endpoint != p.endpoint {
                q.persistentKeepalive = nil
                any = true
            } else if p.routed, !(was?.routed ?? false), p.endpoint != nil, p.persistentKeepalive == nil {
                q.persistentKeepalive = greetingKeepalive
                any = true
            }
            return q
        }
        return any ? first : nil
    }

    /// Resolves static peers against the trust set: every entry must name a trusted peer.
    public static func resolve(_ entries: [StaticPeer], trust: TrustSet) -> (peers: [MeshPeerState], problems: [String]) {
        var peers: [MeshPeerState] = []
        var problems: [String] = []
        for e in entries {
            if let p = trust.find(e.nameOrKey) {
                peers.append(MeshPeerState(key: p.key, endpoint: e.endpoint))
            } else {
                problems.append("line \(e.line): '\(e.nameOrKey)' is not a trusted peer (add it with: meshguard-agent trust)")
            }
        }
        return (peers, problems)
    }
}
