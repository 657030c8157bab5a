// UAPIError: why a UAPI request was refused, as the errno the reply carries.
//
// The errno values follow wireguard-go (ipc/uapi_unix.go: IpcErrorIO = EIO,
// IpcErrorProtocol = EPROTO, IpcErrorInvalid = EINVAL, IpcErrorPortInUse =
// EADDRINUSE, IpcErrorUnknown = 55) with Linux numbering. `errno` here is the
// positive value; `UAPI.formatErrno` writes it negated, as wireguard-go does
// and as `wg` expects (it negates it back and prints strerror).

/// A refused UAPI request: a positive Linux errno and a one-line message.
/// Messages never contain private or preshared key material, and echo
/// client-supplied text only after `UAPIError.sanitized` (printable ASCII,
/// truncated).
public struct UAPIError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Positive Linux errno (see `Errno`); never 0.
    public var errno: Int32
    /// One line, no key material.
    public var message: String

    public init(errno: Int32, message: String) {
        self.errno = errno
        self.message = message
    }

    public var description: String { "UAPI error \(errno): \(message)" }

    /// The Linux errno values a UAPI reply uses, named as in <errno.h>.
    public enum Errno {
        /// I/O error. wireguard-go: input could not be read (a line longer
        /// than its scanner allows).
        public static let EIO: Int32 = 5
        /// Invalid argument. wireguard-go: unknown operation suffix, unknown
        /// key, or a value that does not parse.
        public static let EINVAL: Int32 = 22
        /// Unknown error. wireguard-go's IpcErrorUnknown (ENOANO) for errors
        /// that carry no code of their own.
        public static let ENOANO: Int32 = 55
        /// Protocol error. wireguard-go: a set line without `=`.
        public static let EPROTO: Int32 = 71
        /// Message too long. Ours: a request larger than the reader's limit
        /// (wireguard-go has no such limit).
        public static let EMSGSIZE: Int32 = 90
        /// Address in use. wireguard-go: binding listen_port or setting
        /// fwmark failed (reported by the engine, never by this codec).
        public static let EADDRINUSE: Int32 = 98
    }

    static func invalid(_ message: String) -> UAPIError { UAPIError(errno: Errno.EINVAL, message: message) }

    /// `text` made safe for a one-line message: printable ASCII kept, every
    /// other byte shown as `\xNN`, cut to `limit` bytes of input with `…`.
    /// Never pass key material here.
    static func sanitized<C: Collection>(_ text: C, limit: Int = 64) -> String where C.Element == UInt8 {
        var out = ""
        var n = 0
        for b in text {
            if n == limit { out += "…"; break }
            if b >= 0x20 && b < 0x7f && b != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex: [Character] = Array("0123456789abcdef")
                out += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
            n += 1
        }
        return out
    }
}
