// The kernel WireGuard netlink codec against byte fixtures written from the
// UAPI documentation in linux/wireguard.h by an independent encoder (a short
// Python script, reproduced in docs/kernel.md), plus splitting and merging.
import Testing
import MeshBase
import MeshCrypto
@testable import MeshWireGuard

enum NetlinkFixtures {
    /// SET: ifname wg0, private key 0x11.., listen port 51820, one peer 0x22..
    /// with endpoint 192.0.2.1:51820, keepalive 25, allowed IP 10.0.0.0/24 (family id 0x1f).
    static let set = wgHex("b00000001f0005000000000000000000010100000800020077673000240003001111111111111111111111111111111111111111111111111111111111111111060006006cca00006800088064000080240001002222222222222222222222222222222222222222222222222222222222222222140004000200ca6cc000020100000000000000000600050019000000200009801c0000800600010002000000080002000a0000000500030018000000")
    /// GET dump, part 1: ifindex 7, ifname mg0, keys, port 51820, peer 0xaa.. (zero
    /// psk, endpoint 198.51.100.7:4000, handshake 1700000000.000000005, rx 1000,
    /// tx 2000, version 1, allowed IP 10.99.1.2/32).
    static let get1 = wgHex("340100001f0002000000000000000000000100000800010007000000080002006d673000240003003333333333333333333333333333333333333333333333333333333333333333240004004444444444444444444444444444444444444444444444444444444444444444060006006cca0000c0000880bc00008024000100aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2400020000000000000000000000000000000000000000000000000000000000000000001400040002000fa0c6336407000000000000000006000500000000001400060000f153650000000005000000000000000c000700e8030000000000000c000800d00700000000000008000a0001000000200009801c0000800600010002000000080002000a6301020500030020000000")
    /// Part 2: peer 0xaa.. continued (allowed IP fd99:6d67::aa/128), then peer 0xbb.. (psk 0x55..).
    static let get2 = wgHex("d00000001f0002000000000000000000000100000800010007000000080002006d673000ac0008805400008024000100aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2c00098028000080060001000a00000014000200fd996d670000000000000000000000aa05000300800000005400018024000100bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb24000200555555555555555555555555555555555555555555555555555555555555555508000a0001000000")
}

func key(_ b: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: b, count: 32))! }

@Suite struct KernelNetlinkCodecTests {
    @Test func setDeviceMatchesFixture() throws {
        let change = DeviceConfiguration(
            privateKey: SecretBytes(copying: [UInt8](repeating: 0x11, count: 32)), listenPort: 51820,
            peers: [PeerConfiguration(publicKey: key(0x22), endpoint: Endpoint("192.0.2.1:51820"), persistentKeepaliveInterval: 25,
                                      allowedIPs: [IPPrefix("10.0.0.0/24")!])])
        let msgs = try WireGuardNetlink.setDeviceMessages(interface: "wg0", family: 0x1f, change: change)
        #expect(msgs == [NetlinkFixtures.set])
    }

    @Test func getDeviceMergesASplitPeer() throws {
        let d = try WireGuardNetlink.parseGetDevice([NetlinkFixtures.get1, NetlinkFixtures.get2])
        #expect(d.privateKey?.unsafeExportedBytes() == [UInt8](repeating: 0x33, count: 32))
        #expect(d.publicKey == key(0x44) && d.listenPort == 51820)
        #expect(d.peers.count == 2)
        let a = d.peers[0], b = d.peers[1]
        #expect(a.publicKey == key(0xaa) && a.presharedKey == nil)
        #expect(a.endpoint == Endpoint("198.51.100.7:4000"))
        #expect(a.lastHandshake == WallTime(seconds: 1_700_000_000, nanoseconds: 5))
        #expect(a.receivedBytes == 1000 && a.transmittedBytes == 2000 && a.protocolVersion == 1)
        #expect(a.persistentKeepaliveInterval == 0)
        #expect(a.allowedIPs == [IPPrefix("10.99.1.2/32")!, IPPrefix("fd99:6d67::aa/128")!])
        #expect(b.publicKey == key(0xbb) && b.presharedKey == key(0x55) && b.allowedIPs.isEmpty)
    }

