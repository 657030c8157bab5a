// Generic netlink through libnl-genl: the socket that carries the `wireguard`
// family's WG_CMD_GET_DEVICE / WG_CMD_SET_DEVICE. C stays here: one class owns
// each nl_sock and frees it in deinit; libnl's negative NLE_* codes become
// NetlinkError with nl_geterror's text. Message contents are encoded and
// decoded in Swift (MeshWireGuard.WireGuardNetlink); libnl does the
// conversation: port and sequence numbers, sending, multi-part receive, acks.
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

    /// NLE_OBJ_NOTFOUND: e.g. a generic netlink family that is not registered, or no such device.
    public var isNotFound: Bool { code == Int32(NLE_OBJ_NOTFOUND) || code == Int32(NLE_NODEV) }
    /// NLE_OPNOTSUPP: e.g. a link kind the kernel does not know.
    public var isNotSupported: Bool { code == Int32(NLE_OPNOTSUPP) }
}

/// Collects the raw bytes of every message a receive delivers.
final class MessageCollector {
    var messages: [[UInt8]] = []
}

/// A connected generic netlink socket. Not safe for concurrent use: one owner
/// drives it.
public final class GenericNetlinkSocket {
    let sock: OpaquePointer

    public init() throws(NetlinkError) {
        guard let s = nl_socket_alloc() else { throw NetlinkError(code: Int32(NLE_NOMEM), operation: "nl_socket_alloc") }
        let rc = genl_connect(s)
        if rc < 0 {
            nl_socket_free(s)
            throw NetlinkError(code: rc, operation: "genl_connect")
        }
        // Flags are set in the message bytes; big dumps need a big buffer.
        nl_socket_disable_auto_ack(s)
        _ = nl_socket_set_buffer_size(s, 1 << 20, 1 << 20)
        _ = nl_socket_set_msg_buf_size(s, 1 << 16)
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

    /// Sends one complete netlink message (libnl sets its port and sequence number).
    func send(_ bytes: [UInt8], operation: String) throws(NetlinkError) {
        let rc: Int32 = bytes.withUnsafeBytes { raw in
            guard let msg = nlmsg_convert(UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self))) else {
                return -Int32(NLE_NOMEM)
            }
            defer { nlmsg_free(msg) }
            return nl_send_auto(sock, msg)
        }
        if rc < 0 { throw NetlinkError(code: rc, operation: operation) }
    }

    /// Sends `bytes` (which ask for an ack) and waits for it.
    func request(_ bytes: [UInt8], operation: String) throws(NetlinkError) {
        try send(bytes, operation: operation)
        let rc = nl_wait_for_ack(sock)
        if rc < 0 { throw NetlinkError(code: rc, operation: operation) }
    }

    /// Sends a dump request and returns every message of the reply, until NLMSG_DONE.
    func dump(_ bytes: [UInt8], operation: String) throws(NetlinkError) -> [[UInt8]] {
        try send(bytes, operation: operation)
        let collector = MessageCollector()
        let cb: nl_recvmsg_msg_cb_t = { msg, arg in
            let c = Unmanaged<MessageCollector>.fromOpaque(arg!).takeUnretainedValue()
            let hdr = nlmsg_hdr(msg)!
            let len = Int(hdr.pointee.nlmsg_len)
            c.messages.append(Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(hdr), count: len)))
            return Int32(NL_OK.rawValue)
        }
        let rc: Int32 = withExtendedLifetime(collector) {
            nl_socket_modify_cb(sock, NL_CB_VALID, NL_CB_CUSTOM, cb, Unmanaged.passUnretained(collector).toOpaque())
            return nl_recvmsgs_default(sock)
        }
        if rc < 0 { throw NetlinkError(code: rc, operation: operation) }
        return collector.messages
    }
}
