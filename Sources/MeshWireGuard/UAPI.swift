// The WireGuard cross-platform userspace API (UAPI), sans-IO: what `wg`
// (show, showconf, set, setconf, addconf, syncconf) speaks to a userspace
// engine over /var/run/wireguard/<iface>.sock.
//
// Spec: https://www.wireguard.com/xplatform/#configuration-protocol
// Reference server: wireguard-go device/uapi.go (IpcHandle,
// IpcGetOperation, IpcSetOperation); reference client: wireguard-tools
// src/ipc-uapi.h (userspace_set_device, userspace_get_device).
//
//   client                                    server
//   get=1\n \n                     ──────►
//                                  ◄──────    private_key=<hex>\n … allowed_ip=…\n
//                                             errno=0\n \n
//   set=1\n key=value\n … \n       ──────►    (applied as one change)
//                                  ◄──────    errno=0\n \n   or   errno=-22\n \n
//
// A connection carries any number of requests in sequence. Keys are 64 hex
// digits (not base64; written lowercase, read in either case as wireguard-go
// does); numbers are decimal; a set lists device keys first, then per peer a
// `public_key=` line followed by that peer's keys.
//
// The codec is split by concept:
//   UAPIRequestReader.swift  framing the byte stream into requests (limits)
//   UAPISet.swift            `set=1` body → DeviceConfiguration (a change)
//   UAPIGet.swift            DeviceConfiguration (a snapshot) → `get=1` reply
//   UAPIError.swift          refusals and their errno values
// The socket, the engine and applying a change are someone else's: this
// target does no I/O.

/// Namespace of the UAPI codec's functions. See the file header for the
/// protocol; `UAPIRequestReader` frames requests.
public enum UAPI {
    /// The reply to a `set=1` request (or to any refused request): the
    /// `errno=` line and the blank line that ends every reply.
    ///
    /// `code` is a positive errno (see `UAPIError.Errno`), or 0 for success.
    /// It is written negated (`errno=-22`) because that is what wireguard-go
    /// writes and what `wg` expects: it negates the value back and reports
    /// strerror(22). A negative `code` is taken as already negated.
    public static func formatErrno(_ code: Int32) -> String {
        if code == 0 { return "errno=0\n\n" }
        let magnitude = Int64(code).magnitude          // Int32.min has no positive Int32
        return "errno=-\(magnitude)\n\n"
    }

    /// `formatErrno(error.errno)`.
    public static func formatErrno(_ error: UAPIError) -> String { formatErrno(error.errno) }
}
