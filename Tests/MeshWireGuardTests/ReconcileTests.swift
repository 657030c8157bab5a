import Testing
import MeshBase
import MeshCrypto
@testable import MeshWireGuard

@Suite struct ReconcileTests {
    static let sk = SecretBytes(copying: [UInt8](repeating: 9, count: 32))
    func peer(_ b: UInt8, ips: [String], endpoint: String? = nil, keepalive: UInt16? = nil, psk: Bytes32? = nil) -> PeerConfiguration {
        PeerConfiguration(publicKey: key(b), presharedKey: psk, endpoint: endpoint.flatMap(Endpoint.init),
                          persistentKeepaliveInterval: keepalive, allowedIPs: ips.map { IPPrefix($0)! })
    }

    @Test func identicalStatesNeedNoChange() {
        let s = DeviceConfiguration(privateKey: Self.sk, listenPort: 51820, peers: [peer(1, ips: ["10.0.0.1/32"])])
        #expect(Reconcile.isEmpty(Reconcile.change(from: s, to: s)))
    }

    @Test func onlyDifferencesAreSent() {
        let actual = DeviceConfiguration(privateKey: Self.sk, listenPort: 51820, peers: [
            peer(1, ips: ["10.0.0.1/32", "fd00::1/128"], endpoint: "192.0.2.1:1"),
            peer(2, ips: ["10.0.0.2/32"]),
            peer(3, ips: ["10.0.0.3/32"], keepalive: 25),
        ])
        let desired = DeviceConfiguration(privateKey: Self.sk, listenPort: 51820, peers: [
            peer(1, ips: ["fd00::1/128", "10.0.0.1/32"]),                 // same set, other order; endpoint unknown
            peer(3, ips: ["10.0.0.3/32", "10.0.3.0/24"]),                 // more IPs, keepalive off
            peer(4, ips: ["10.0.0.4/32"], endpoint: "192.0.2.4:4"),        // new
        ])
        let c = Reconcile.change(from: actual, to: desired)
        #expect(c.privateKey == nil && c.listenPort == nil)
        #expect(c.peers.map(\.publicKey) == [key(2), key(3), key(4)])
        #expect(c.peers[0].remove)
        #expect(c.peers[1].replaceAllowedIPs && Set(c.peers[1].allowedIPs) == Set(["10.0.0.3/32", "10.0.3.0/24"].map { IPPrefix($0)! }))
        #expect(c.peers[1].persistentKeepaliveInterval == 0 && c.peers[1].endpoint == nil)
        #expect(c.peers[2].replaceAllowedIPs && c.peers[2].endpoint == Endpoint("192.0.2.4:4"))
    }

    @Test func keyPortAndPresharedKeyChanges() {
        let actual = DeviceConfiguration(privateKey: Self.sk, listenPort: 1, peers: [peer(1, ips: [], psk: key(5))])
        let newKey = SecretBytes(copying: [UInt8](repeating: 8, count: 32))
        let desired = DeviceConfiguration(privateKey: newKey, listenPort: 2, peers: [peer(1, ips: [])])
        let c = Reconcile.change(from: actual, to: desired)
        #expect(c.privateKey?.constantTimeEquals(newKey) == true && c.listenPort == 2)
        #expect(c.peers.count == 1 && c.peers[0].presharedKey == .zero)
    }

    /// Applying the change to a userspace device yields the desired state.
    @Test func applyingTheChangeConverges() {
        let d = WireGuardDevice(seed: 1)
        let start = DeviceConfiguration(privateKey: Self.sk, listenPort: 7, peers: [peer(1, ips: ["10.0.0.1/32"]), peer(2, ips: ["10.0.0.2/32"])])
        d.apply(start, now: .zero)
        let desired = DeviceConfiguration(privateKey: Self.sk, listenPort: 7, peers: [peer(2, ips: ["10.0.0.2/32", "10.2.0.0/16"], keepalive: 5), peer(9, ips: ["10.0.0.9/32"])])
        d.apply(Reconcile.change(from: d.snapshot(), to: desired), now: .zero)
        #expect(Reconcile.isEmpty(Reconcile.change(from: d.snapshot(), to: desired)))
        #expect(d.snapshot().peers.map(\.publicKey) == [key(2), key(9)])
    }
}