    @Test func largeSetsSplitAndReassemble() throws {
        // 3 peers, the second with 2,000 allowed IPs, device flags and REPLACE_ALLOWEDIPS.
        var ips: [IPPrefix] = []
        for i in 0..<2000 { ips.append(IPPrefix(.v4(IPv4Address(10, 1, UInt8(i >> 8), UInt8(i & 0xff))), length: 32)!) }
        let change = DeviceConfiguration(
            privateKey: SecretBytes(copying: [UInt8](repeating: 1, count: 32)), listenPort: 1, firewallMark: 9, replacePeers: true,
            peers: [PeerConfiguration(publicKey: key(1), allowedIPs: [IPPrefix("10.0.0.1/32")!]),
                    PeerConfiguration(publicKey: key(2), presharedKey: key(7), endpoint: Endpoint("[2001:db8::1]:5"),
                                      replaceAllowedIPs: true, allowedIPs: ips),
                    PeerConfiguration(publicKey: key(3), remove: true)])
        let msgs = try WireGuardNetlink.setDeviceMessages(interface: "mg0", family: 0x20, change: change, messageSize: 4096)
        #expect(msgs.count > 5)
        #expect(msgs.allSatisfy { $0.count <= 4096 })
        // Decode every message with the test decoder and check the split rules.
        let decoded = msgs.map(SetDecoder.decode)
        #expect(decoded[0].hasDeviceAttributes && decoded.dropFirst().allSatisfy { !$0.hasDeviceAttributes })
        var merged: [(Bytes32, UInt32?, [IPPrefix])] = []
        for m in decoded {
            for p in m.peers {
                if let last = merged.last, last.0 == p.key {
                    #expect(p.flags == nil, "a continued peer carries no flags")
                    merged[merged.count - 1].2 += p.ips
                } else {
                    merged.append((p.key, p.flags, p.ips))
                }
            }
        }
        #expect(merged.map(\.0) == [key(1), key(2), key(3)])
        #expect(merged[1].1 == WireGuardNetlink.peerReplaceAllowedIPs)
        #expect(merged[1].2 == ips)
        #expect(merged[2].1 == WireGuardNetlink.peerRemoveMe && merged[2].2.isEmpty)
    }

    @Test func tooSmallAMessageIsAnError() {
        let change = DeviceConfiguration(peers: [PeerConfiguration(publicKey: key(1), allowedIPs: [IPPrefix("10.0.0.1/32")!])])
        #expect(throws: NetlinkCodecError.self) { try WireGuardNetlink.setDeviceMessages(interface: "mg0", family: 1, change: change, messageSize: 40) }
    }

    @Test func endpointsRoundTrip() {
        for text in ["192.0.2.1:51820", "[2001:db8::1]:1", "[fd99:6d67::1]:65535"] {
            let e = Endpoint(text)!
            #expect(WireGuardNetlink.endpoint(fromSockaddr: WireGuardNetlink.sockaddr(e)[...]) == e)
        }
        #expect(WireGuardNetlink.sockaddr(Endpoint("192.0.2.1:51820")!).count == 16)
        #expect(WireGuardNetlink.sockaddr(Endpoint("[::1]:1")!).count == 28)
    }

    @Test func hostileDumpsThrowNeverTrap() {
        var rng = SeededRandom(seed: 5)
        for base in [NetlinkFixtures.get1, NetlinkFixtures.get2] {
            for cut in stride(from: 0, to: base.count, by: 7) { _ = try? WireGuardNetlink.parseGetDevice([Array(base.prefix(cut))]) }
            for _ in 0..<2000 {
                var m = base
                for _ in 0..<(1 + Int(rng.next() % 4)) { m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                _ = try? WireGuardNetlink.parseGetDevice([m])
            }
        }
        for _ in 0..<2000 {
            let n = Int(rng.next() % 300)
            _ = try? WireGuardNetlink.parseGetDevice([(0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }])
        }
        #expect(throws: NetlinkCodecError.self) { try WireGuardNetlink.parseGetDevice([[1, 2, 3]]) }
    }

    @Test func getRequestNamesTheInterface() {
        let r = WireGuardNetlink.getDeviceRequest(interface: "mg0", family: 0x1f)
        #expect(r == wgHex("1c0000001f000103000000000000000000010000080002006d673000"))
    }
}

/// An independent, simple decoder of SET messages for the split test.
enum SetDecoder {
    struct Peer { var key: Bytes32; var flags: UInt32?; var ips: [IPPrefix] }
    struct Message { var hasDeviceAttributes = false; var peers: [Peer] = [] }

    static func attrs(_ b: ArraySlice<UInt8>) -> [(UInt16, ArraySlice<UInt8>)] {
        var out: [(UInt16, ArraySlice<UInt8>)] = []
        var i = b.startIndex
        while i + 4 <= b.endIndex {
            let len = Int(b[i]) | Int(b[i + 1]) << 8
            let type = (UInt16(b[i + 2]) | UInt16(b[i + 3]) << 8) & 0x3fff
            out.append((type, b[(i + 4)..<(i + len)]))
            i += (len + 3) & ~3
        }
        return out
    }

    static func decode(_ m: [UInt8]) -> Message {
        var out = Message()
        for (t, p) in attrs(m[20...]) {
            if [3, 5, 6, 7].contains(t) { out.hasDeviceAttributes = true }
            guard t == 8 else { continue }
            for (_, peer) in attrs(p) {
                var pr = Peer(key: .zero, flags: nil, ips: [])
                for (pt, pp) in attrs(peer) {
                    if pt == 1 { pr.key = Bytes32(pp)! }
                    if pt == 3 { pr.flags = pp.u32() }
                    if pt == 9 {
                        for (_, ip) in attrs(pp) {
                            let f = attrs(ip)
                            let addr = f.first { $0.0 == 2 }!.1
                            let cidr = Int(f.first { $0.0 == 3 }!.1.first!)
                            let a: IPAddress = addr.count == 4 ? .v4(IPv4Address(addr[addr.startIndex], addr[addr.startIndex + 1], addr[addr.startIndex + 2], addr[addr.startIndex + 3])) : .v6(IPv6Address(bytes: addr)!)
                            pr.ips.append(IPPrefix(a, length: cidr)!)
                        }
                    }
                }
                out.peers.append(pr)
            }
        }
        return out
    }
}
