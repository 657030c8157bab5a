// Generic netlink through libnl-genl: the socket that later carries the
// `wireguard` family's WG_CMD_GET_DEVICE / WG_CMD_SET_DEVICE (issue 4).
// C stays here: one class owns each nl_sock and frees it in deinit; libnl's
// negative NLE_* codes become NetlinkError with nl_geterror's text.
import CNetlink
import CNetlinkGenl

public struct NetlinkError: Error, Equatable, CustomStringConvertible {
    /// libnl's error code (positive NLE_* value).
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) { self.code = abs(code); self.operation = operation }

    public var description: String {
        let text = nl_geterror(-code).map { String(cString: $0) } ?? "error \(code)"
        return "\(operation): \(text)"
    }

    /// NLE_OBJ_NOTFOUND: e.g. a generic netlink family that is not registered.
    public var isNotFound: Bool { code == Int32(NLE_OBJ_NOTFOUND) }
}

/// A connected generic netlink socket. Not safe for concurrent use: one owner
/// (a task or an actor) drives it.
public final class GenericNetlinkSocket {
    let sock: OpaquePointer

    public init() throws(NetlinkError) {
        guard let s = nl_socket_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "nl_socket_alloc") }
        let rc = genl_connect(s)
        if rc < 0 {
            nl_socket_free(s)
            throw NetlinkError(code: rc, operation: "genl_connect")
        }
        sock = s
    }

    deinit { nl_socket_free(sock) }

    /// The numeric id of a generic netlink family, or nil when the kernel has
    /// no such family (for `wireguard`: the module is not loaded).
    public func familyID(_ name: String) throws(NetlinkError) -> UInt16? {
        let rc = genl_ctrl_resolve(sock, name)
        if rc >= 0 { return UInt16(rc) }
        let e = NetlinkError(code: rc, operation: "resolve generic netlink family '\(name)'")
        if e.isNotFound { return nil }
        throw e
    }

    /// The WireGuard generic netlink family name (WG_GENL_NAME in linux/wireguard.h).
    public static let wireGuardFamily = WG_GENL_NAME
}
