// DesiredState.nudge: which peers get a keepalive turned on (a greeting: a
// handshake at once) or off (then on again: a moved NAT path) before the
// real apply. Found by Tests/Integration/mesh-chaos.sh: a member killed and
// restarted before the others noticed was unreachable from them for 15 s.
import Testing
import MeshBase
import MeshIdentity
@testable import MeshCore

@Suite struct PeerNudgeTests {
    let a = Identity.generate().publicKey, b = Identity.generate().publicKey, c = Identity.generate().publicKey
    let e1 = Endpoint("192.0.2.1:51821")!, e2 = Endpoint("192.0.2.2:51821")!

    func index(_ peers: [MeshPeerState]) -> [IdentityPublicKey: MeshPeerState] {
        Dictionary(peers.map { ($0.key, $0) }, uniquingKeysWith: { x, _ in x })
    }

    @Test func nothingChangedNeedsNoNudge() {
        let peers = [MeshPeerState(key: a, endpoint: e1), MeshPeerState(key: b, endpoint: e2, persistentKeepalive: 25)]
        #expect(DesiredState.nudge(peers, before: index(peers)) == nil)
        #expect(DesiredState.nudge([], before: [:]) == nil)
    }

    @Test func aNewRoutedPeerIsGreeted() throws {
        let peers = [MeshPeerState(key: a, endpoint: e1), MeshPeerState(key: b, endpoint: e2)]
        let first = try #require(DesiredState.nudge(peers, before: index([peers[0]])))
        #expect(first[0] == peers[0])
        #expect(first[1].persistentKeepalive == DesiredState.greetingKeepalive)
        #expect(first[1].key == b && first[1].endpoint == e2 && first[1].routed)
    }

    @Test func aPeerRoutedForTheFirstTimeIsGreeted() throws {
        let unrouted = MeshPeerState(key: a, endpoint: e1, routed: false)
        let routed = MeshPeerState(key: a, endpoint: e1, routed: true)
        let first = try #require(DesiredState.nudge([routed], before: index([unrouted])))
        #expect(first[0].persistentKeepalive == DesiredState.greetingKeepalive)
    }

    @Test func unroutedEndpointlessOrKeepalivePeersAreNotGreeted() {
        // Unrouted: it may not know us yet (a handshake would be dropped); no endpoint: nowhere to send;
        // a keepalive of its own: turning it on sends one already.
        #expect(DesiredState.nudge([MeshPeerState(key: a, endpoint: e1, routed: false)], before: [:]) == nil)
        #expect(DesiredState.nudge([MeshPeerState(key: a, endpoint: nil)], before: [:]) == nil)
        #expect(DesiredState.nudge([MeshPeerState(key: a, endpoint: e1, persistentKeepalive: 25)], before: [:]) == nil)
    }

    @Test func aMovedPeerWithAKeepaliveIsQuietedFirst() throws {
        let was = MeshPeerState(key: c, endpoint: e1, persistentKeepalive: 25)
        let now = MeshPeerState(key: c, endpoint: e2, persistentKeepalive: 25)
        let first = try #require(DesiredState.nudge([now], before: index([was])))
        #expect(first[0].persistentKeepalive == nil && first[0].endpoint == e2)
        // Without a keepalive a moved peer needs nothing (its next packet goes to the new endpoint).
        #expect(DesiredState.nudge([MeshPeerState(key: c, endpoint: e2)], before: index([MeshPeerState(key: c, endpoint: e1)])) == nil)
    }
}
