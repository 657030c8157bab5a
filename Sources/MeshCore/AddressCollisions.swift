// IPv4 mesh address collisions (docs/identity.md). Derived IPv4 addresses have
// 16 bits, so two members may share one (about 7 % for 100 nodes). Every node
// sees the same keys, so every node resolves a collision the same way, with no
// coordination:
//
//   among members whose derived IPv4 addresses are equal, the member whose
//   Ed25519 identity key sorts lowest (bytewise) keeps the IPv4 address; the
//   others are routed by their IPv6 address only, and the collision is reported.
//
// The IPv6 addresses (64 bits) do not collide in practice.
import MeshBase
import MeshIdentity

public struct AddressCollision: Equatable, Sendable {
    public let address: IPv4Address
    /// The member that keeps the address.
    public let winner: IdentityPublicKey
    /// The members routed by IPv6 only.
    public let losers: [IdentityPublicKey]
}

public enum AddressCollisions {
    /// The collisions among `members` (which may include this node), sorted by address.
    public static func find(_ members: [IdentityPublicKey]) -> [AddressCollision] {
        var byAddress: [IPv4Address: Set<IdentityPublicKey>] = [:]
        for m in members { byAddress[m.meshAddresses.ipv4, default: []].insert(m) }
        return byAddress.filter { $0.value.count > 1 }.map { address, keys in
            let sorted = keys.sorted()
            return AddressCollision(address: address, winner: sorted[0], losers: Array(sorted.dropFirst()))
        }.sorted { $0.address < $1.address }
    }

    /// The members that must not be given their IPv4 address.
    public static func ipv4Losers(_ members: [IdentityPublicKey]) -> Set<IdentityPublicKey> {
        Set(find(members).flatMap(\.losers))
    }
}
