// meshguard-fuzz: libFuzzer targets for every decoder that reads bytes from
// outside. MESHGUARD_FUZZ_TARGET names the target (fuzz/run.sh lists them);
// libFuzzer's own flags follow on the command line. A target returns normally
// for every input: a refusal is a thrown error or nil; a trap, a crash or a
// hang is a finding (libFuzzer writes the input to crash-*/timeout-*).
//
// Swift executables get their `main` from top-level code, so this file calls
// libFuzzer's driver itself (LLVMFuzzerRunDriver) with the chosen target.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshCore
import MeshCrypto
import MeshIdentity
import MeshProtocol
import MeshSWIM
import MeshWireGuard

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The target libFuzzer drives (libFuzzer's runtime also wants the symbol).
var chosen: ([UInt8]) -> Void = { _ in }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    chosen(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// Fixed keys and state the targets share (built once).
enum Fixture {
    static let identity = Identity(signingKey: try! Ed25519.SigningKey(seed: [UInt8](repeating: 1, count: 32)))
    static let peer = Identity(signingKey: try! Ed25519.SigningKey(seed: [UInt8](repeating: 2, count: 32)))
    static let source = Endpoint(.v4(IPv4Address(192, 0, 2, 1)), port: 51821)

    /// A userspace WireGuard device with one peer, as the engine has it.
    static let device: WireGuardDevice = {
        let d = WireGuardDevice(seed: 1)
        var c = DeviceConfiguration(privateKey: identity.wireGuardPrivateKey.secret, listenPort: 51821)
        c.peers.append(PeerConfiguration(publicKey: peer.wireGuardPublicKey, endpoint: source,
                                         allowedIPs: [.host(.v4(IPv4Address(10, 99, 1, 2)))]))
        d.apply(c, now: .seconds(1))
        d.setWallClock(WallTime(seconds: 1_800_000_000, nanoseconds: 0), at: .seconds(1))
        return d
    }()

    /// A mesh node in lab mode (every key trusted), so envelopes reach the codecs behind the signature check.
    static let node: MeshNode = {
        try! MeshNode(identity: identity, controlEndpoint: Endpoint(.v4(IPv4Address(192, 0, 2, 9)), port: 51821),
                      wireGuardEndpoints: [Endpoint(.v4(IPv4Address(192, 0, 2, 9)), port: 51821)], kernelMode: false,
                      trust: TrustSet(), open: true, epoch: 1, seed: 1, now: .seconds(1))
    }()

    static var stun = STUNClient(servers: [Endpoint(.v4(IPv4Address(192, 0, 2, 3)), port: 3478)],
                                                     localEndpoint: nil, random: SeededRandom(seed: 1), now: .seconds(1))
    static var mapper = PortMapper(gateway: Endpoint(.v4(IPv4Address(192, 168, 1, 1)), port: 5351), ports: [51821])
    static var now: Instant = .seconds(2)
}

/// Each target: bytes in, nothing out but coverage.
let targets: [String: ([UInt8]) -> Void] = [
    // WireGuard messages as the userspace engine receives them (handshake initiation/response, cookie reply, transport).
    "wireguard": { bytes in
        var buf = bytes + [UInt8](repeating: 0, count: 32)
        var offset = 0, length = bytes.count
        Fixture.now = Fixture.now + .milliseconds(1)
        _ = buf.withUnsafeMutableBytes { Fixture.device.receive($0, offset: &offset, length: &length, from: Fixture.source, now: Fixture.now) }
        while Fixture.device.pollTransmit() != nil {}
    },
    // The control plane as the daemon receives it: envelope, replay window, SWIM codec, NAT messages, records.
    "control": { bytes in
        Fixture.now = Fixture.now + .milliseconds(1)
        Fixture.node.receive(bytes, from: Fixture.source, now: Fixture.now)
        while Fixture.node.pollTransmit() != nil {}
    },
    // The payload codecs directly (random bytes never pass a signature).
    "swim": { bytes in _ = try? SWIMCodec.decode(bytes, sender: Fixture.peer.publicKey.raw) },
    "record": { bytes in _ = try? MemberRecord.decode(bytes) },
    "nat": { bytes in _ = try? NATMessage.decode(bytes) },
    "stun": { bytes in
        _ = try? STUN.parseBindingResponse(bytes, transactionID: Array(bytes.prefix(20).suffix(12)))
        Fixture.now = Fixture.now + .milliseconds(1)
        _ = Fixture.stun.receive(bytes, from: Endpoint(.v4(IPv4Address(192, 0, 2, 3)), port: 3478), now: Fixture.now)
    },
    "natpmp": { bytes in
        _ = try? NATPMP.parse(bytes)
        Fixture.now = Fixture.now + .milliseconds(1)
        _ = Fixture.mapper.receive(bytes, from: Fixture.mapper.gateway, now: Fixture.now)
    },
    "dns": { bytes in
        _ = try? DNSMessage.srvRecords(bytes)
        _ = try? DNSMessage.txtStrings(bytes)
    },
    // The userspace API's text protocol (wg set / wg show over the UAPI socket).
    "uapi": { bytes in
        var reader = UAPIRequestReader()
        reader.feed(bytes)
        while let request = try? reader.nextRequest() {
            if case .set(let r) = request { _ = try? UAPI.parseSet(r) }
        }
    },
    // Netlink replies of the kernel's WireGuard family (a get-device dump: messages split at each header's length).
    "netlink": { bytes in
        var messages: [[UInt8]] = []
        var i = 0
        while i + 4 <= bytes.count, messages.count < 64 {
            let n = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            let len = max(4, min(n, bytes.count - i))
            messages.append(Array(bytes[i..<(i + len)]))
            i += len
        }
        _ = try? WireGuardNetlink.parseGetDevice(messages)
    },
    // Files an administrator (or an attacker with write access to them) controls.
    "config": { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? AgentConfigFile(text: text, path: "fuzz.toml")
    },
    "files": { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? Identity(keyFile: text)
        _ = try? IdentityPublicKey(base64: text)
        _ = try? StaticPeers.parse(text)
        _ = try? Seed.parseFile(text)
        _ = try? ConfFile.parse(text)
        _ = STUNServerSpec(text)
        _ = Endpoint(text)
    },
]

/// Seed inputs per target, made with the real encoders (MESHGUARD_FUZZ_SEEDS=DIR writes DIR/<target>/seed-N).
func seeds() -> [String: [[UInt8]]] {
    var out: [String: [[UInt8]]] = [:]
    // A WireGuard handshake initiation and a keepalive attempt from the peer's device toward ours.
    let other = WireGuardDevice(seed: 2)
    var c = DeviceConfiguration(privateKey: Fixture.peer.wireGuardPrivateKey.secret, listenPort: 51821)
    c.peers.append(PeerConfiguration(publicKey: Fixture.identity.wireGuardPublicKey, endpoint: Fixture.source, persistentKeepaliveInterval: 25,
                                     allowedIPs: [.host(.v4(IPv4Address(10, 99, 1, 1)))]))
    other.apply(c, now: .seconds(1))
    other.setWallClock(WallTime(seconds: 1_800_000_000, nanoseconds: 0), at: .seconds(1))
    var wg: [[UInt8]] = []
    while let t = other.pollTransmit() { wg.append(t.bytes) }
    out["wireguard"] = wg + [[4, 0, 0, 0] + [UInt8](repeating: 0, count: 28)]
    // Control plane: a sealed ping with an alive update and record, a NAT message.
    let record = MemberRecord(identity: Fixture.peer, incarnation: 3, controlEndpoint: Fixture.source, wireGuardEndpoints: [Fixture.source], flags: 2)
    let packet = SWIMPacket(sender: Fixture.peer.publicKey.raw, message: .ping(sequence: 7, target: Fixture.identity.publicKey.raw),
                            updates: [.alive(member: Fixture.peer.publicKey.raw, incarnation: 3, endpoint: Fixture.source, metadata: record.encoded)])
    var sealer = EnvelopeSealer(identity: Fixture.peer, epoch: 5)
    let nat = NATMessage.introduction(peer: Fixture.identity.publicKey.raw, endpoint: Fixture.source)
    out["control"] = [try! sealer.seal(.swim, payload: SWIMCodec.encode(packet)), try! sealer.seal(.natTraversal, payload: nat.encoded)]
    out["swim"] = [SWIMCodec.encode(packet)]
    out["record"] = [record.encoded]
    out["nat"] = [nat.encoded, NATMessage.relayGrant(peer: Fixture.peer.publicKey.raw, endpoint: Fixture.source).encoded]
    // STUN: RFC 5769's IPv4 response; NAT-PMP answers.
    out["stun"] = [[0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
                    0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
                    0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
                    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
                    0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96]]
    out["natpmp"] = [[0, 128, 0, 0, 0, 0, 1, 0, 198, 51, 100, 15], [0, 129, 0, 0, 0, 0, 0, 9, 0xCA, 0x6D, 0x9C, 0x40, 0, 0, 0x1C, 0x20]]
    // A DNS answer with one SRV record (_meshguard._udp.example.com → seed.example.com:51821).
    out["dns"] = [[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
                  + [10] + Array("_meshguard".utf8) + [4] + Array("_udp".utf8) + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0, 33, 0, 1]
                  + [0xC0, 0x0C, 0, 33, 0, 1, 0, 0, 0x0E, 0x10, 0, 24, 0, 10, 0, 5, 0xCA, 0x6D]
                  + [4] + Array("seed".utf8) + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0]]
    out["uapi"] = [Array("set=1\nprivate_key=\(String(repeating: "a1", count: 32))\nlisten_port=51820\npublic_key=\(String(repeating: "b2", count: 32))\nendpoint=192.0.2.1:51820\nallowed_ip=10.99.1.2/32\npersistent_keepalive_interval=25\n\nget=1\n\n".utf8)]
    var change = DeviceConfiguration(privateKey: Fixture.identity.wireGuardPrivateKey.secret, listenPort: 51820)
    change.peers.append(PeerConfiguration(publicKey: Fixture.peer.wireGuardPublicKey, endpoint: Fixture.source, persistentKeepaliveInterval: 25,
                                          allowedIPs: [.host(.v4(IPv4Address(10, 99, 1, 2)))]))
    out["netlink"] = [(try? WireGuardNetlink.setDeviceMessages(interface: "mg0", family: 30, change: change))?.flatMap { $0 } ?? []]
    out["config"] = [Array("""
        # meshguard-agent.toml
        mode = "auto"
        interface = "mg0"
        mtu = 1_420
        seeds = [
            "192.0.2.1:51821", # the first
            'dns:example.com',
        ]
        stun-servers = ["stun.example.com:3478"]
        open = false

        """.utf8)]
    out["files"] = [Fixture.identity.keyFileBytes(), Array((Fixture.peer.publicKey.base64 + "\n").utf8),
                    Array("peer-b 192.0.2.2:51821\n# comment\n".utf8), Array("[Interface]\nListenPort = 51820\n".utf8)]
    return out
}

if let dir = getenv("MESHGUARD_FUZZ_SEEDS").map({ String(cString: $0) }) {
    for (target, inputs) in seeds() {
        mkdir(dir + "/" + target, 0o755)
        for (i, bytes) in inputs.enumerated() {
            let f = fopen(dir + "/" + target + "/seed-\(i)", "wb")
            _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            fclose(f)
        }
    }
    exit(0)
}

let name = getenv("MESHGUARD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
guard let target = targets[name] else {
    let known = targets.keys.sorted().joined(separator: " ")
    fputs("meshguard-fuzz: set MESHGUARD_FUZZ_TARGET to one of: \(known)\n", stderr)
    exit(2)
}
chosen = target
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
