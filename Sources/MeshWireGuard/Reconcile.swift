// Reconciliation: the smallest change that turns what a device has into what
// the agent wants, like `wg syncconf`. Unchanged peers are not touched, so
// their sessions are never reset; a changed peer gets only its changed
// fields; allowed IPs are replaced only when the set differs.
//
// `desired` is a complete state, not a change: a nil preshared key means
// "none" and a nil keepalive means "off". A nil endpoint means "keep whatever
// the device learned" (roaming), since an agent may not know it.
import MeshBase
import MeshCrypto

public enum Reconcile {
    public static func change(from actual: DeviceConfiguration, to desired: DeviceConfiguration) -> DeviceConfiguration {
        var c = DeviceConfiguration()
        if let want = desired.privateKey, !(actual.privateKey.map { $0.constantTimeEquals(want) } ?? false) {
            c.privateKey = want
        }
        if let p = desired.listenPort, p != actual.listenPort { c.listenPort = p }
        if let m = desired.firewallMark, m != (actual.firewallMark ?? 0) { c.firewallMark = m }

        let wanted = Dictionary(desired.peers.map { ($0.publicKey, $0) }, uniquingKeysWith: { _, last in last })
        for p in actual.peers where wanted[p.publicKey] == nil {
            c.peers.append(PeerConfiguration(publicKey: p.publicKey, remove: true))
        }
        let existing = Dictionary(actual.peers.map { ($0.publicKey, $0) }, uniquingKeysWith: { _, last in last })
        var seen = Set<Bytes32>()
        for want in desired.peers where seen.insert(want.publicKey).inserted {
            let wantedIPs = Set(want.allowedIPs)
            guard let have = existing[want.publicKey] else {
                c.peers.append(PeerConfiguration(publicKey: want.publicKey, presharedKey: want.presharedKey,
                                                 endpoint: want.endpoint, persistentKeepaliveInterval: want.persistentKeepaliveInterval,
                                                 replaceAllowedIPs: true, allowedIPs: wantedIPs.sorted()))
                continue
            }
            var d = PeerConfiguration(publicKey: want.publicKey)
            var changed = false
            let wantPSK = want.presharedKey ?? .zero, havePSK = have.presharedKey ?? .zero
            if wantPSK != havePSK { d.presharedKey = wantPSK; changed = true }
            if let e = want.endpoint, e != have.endpoint { d.endpoint = e; changed = true }
            let wantKeepalive = want.persistentKeepaliveInterval ?? 0
            if wantKeepalive != (have.persistentKeepaliveInterval ?? 0) { d.persistentKeepaliveInterval = wantKeepalive; changed = true }
            if wantedIPs != Set(have.allowedIPs) {
                d.replaceAllowedIPs = true
                d.allowedIPs = wantedIPs.sorted()
                changed = true
            }
            if changed { c.peers.append(d) }
        }
        return c
    }

    /// True when the change would do nothing.
    public static func isEmpty(_ c: DeviceConfiguration) -> Bool {
        c.privateKey == nil && c.listenPort == nil && c.firewallMark == nil && !c.replacePeers && c.peers.isEmpty
    }
}
