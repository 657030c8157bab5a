// Two (or more) userspace devices wired through an in-memory network and
// driven by a virtual clock: handshakes, data, rekeying, expiry, keepalives,
// cookies, replays, and hostile input. No sockets, no sleeping.
import Testing
import MeshBase
import MeshCrypto
@testable import MeshWireGuard
import MeshTestKit

func pair(seed: UInt64 = 1, bOptions: DeviceOptions = DeviceOptions(), keepalive: UInt16? = nil) -> (Network, Node, Node) {
    let a = Node(1, seed: seed), b = Node(2, seed: seed + 1, options: bOptions)
    a.device.apply(DeviceConfiguration(peers: [a.peer(with: b, keepalive: keepalive)]), now: .zero)
    b.device.apply(DeviceConfiguration(peers: [b.peer(with: a, keepalive: keepalive)]), now: .zero)
    return (Network(a, b), a, b)
}

func count(_ log: [(Transmit, from: Endpoint)], type: UInt8, from: Endpoint? = nil) -> Int {
    log.filter { $0.0.bytes.first == type && (from == nil || $0.from == from!) }.count
}

@Suite struct DeviceHandshakeAndDataTests {
    @Test func firstPacketTriggersHandshakeAndIsDeliveredAfterIt() {
        let (net, a, b) = pair()
        let ping = ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: Array("hello".utf8))
        #expect(net.send(ping, from: a) == .queued)
        #expect(count(net.log, type: 1) == 1)
        net.run()
        #expect(b.delivered == [ping])
        #expect(a.device.sessionInfo(for: b.publicKey)?.hasCurrent == true)
        // B promoted its `next` keypair on A's first data packet and can answer directly.
        #expect(b.device.sessionInfo(for: a.publicKey)?.hasCurrent == true)
        let pong = ipv6Packet(src: b.ipv6, dst: a.ipv6, payload: Array("world".utf8))
        #expect(net.send(pong, from: b) == .send(a.endpoint))
        net.run()
        #expect(a.delivered == [pong])
        #expect(count(net.log, type: 1) == 1 && count(net.log, type: 2) == 1)
        let snap = a.device.snapshot()
        #expect(snap.peers.first?.lastHandshake == WallTime(seconds: 1_800_000_001, nanoseconds: 0))
        #expect(snap.peers.first!.transmittedBytes > 0 && snap.peers.first!.receivedBytes > 0)
    }

    @Test func responderStagesUntilInitiatorConfirms() {
        let (net, a, b) = pair()
        // B learns of A's session only through the initiation; it must not send under `next`.
        net.filter = { t, _ in t.bytes.first != 4 }   // drop A's staged data and keepalive
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        net.run()
        #expect(b.device.sessionInfo(for: a.publicKey)?.hasNext == true)
        #expect(b.device.sessionInfo(for: a.publicKey)?.hasCurrent == false)
        #expect(net.send(ipv4Packet(src: b.ipv4, dst: a.ipv4, payload: [2]), from: b) == .queued)
        #expect(b.device.sessionInfo(for: a.publicKey)?.stagedPackets == 1)
    }

    @Test func paddingAndMessageSizes() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        for size in [0, 1, 15, 16, 17, 100] {
            let p = ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [UInt8](repeating: 7, count: size))
            net.log.removeAll()
            #expect(net.send(p, from: a) == .send(b.endpoint))
            let msg = net.log.last!.0.bytes
            let padded = (p.count + 15) / 16 * 16
            #expect(msg.count == 16 + padded + 16)
            net.run()
            #expect(b.delivered.last == p)   // padding trimmed by the IP length
        }
    }

    @Test func unroutableAndInvalidPacketsAreDropped() {
        let (net, a, _) = pair()
        #expect(net.send(ipv4Packet(src: a.ipv4, dst: IPv4Address(10, 9, 9, 9), payload: []), from: a) == .drop(.noRoute))
        #expect(net.send([0x45, 0, 0], from: a) == .drop(.invalidPacket))
        #expect(net.send([], from: a) == .drop(.invalidPacket))
        #expect(net.send([0x15] + [UInt8](repeating: 0, count: 40), from: a) == .drop(.invalidPacket))
        #expect(a.device.statistics.dropped(.noRoute) == 1 && a.device.statistics.dropped(.invalidPacket) == 3)
    }

    @Test func peerWithoutEndpointDropsWithReason() {
        let a = Node(1, seed: 1), b = Node(2, seed: 2)
        a.device.apply(DeviceConfiguration(peers: [a.peer(with: b, endpoint: false)]), now: .zero)
        let net = Network(a, b)
        #expect(net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a) == .drop(.noEndpoint))
    }

    @Test func presharedKeyMustMatch() {
        let a = Node(1, seed: 1), b = Node(2, seed: 2)
        a.device.apply(DeviceConfiguration(peers: [a.peer(with: b, psk: Bytes32(Array(repeating: 1, count: 32)))]), now: .zero)
        b.device.apply(DeviceConfiguration(peers: [b.peer(with: a, psk: Bytes32(Array(repeating: 2, count: 32)))]), now: .zero)
        let net = Network(a, b)
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        #expect(a.device.statistics.dropped(.handshakeFailed) == 1)
        #expect(b.delivered.isEmpty)
    }

    @Test func sourceAddressMustBeAllowed() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        // A sends a packet whose inner source is not in B's allowed IPs for A.
        let spoofed = ipv4Packet(src: IPv4Address(10, 0, 0, 77), dst: b.ipv4, payload: [9])
        #expect(net.send(spoofed, from: a) == .send(b.endpoint))
        net.run()
        #expect(b.device.statistics.dropped(.disallowedSource) == 1)
        #expect(!b.delivered.contains(spoofed))
    }
}

