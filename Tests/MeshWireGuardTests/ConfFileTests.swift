import Testing
import MeshBase
import MeshCrypto
@testable import MeshWireGuard

@Suite struct ConfFileTests {
    @Test func parsesWhatWgShowconfPrints() throws {
        let text = """
        [Interface]
        ListenPort = 51820
        FwMark = 0x10
        PrivateKey = EE1xKAPPxBaq86HAtOuRoZ3TJkkUtz6GPv4d8AkhLm0=

        [Peer]
        PublicKey = HSh8LLMWfhZsoxmm56hcPyup39HQhAlgRPLif0qk9kk=
        PresharedKey = KjXe+zFA+b8uOu2+B1M24pTkbaDAlVM0jffMwWEqZG8=
        AllowedIPs = 10.0.0.1/32, fd00::1/128
        Endpoint = [2001:db8::1]:51820
        PersistentKeepalive = 25

        [peer]
        publickey = D1nBUauS2qdoEWRGYrUv6htl7ae0n3GglSf9PdSWpks=   # lower case works too
        """
        let d = try ConfFile.parse(text)
        #expect(d.replacePeers && d.listenPort == 51820 && d.firewallMark == 16 && d.privateKey?.count == 32)
        #expect(d.peers.count == 2)
        #expect(d.peers[0].publicKey.base64 == "HSh8LLMWfhZsoxmm56hcPyup39HQhAlgRPLif0qk9kk=")
        #expect(d.peers[0].allowedIPs == [IPPrefix("10.0.0.1/32")!, IPPrefix("fd00::1/128")!])
        #expect(d.peers[0].endpoint == Endpoint("[2001:db8::1]:51820") && d.peers[0].persistentKeepaliveInterval == 25)
        #expect(d.peers[0].replaceAllowedIPs && d.peers[1].allowedIPs.isEmpty)
    }

    @Test(arguments: [("[Bogus]", 1), ("ListenPort = 1", 1), ("[Interface]\nListenPort = 99999", 2), ("[Peer]\nPublicKey = abc", 2),
                      ("[Peer]\nAllowedIPs = 10.0.0.0/33", 2), ("[Peer]\nEndpoint = host.example:1", 2), ("[Interface]\nFoo = 1", 2), ("[Peer]", 0)])
    func errorsNameTheLine(text: String, line: Int) {
        do {
            _ = try ConfFile.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
        }
    }
}
