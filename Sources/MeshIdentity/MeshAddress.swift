// Mesh addresses derived from identities, so no one allocates them
// (docs/identity.md). With H = BLAKE3-256(Ed25519 public key):
//   IPv4  10.99.H[0].H[1]/16   third octet 0 -> 1; fourth 0 -> 1, 255 -> 254
//   IPv6  fd99:6d67::/64 with H[0..<8] as interface identifier (all zero -> ::1)
// IPv4 addresses can collide (65,024 values: about 7 % for 100 nodes); the
// IPv6 one has 64 bits and in practice never does.
import MeshBase
import MeshCrypto

public struct MeshAddresses: Hashable, Sendable {
    public static let ipv4Prefix = IPv4Address(10, 99, 0, 0)
    public static let ipv4PrefixLength = 16
    public static let ipv6Prefix = IPv6Address(high: 0xfd99_6d67_0000_0000, low: 0)
    public static let ipv6PrefixLength = 64

    public let ipv4: IPv4Address
    public let ipv6: IPv6Address

    public init(publicKey: Bytes32) {
        let h = BLAKE3.hash(publicKey.bytes)
        var third = h[0], fourth = h[1]
        if third == 0 { third = 1 }
        if fourth == 0 { fourth = 1 } else if fourth == 255 { fourth = 254 }
        ipv4 = IPv4Address(10, 99, third, fourth)
        var iid = h[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if iid == 0 { iid = 1 }
        ipv6 = IPv6Address(high: MeshAddresses.ipv6Prefix.high, low: iid)
    }
}
