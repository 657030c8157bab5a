// The data plane: one model (MeshWireGuard.DeviceConfiguration), two engines.
//
//   kernel     the in-kernel WireGuard module: link over RTNETLINK, device over
//              generic netlink; packets never pass through the agent
//   userspace  our WireGuard (MeshUserspace) on a TUN device
//
// The engine is chosen in exactly one place, `DataPlaneFactory.open`. Both
// engines take the *desired* state and reconcile it (MeshWireGuard.Reconcile):
// only changed peers are touched, so sessions of unchanged peers survive.
import MeshBase
import MeshCrypto
import MeshNetlink
import MeshUserspace
import MeshWireGuard

public enum DataPlaneMode: String, Sendable, CaseIterable {
    case kernel, userspace, auto
}

public struct DataPlaneError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// What the interface should look like, besides the WireGuard configuration.
public struct InterfaceSettings: Sendable, Equatable {
    public var name: String
    public var mtu: Int
    /// Addresses with their prefix lengths (the mesh /16 and /64).
    public var addresses: [RouteNetlink.InterfaceAddress]
    public init(name: String, mtu: Int, addresses: [RouteNetlink.InterfaceAddress]) {
        self.name = name; self.mtu = mtu; self.addresses = addresses
    }
}

public protocol DataPlane: AnyObject {
    /// `kernel` or `userspace`.
    var mode: DataPlaneMode { get }
    var interfaceName: String { get }
    /// Makes the device match `desired` (a complete state); returns the change applied.
    @discardableResult
    func apply(desired: DeviceConfiguration) throws -> DeviceConfiguration
    /// Forget any cached view of the device: the next `apply` reconciles against what it really has.
    func resync()
    /// The device as it is.
    func snapshot() throws -> DeviceConfiguration
    /// The engine's own counters where it keeps them (userspace); nil for the kernel, which does not say.
    var statistics: DeviceStatistics? { get }
    /// Stops the engine; the interface is removed.
    func close()
}

public enum DataPlaneFactory {
    /// Opens the data plane for `mode`, with the interface set up, and says
    /// which engine it chose and why. `--kernel` without the module fails with
    /// one actionable line; `auto` falls back to userspace.
    public static func open(mode: DataPlaneMode, interface: InterfaceSettings) throws -> (DataPlane, reason: String) {
        switch mode {
        case .userspace:
            return (try UserspaceDataPlane(interface), "userspace mode was requested")
        case .kernel:
            let probe = KernelWireGuard.probe()
            guard probe.available else {
                throw DataPlaneError("--kernel: \(probe.reason); use a kernel with WireGuard (Linux 5.6 or later) or run with --userspace")
            }
            return (try KernelDataPlane(interface), probe.reason)
        case .auto:
            let probe = KernelWireGuard.probe()
            if probe.available {
                return (try KernelDataPlane(interface), "kernel: \(probe.reason)")
            }
            return (try UserspaceDataPlane(interface), "userspace: \(probe.reason)")
        }
    }
}

/// Sets MTU, addresses and link state through RTNETLINK (both engines' interfaces).
func configureInterface(_ s: InterfaceSettings) throws {
    let rt = try RouteNetlink()
    guard let link = try rt.link(s.name) else { throw DataPlaneError("interface \(s.name) disappeared") }
    try rt.configureLink(s.name, mtu: UInt32(s.mtu), up: true)
    try rt.reconcileAddresses(s.addresses, ifindex: link.index)
}

public final class KernelDataPlane: DataPlane {
    public var statistics: DeviceStatistics? { nil }
    public let mode = DataPlaneMode.kernel
    public let interfaceName: String
    let wireguard: KernelWireGuard
    /// The state last applied. Changes are computed against it, so a one-peer
    /// change costs one small message, not a dump of every peer; `resync`
    /// (at start, and whenever asked) reads the device back to catch drift.
    private var applied: DeviceConfiguration?

    /// Finds or creates the link (after a crash it is still there: reuse it).
    public init(_ settings: InterfaceSettings) throws {
        guard let wg = try KernelWireGuard() else { throw DataPlaneError("the kernel has no wireguard module") }
        wireguard = wg
        interfaceName = settings.name
        let rt = try RouteNetlink()
        if let existing = try rt.link(settings.name) {
            guard existing.kind == "wireguard" else {
                throw DataPlaneError("interface \(settings.name) exists and is not a WireGuard interface (kind \(existing.kind ?? "unknown")); choose another --interface")
            }
        } else {
            try rt.createLink(settings.name, kind: "wireguard")
        }
        try configureInterface(settings)
    }

    @discardableResult
    public func apply(desired: DeviceConfiguration) throws -> DeviceConfiguration {
        let base = try applied ?? wireguard.device(interfaceName)
        let change = Reconcile.change(from: base, to: desired)
        applied = nil
        if !Reconcile.isEmpty(change) { try wireguard.apply(change, to: interfaceName) }
        applied = desired
        return change
    }

    /// Forgets the cached state: the next `apply` reads the device first.
    public func resync() { applied = nil }

    public func snapshot() throws -> DeviceConfiguration { try wireguard.device(interfaceName) }

    public func close() { try? RouteNetlink().deleteLink(interfaceName) }
}

public final class UserspaceDataPlane: DataPlane {
    public var statistics: DeviceStatistics? { engine.statistics }
    public let mode = DataPlaneMode.userspace
    public let engine: UserspaceEngine
    public var interfaceName: String { engine.interfaceName }

    public init(_ settings: InterfaceSettings) throws {
        var config = EngineConfiguration(interfaceName: settings.name)
        config.mtu = settings.mtu
        engine = try UserspaceEngine(config)
        try engine.start()
        do {
            try configureInterface(InterfaceSettings(name: engine.interfaceName, mtu: settings.mtu, addresses: settings.addresses))
        } catch {
            engine.stop()
            throw error
        }
    }

    @discardableResult
    public func apply(desired: DeviceConfiguration) throws -> DeviceConfiguration {
        let change = Reconcile.change(from: engine.snapshot(), to: desired)
        if !Reconcile.isEmpty(change) { try engine.apply(change) }
        return change
    }

    public func resync() {}

    public func snapshot() throws -> DeviceConfiguration { engine.snapshot() }

    public func close() { engine.stop() }
}
