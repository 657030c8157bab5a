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

        // One pass over each side; allowed-IP sets are built only when the
        // lists differ as written (the agent always lists them in one order).
        var existing = [Bytes32: Int](minimumCapacity: actual.peers.count)
        for (i, p) in actual.peers.enumerated() { existing[p.publicKey] = i }
        var wanted = Set<Bytes32>(minimumCapacity: desired.peers.count)
        for want in desired.peers where wanted.insert(want.publicKey).inserted {
            guard let i = existing[want.publicKey] else {
                c.peers.append(PeerConfiguration(publicKey: want.publicKey, presharedKey: want.presharedKey,
                                                 endpoint: want.endpoint, persistentKeepaliveInterval: want.persistentKeepaliveInterval,
                                                 replaceAllowedIPs: true, allowedIPs: Array(Set(want.allowedIPs)).sorted()))
                continue
            }
            let have = actual.peers[i]
            var d = PeerConfiguration(publicKey: want.publicKey)
            var changed = false
            let wantPSK = want.presharedKey ?? .zero, havePSK = have.presharedKey ?? .zero
            if wantPSK != havePSK { d.presharedKey = wantPSK; changed = true }
            if let e = want.endpoint, e != have.endpoint { d.endpoint = e; changed = true }
            let wantKeepalive = want.persistentKeepaliveInterval ?? 0
            if wantKeepalive != (have.persistentKeepaliveInterval ?? 0) { d.persistentKeepaliveInterval = wantKeepalive; changed = true }
            if want.allowedIPs != have.allowedIPs {
                let wantedIPs = Set(want.allowedIPs)
                if wantedIPs != Set(have.allowedIPs) {
                    d.replaceAllowedIPs = true
                    d.allowedIPs = wantedIPs.sorted()
                    changed = true
                }
            }
            if changed { c.peers.append(d) }
        }
        let removals = actual.peers.filter { !wanted.contains($0.publicKey) }.map { PeerConfiguration(publicKey: $0.publicKey, remove: true) }
        c.peers.insert(contentsOf: removals, at: 0)
        return c
    }

    /// True when the change would do nothing.
    public static func isEmpty(_ c: DeviceConfiguration) -> Bool {
        c.privateKey == nil && c.listenPort == nil && c.firewallMark == nil && !c.replacePeers && c.peers.isEmpty
    }
}