@Suite struct DeviceTimerTests {
    @Test func rekeyAfterTimeStartsANewHandshake() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        #expect(count(net.log, type: 1) == 1)
        // Keep traffic flowing both ways for 130 s, one packet a second.
        for _ in 0..<130 {
            net.advance(by: .seconds(1))
            net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
            net.send(ipv4Packet(src: b.ipv4, dst: a.ipv4, payload: [2]), from: b)
            net.run()
        }
        #expect(count(net.log, type: 1, from: a.endpoint) == 2)   // the rekey at 120 s by the initiator
        #expect(a.device.sessionInfo(for: b.publicKey)?.hasPrevious == true)
        #expect(a.delivered.count == 130 && b.delivered.count == 131)
        #expect(a.device.statistics.totalDrops == 0 && b.device.statistics.totalDrops == 0)
    }

    @Test func sessionsExpireAfterRejectAfterTime() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        net.advance(by: .seconds(181))
        net.log.removeAll()
        // The old keypair is no longer used: the packet waits for a new handshake.
        #expect(net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [5]), from: a) == .queued)
        #expect(count(net.log, type: 1) == 1)
        net.run()
        #expect(b.delivered.count == 2)
    }

    @Test func keypairsAreZeroedAfterThreeRejectAfterTimes() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        #expect(a.device.indexCount == 1 && b.device.indexCount == 1)
        net.advance(by: .seconds(541))
        #expect(a.device.sessionInfo(for: b.publicKey)?.hasCurrent == false)
        #expect(a.device.indexCount == 0 && b.device.indexCount == 0)
    }

    @Test func keepaliveAfterReceivingDataAndNotReplying() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        net.run()
        net.log.removeAll()
        net.advance(by: .seconds(11))
        // B received data and sent nothing back for 10 s: it sends a 32-byte keepalive.
        let keepalives = net.log.filter { $0.from == b.endpoint && $0.0.bytes.count == 32 && $0.0.bytes[0] == 4 }
        #expect(keepalives.count == 1)
        #expect(a.lastResults.last == .consumed)
        #expect(a.delivered.isEmpty)
    }

    @Test func newHandshakeWhenDataGetsNoAnswer() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        net.run()
        net.advance(by: .seconds(11))   // B's keepalive arrives
        net.log.removeAll()
        net.filter = { _, from in from != b.endpoint }   // B goes silent
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [2]), from: a)
        net.advance(by: .seconds(14))
        #expect(count(net.log, type: 1, from: a.endpoint) == 0)
        net.advance(by: .seconds(2))   // 15 s + jitter after the data was sent
        #expect(count(net.log, type: 1, from: a.endpoint) == 1)
    }

    @Test func persistentKeepaliveEvery25Seconds() {
        let (net, a, b) = pair(keepalive: 25)
        net.run()   // turning keepalive on sent one each: handshakes start
        net.log.removeAll()
        net.advance(by: .seconds(100))
        let fromA = net.log.filter { $0.from == a.endpoint && $0.0.bytes[0] == 4 && $0.0.bytes.count == 32 }
        #expect((3...5).contains(fromA.count))
        #expect(b.device.sessionInfo(for: a.publicKey)?.hasCurrent == true)
    }

    @Test func retransmitsThenGivesUp() {
        let (net, a, b) = pair()
        net.filter = { _, from in from != a.endpoint }   // nothing from A arrives
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        net.advance(by: .seconds(60))
        let sixty = count(net.log, type: 1, from: a.endpoint)
        #expect((11...13).contains(sixty))   // one every 5 s + jitter
        net.advance(by: .seconds(120))
        let total = count(net.log, type: 1, from: a.endpoint)
        #expect(total == WireGuardProtocol.maxTimerHandshakes + 2)   // first + 19 retries, then it stops
        #expect(a.device.sessionInfo(for: b.publicKey)?.stagedPackets == 0)
        net.advance(by: .seconds(60))
        #expect(count(net.log, type: 1, from: a.endpoint) == total)
        // New data starts over.
        net.filter = { _, _ in true }
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [2]), from: a)
        net.run()
        #expect(b.delivered.count == 1)
    }
}

