import Testing
import MeshBase
import MeshCrypto
import MeshIdentity
import MeshWireGuard
@testable import MeshCore

@Suite struct StaticPeersTests {
    @Test func parsesCommentsBlanksAndBothFamilies() throws {
        let text = """
        # peers
        node-b 192.0.2.2:51821   # trailing comment

        \tRdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs=  [2001:db8::1]:51820\r
        """
        let p = try StaticPeers.parse(text)
        #expect(p.map(\.nameOrKey) == ["node-b", "RdT25APEtobsTQQe3IFWXRfNOFJA7ca9+pPSmd/Zbvs="])
        #expect(p.map(\.endpoint) == [Endpoint("192.0.2.2:51821")!, Endpoint("[2001:db8::1]:51820")!])
        #expect(p.map(\.line) == [2, 4])
    }

    @Test(arguments: [("a", 1), ("a b c", 1), ("a 1.2.3.4", 1), ("a 1.2.3.4:0", 1), ("a host:1", 1), ("\na 1.2.3.4:99999", 2), ("a 1.2.3.4:1\na 1.2.3.5:1", 2)])
    func badLinesNameTheLine(text: String, line: Int) {
        do {
            _ = try StaticPeers.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line)
            #expect(error.description.hasPrefix("line \(line): "))
        }
    }
}

@Suite struct DesiredStateTests {
    @Test func deviceFromIdentityAndPeers() throws {
        let me = Identity.generate(), other = Identity.generate()
        var trust = TrustSet()
        try trust.add(name: "other", key: other.publicKey)
        let (peers, problems) = DesiredState.resolve([StaticPeer(nameOrKey: "other", endpoint: Endpoint("192.0.2.9:51820")!, line: 1),
                                                      StaticPeer(nameOrKey: "stranger", endpoint: Endpoint("192.0.2.8:1")!, line: 2)], trust: trust)
        #expect(peers.count == 1 && problems.count == 1 && problems[0].hasPrefix("line 2: 'stranger' is not a trusted peer"))
        let d = DesiredState.device(identity: me, listenPort: 51820, peers: peers + [MeshPeerState(key: me.publicKey, endpoint: nil)])
        #expect(d.privateKey?.constantTimeEquals(me.wireGuardPrivateKey.secret) == true)
        #expect(d.listenPort == 51820)
        #expect(d.peers.count == 1)   // never ourselves
        let p = d.peers[0]
        #expect(p.publicKey == other.wireGuardPublicKey && p.endpoint == Endpoint("192.0.2.9:51820"))
        #expect(p.allowedIPs == [.host(.v4(other.meshAddresses.ipv4)), .host(.v6(other.meshAddresses.ipv6))])
        let addrs = DesiredState.interfaceAddresses(me)
        #expect(addrs[0].0 == .v4(me.meshAddresses.ipv4) && addrs[0].1 == 16 && addrs[1].1 == 64)
    }
}

@Suite struct AddressCollisionTests {
    /// Three valid keys whose IPv4 addresses collide (birthday search), and one that does not.
    static func colliding() -> ([IdentityPublicKey], IdentityPublicKey) {
        var seen: [IPv4Address: [IdentityPublicKey]] = [:]
        while true {
            let k = Identity.generate().publicKey
            seen[k.meshAddresses.ipv4, default: []].append(k)
            if let group = seen.values.first(where: { $0.count == 3 }) {
                let other = seen.values.first { $0.count == 1 && $0[0].meshAddresses.ipv4 != group[0].meshAddresses.ipv4 }!
                return (group, other[0])
            }
        }
    }

    @Test func lowestKeyKeepsTheAddressEverywhere() {
        let (group, other) = Self.colliding()
        let found = AddressCollisions.find(group + [other])
        #expect(found.count == 1)
        #expect(found[0].winner == group.min()! && Set(found[0].losers) == Set(group).subtracting([group.min()!]))
        // Any order, any observer: the same answer.
        #expect(AddressCollisions.find((group + [other]).reversed()) == found)
        #expect(AddressCollisions.find([other]).isEmpty)
    }

    @Test func losersAreRoutedByIPv6Only() {
        let (group, _) = Self.colliding()
        let me = Identity.generate()
        let peers = group.map { MeshPeerState(key: $0, endpoint: nil) }
        let d = DesiredState.device(identity: me, listenPort: 1, peers: peers)
        let winner = group.min()!
        for p in d.peers {
            let key = group.first { $0.wireGuardPublicKey == p.publicKey }!
            if key == winner {
                #expect(p.allowedIPs.count == 2)
            } else {
                #expect(p.allowedIPs == [.host(.v6(key.meshAddresses.ipv6))])
            }
        }
    }
}

@Suite struct SeedTests {
    @Test func forms() {
        #expect(Seed("192.0.2.1:51821") == .endpoint(Endpoint("192.0.2.1:51821")!))
        #expect(Seed("[2001:db8::1]:7") == .endpoint(Endpoint("[2001:db8::1]:7")!))
        #expect(Seed("seed.example.com:51821") == .host("seed.example.com", port: 51821))
        #expect(Seed("dns:example.com") == .dns(domain: "example.com"))
        #expect(Seed.serviceName("example.com") == "_meshguard._udp.example.com")
        for bad in ["", "example.com", "host:0", "host:99999", "dns:", "dns:bad..name", "-x.example:1", "a b:1", "[::1]"] {
            #expect(Seed(bad) == nil, "\(bad)")
        }
    }

    @Test func seedsFileAndTXT() throws {
        let seeds = try Seed.parseFile("# seeds\n192.0.2.1:51821\n\n dns:mesh.example  # via DNS\nseed.example:1\n")
        #expect(seeds.count == 3)
        #expect(throws: StaticPeersError.self) { try Seed.parseFile("192.0.2.1:1\nnot a seed\n") }
        #expect(Seed.fromTXT(["seed=192.0.2.5:51821 seed=a.example:1", "other=1", "seed=dns:loop.example"]) ==
                [.endpoint(Endpoint("192.0.2.5:51821")!), .host("a.example", port: 1)])
    }
}
