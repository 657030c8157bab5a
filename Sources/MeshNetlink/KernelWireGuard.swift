// The in-kernel WireGuard device over generic netlink: read it as a
// DeviceConfiguration snapshot, apply a DeviceConfiguration change (split over
// several messages when large). The module is loaded on demand with modprobe.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshWireGuard

public final class KernelWireGuard {
    let socket: GenericNetlinkSocket
    public let familyID: UInt16

    /// Connects to the `wireguard` family; nil when the kernel has none.
    public init?() throws(NetlinkError) {
        let s = try GenericNetlinkSocket()
        guard let id = try s.familyID(WireGuardNetlink.familyName) else { return nil }
        socket = s
        familyID = id
    }

    /// Whether the kernel has WireGuard, trying `modprobe wireguard` once when
    /// it does not. The reason explains a `false`.
    public static func probe(loadModule: Bool = true) -> (available: Bool, reason: String) {
        do {
            if try GenericNetlinkSocket().familyID(WireGuardNetlink.familyName) != nil {
                return (true, "the kernel has the wireguard module")
            }
            guard loadModule else { return (false, "the kernel has no wireguard module") }
            let status = runModprobe()
            if try GenericNetlinkSocket().familyID(WireGuardNetlink.familyName) != nil {
                return (true, "loaded the wireguard kernel module")
            }
            return (false, "the kernel has no wireguard module (modprobe wireguard: \(status))")
        } catch {
            return (false, "generic netlink is unavailable: \(error)")
        }
    }

    static func runModprobe() -> String {
        for path in ["/sbin/modprobe", "/usr/sbin/modprobe"] where access(path, X_OK) == 0 {
            var pid: pid_t = 0
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            let args = [path, "wireguard"]
            var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
            defer { for p in argv { free(p) } }
            guard posix_spawn(&pid, path, &actions, nil, &argv, nil) == 0 else { return "could not run \(path)" }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return status == 0 ? "ok" : "exit status \(status >> 8)"
        }
        return "modprobe not found"
    }

    /// The device as the kernel has it.
    public func device(_ interface: String) throws -> DeviceConfiguration {
        let msgs = try socket.dump(WireGuardNetlink.getDeviceRequest(interface: interface, family: familyID),
                                   operation: "read WireGuard device \(interface)")
        return try WireGuardNetlink.parseGetDevice(msgs)
    }

    /// Applies a change, as as many messages as it takes.
    public func apply(_ change: DeviceConfiguration, to interface: String) throws {
        for m in try WireGuardNetlink.setDeviceMessages(interface: interface, family: familyID, change: change) {
            try socket.request(m, operation: "configure WireGuard device \(interface)")
        }
    }
}