@Suite struct DeviceHostileInputTests {
    @Test func replayedAndReorderedPackets() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        net.filter = { _, _ in false }   // capture without delivering
        net.log.removeAll()
        for i in 0..<5 { net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [UInt8(i)]), from: a) }
        let msgs = net.log.map { $0.0.bytes }
        #expect(msgs.count == 5)
        for i in [4, 0, 3, 1, 2] { #expect(net.deliver(msgs[i], from: a.endpoint, to: b) == .deliver) }
        #expect(net.deliver(msgs[2], from: a.endpoint, to: b) == .drop(.replayedPacket))
        #expect(b.device.statistics.dropped(.replayedPacket) == 1)
        // A corrupted copy never authenticates.
        var bad = msgs[0]; bad[20] ^= 1
        #expect(net.deliver(bad, from: a.endpoint, to: b) == .drop(.decryptionFailed))
        var badIndex = msgs[0]; badIndex[4] ^= 0xff
        #expect(net.deliver(badIndex, from: a.endpoint, to: b) == .drop(.unknownIndex))
    }

    @Test func replayedInitiationIsRejected() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        let initiation = net.log.first { $0.0.bytes[0] == 1 }!.0.bytes
        net.run()
        net.advance(by: .seconds(2))
        #expect(net.deliver(initiation, from: a.endpoint, to: b) == .drop(.replayedHandshake))
    }

    @Test func truncatedOversizedCorruptedAndRandomDatagramsAreCountedDrops() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        let samples = net.log.map { $0.0.bytes }   // initiation and (later) data
        net.run()
        let valid = net.log.map { $0.0.bytes }
        var rng = SeededRandom(seed: 99)
        var inputs: [[UInt8]] = []
        for m in samples + valid {
            for cut in [0, 1, 3, 4, 15, 16, 31, m.count - 1] where cut < m.count { inputs.append(Array(m.prefix(cut))) }
            inputs.append(m + [0])
            for _ in 0..<20 {
                var c = m
                c[Int(rng.next() % UInt64(c.count))] ^= UInt8(1 + rng.next() % 255)
                inputs.append(c)
            }
        }
        for _ in 0..<2000 {
            let n = Int(rng.next() % 200)
            var r = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n >= 4 && rng.next() % 2 == 0 { r[0] = UInt8(1 + rng.next() % 4); r[1] = 0; r[2] = 0; r[3] = 0 }
            inputs.append(r)
        }
        let before = b.device.statistics.totalDrops
        var delivered = 0
        for input in inputs {
            let r = net.deliver(input, from: Endpoint("203.0.113.9:4444")!, to: b)
            if r == .deliver { delivered += 1 }
        }
        // Corrupted copies of valid messages may only be replays, never new data.
        #expect(delivered == 0)
        #expect(b.device.statistics.totalDrops - before >= UInt64(inputs.count) - 5)
        // The session still works afterwards.
        net.inFlight.removeAll()
        let p = ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [42])
        net.send(p, from: a)
        net.run()
        #expect(b.delivered.last == p)
    }

    @Test func cookieReplyUnderLoadThenHandshakeWithMAC2() {
        var opts = DeviceOptions()
        opts.underLoadHandshakesPerSecond = 0   // B is always under load
        let (net, a, b) = pair(bOptions: opts)
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        net.run()
        #expect(b.device.statistics.cookieRepliesSent == 1)
        #expect(b.device.statistics.dropped(.cookieRequired) == 1)
        #expect(b.delivered.isEmpty)
        // The retransmission carries mac2 from the cookie and succeeds.
        net.advance(by: .seconds(6))
        #expect(b.delivered.count == 1)
        #expect(count(net.log, type: 3) == 1 && count(net.log, type: 2) == 1)
    }

    @Test func unknownInitiatorIsIgnored() {
        let (net, a, _) = pair()
        let c = Node(3, seed: 7)
        // C knows A's key but A does not trust C.
        c.device.apply(DeviceConfiguration(peers: [c.peer(with: a)]), now: .zero)
        net.nodes.append(c)
        net.send(ipv4Packet(src: c.ipv4, dst: a.ipv4, payload: [1]), from: c)
        net.run()
        #expect(a.device.statistics.dropped(.handshakeFailed) == 1)
        #expect(a.delivered.isEmpty)
        #expect(count(net.log, type: 2) == 0)
    }
}

