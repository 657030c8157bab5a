// RTNETLINK through libnl on a real interface (a TUN device with a unique
// name in the host namespace; run as root, as CI does), and the constants of
// the WireGuard netlink codec against the kernel's UAPI header.
import Testing
import CNetlinkGenl
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshLinux
@testable import MeshNetlink
@testable import MeshWireGuard

@Suite struct WireGuardUAPIHeaderTests {
    @Test func codecConstantsMatchLinuxWireguardH() {
        #expect(UInt32(WireGuardNetlink.cmdGetDevice) == WG_CMD_GET_DEVICE.rawValue)
        #expect(UInt32(WireGuardNetlink.cmdSetDevice) == WG_CMD_SET_DEVICE.rawValue)
        #expect(UInt32(WireGuardNetlink.DeviceAttr.peers.rawValue) == WGDEVICE_A_PEERS.rawValue)
        #expect(UInt32(WireGuardNetlink.DeviceAttr.ifname.rawValue) == WGDEVICE_A_IFNAME.rawValue)
        #expect(UInt32(WireGuardNetlink.PeerAttr.protocolVersion.rawValue) == WGPEER_A_PROTOCOL_VERSION.rawValue)
        #expect(UInt32(WireGuardNetlink.PeerAttr.allowedIPs.rawValue) == WGPEER_A_ALLOWEDIPS.rawValue)
        #expect(UInt32(WireGuardNetlink.AllowedIPAttr.cidrMask.rawValue) == WGALLOWEDIP_A_CIDR_MASK.rawValue)
        #expect(WireGuardNetlink.peerReplaceAllowedIPs == WGPEER_F_REPLACE_ALLOWEDIPS.rawValue)
        #expect(WireGuardNetlink.peerUpdateOnly == WGPEER_F_UPDATE_ONLY.rawValue)
        #expect(WireGuardNetlink.deviceReplacePeers == WGDEVICE_F_REPLACE_PEERS.rawValue)
        #expect(WireGuardNetlink.familyName == WG_GENL_NAME)
    }
}

@Suite(.serialized) struct RouteNetlinkTests {
    @Test func linkStateAndAddressesOnATunDevice() throws {
        let name = "mgn\(getpid() % 100_000)"
        let tun = try TunDevice(name: name, mtu: 1420, nonBlocking: true)
        defer { tun.close() }
        let rt = try RouteNetlink()
        let link = try #require(try rt.link(name))
        #expect(link.kind == "tun" && link.index > 0 && link.mtu == 1420 && !link.isUp)
        try rt.configureLink(name, mtu: 1380, up: true)
        let after = try #require(try rt.link(name))
        #expect(after.mtu == 1380 && after.isUp)

        let v4 = RouteNetlink.InterfaceAddress(IPAddress("10.99.77.5")!, prefixLength: 16)
        let v6 = RouteNetlink.InterfaceAddress(IPAddress("fd99:6d67::77:5")!, prefixLength: 64)
        try rt.reconcileAddresses([v4, v6], ifindex: link.index)
        let have = try rt.addresses(ifindex: link.index).filter { !$0.description.hasPrefix("fe80") }
        #expect(Set(have) == [v4, v6])
        // Idempotent: a second reconcile changes nothing and does not fail.
        try rt.reconcileAddresses([v4, v6], ifindex: link.index)
        #expect(Set(try rt.addresses(ifindex: link.index).filter { !$0.description.hasPrefix("fe80") }) == [v4, v6])
        // A different wanted set replaces the old addresses.
        let other = RouteNetlink.InterfaceAddress(IPAddress("10.99.77.6")!, prefixLength: 16)
        try rt.reconcileAddresses([other], ifindex: link.index)
        #expect(try rt.addresses(ifindex: link.index).filter { !$0.description.hasPrefix("fe80") } == [other])
    }

    @Test func missingLinksAreNilAndErrorsAreOneLine() throws {
        let rt = try RouteNetlink()
        #expect(try rt.link("mg-none-\(getpid() % 1000)") == nil)
        do {
            try rt.deleteLink("mg-none-\(getpid() % 1000)")
            Issue.record("deleting a missing link succeeded")
        } catch {
            #expect(error.description.hasPrefix("delete link mg-none-"))
            #expect(!error.description.contains("\n"))
        }
    }

    /// With the module (in the VM) a wireguard link can be made; without it (this host) the kernel refuses clearly.
    @Test func wireguardLinkKind() throws {
        let rt = try RouteNetlink()
        let name = "mgw\(getpid() % 100_000)"
        let available = try GenericNetlinkSocket().familyID("wireguard") != nil
        if available {
            try rt.createLink(name, kind: "wireguard")
            #expect(try rt.link(name)?.kind == "wireguard")
            try rt.deleteLink(name)
        } else {
            do {
                try rt.createLink(name, kind: "wireguard")
                try? rt.deleteLink(name)
                Issue.record("created a wireguard link without the module")
            } catch {
                #expect(error.isNotSupported || error.isNotFound, "\(error)")
            }
            let probe = KernelWireGuard.probe(loadModule: false)
            #expect(!probe.available && probe.reason.contains("no wireguard module"))
            #expect(try KernelWireGuard() == nil)
        }
    }
}