@Suite struct DeviceConfigurationTests {
    @Test func snapshotReflectsConfiguration() {
        let a = Node(1, seed: 1), b = Node(2, seed: 2)
        let psk = Bytes32(Array(repeating: 3, count: 32))!
        a.device.apply(DeviceConfiguration(firewallMark: 7, peers: [a.peer(with: b, keepalive: 0, psk: psk)]), now: .zero)
        let s = a.device.snapshot()
        #expect(s.publicKey == a.publicKey && s.listenPort == 51820 && s.firewallMark == 7)
        #expect(s.peers.count == 1)
        #expect(s.peers[0].presharedKey == psk && s.peers[0].endpoint == b.endpoint)
        #expect(s.peers[0].allowedIPs == [.host(.v4(b.ipv4)), .host(.v6(b.ipv6))].sorted())
        // replaceAllowedIPs, updateOnly, remove.
        var change = PeerConfiguration(publicKey: b.publicKey, replaceAllowedIPs: true, allowedIPs: [IPPrefix("10.1.0.0/16")!])
        a.device.apply(DeviceConfiguration(peers: [change]), now: .zero)
        #expect(a.device.snapshot().peers[0].allowedIPs == [IPPrefix("10.1.0.0/16")!])
        let ghost = PeerConfiguration(publicKey: X25519.PrivateKey.generate().publicKey, updateOnly: true)
        a.device.apply(DeviceConfiguration(peers: [ghost]), now: .zero)
        #expect(a.device.peerCount == 1)
        change = PeerConfiguration(publicKey: b.publicKey, remove: true)
        a.device.apply(DeviceConfiguration(peers: [change]), now: .zero)
        #expect(a.device.peerCount == 0)
        // A peer with our own key is never added.
        a.device.apply(DeviceConfiguration(peers: [PeerConfiguration(publicKey: a.publicKey)]), now: .zero)
        #expect(a.device.peerCount == 0)
    }

    @Test func replacePeersAndChangingThePrivateKey() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        #expect(a.device.sessionInfo(for: b.publicKey)?.hasCurrent == true)
        let newKey = X25519.PrivateKey.generate()
        a.device.apply(DeviceConfiguration(privateKey: newKey.secret), now: net.now)
        #expect(a.device.publicKey == newKey.publicKey)
        #expect(a.device.sessionInfo(for: b.publicKey)?.hasCurrent == false)
        #expect(a.device.indexCount == 0)
        let c = Node(3, seed: 5)
        a.device.apply(DeviceConfiguration(replacePeers: true, peers: [a.peer(with: c)]), now: net.now)
        #expect(a.device.peerCount == 1 && a.device.sessionInfo(for: b.publicKey) == nil)
    }

    @Test func tenThousandPeers() {
        let a = Node(1, seed: 1), b = Node(2, seed: 2)
        var peers: [PeerConfiguration] = []
        var rng = SeededRandom(seed: 10_000)
        for i in 0..<10_000 {
            let k = Bytes32((0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) })!
            let addr = IPv4Address(10, 100 + UInt8(i >> 16), UInt8(i >> 8 & 0xff), UInt8(i & 0xff))
            peers.append(PeerConfiguration(publicKey: k, endpoint: Endpoint(.v4(addr), port: 1), allowedIPs: [.host(.v4(addr))]))
        }
        peers.append(a.peer(with: b))
        a.device.apply(DeviceConfiguration(peers: peers), now: .zero)
        b.device.apply(DeviceConfiguration(peers: [b.peer(with: a)]), now: .zero)
        #expect(a.device.peerCount == 10_001)
        let net = Network(a, b)
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a)
        net.run()
        #expect(b.delivered.count == 1)
        #expect(net.send(ipv4Packet(src: a.ipv4, dst: IPv4Address(10, 100, 39, 15), payload: []), from: a) == .queued)
    }
}

@Suite struct DeviceSyncTests {
    @Test func settingTheSameKeyKeepsSessions() {
        let (net, a, b) = pair()
        net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: []), from: a)
        net.run()
        a.device.apply(DeviceConfiguration(privateKey: SecretBytes(copying: a.key.secret.unsafeExportedBytes())), now: net.now)
        #expect(a.device.sessionInfo(for: b.publicKey)?.hasCurrent == true)
        #expect(net.send(ipv4Packet(src: a.ipv4, dst: b.ipv4, payload: [1]), from: a) == .send(b.endpoint))
    }
}
