// SystemdNotifier: sd_notify(3) without libsystemd. Under a `Type=notify`
// unit systemd passes NOTIFY_SOCKET (a filesystem path, or "@name" for the
// abstract namespace) and, with `WatchdogSec=`, WATCHDOG_USEC (and
// WATCHDOG_PID). The daemon sends newline-separated assignments as one
// datagram: READY=1, RELOADING=1 (+ MONOTONIC_USEC), STOPPING=1, WATCHDOG=1,
// STATUS=... Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase

public final class SystemdNotifier {
    private let fd: Int32
    private var address: sockaddr_un
    private let addressLength: socklen_t
    /// How often to send WATCHDOG=1: half of WATCHDOG_USEC (systemd's advice), nil without a watchdog.
    public let watchdogInterval: Duration?

    /// From the process environment; nil when not started by systemd with a notify socket.
    public convenience init?() {
        self.init(environment: ProcessEnvironment.all)
    }

    /// From `environment`; nil without a usable NOTIFY_SOCKET.
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], let (addr, len) = SystemdNotifier.address(path) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        address = addr
        addressLength = len
        watchdogInterval = SystemdNotifier.watchdogInterval(environment)
    }

    deinit { close(fd) }

    /// The watchdog period systemd asked for, halved; nil when there is none or it is meant for another process.
    public static func watchdogInterval(_ environment: [String: String]) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], let p = Int32(pid), p != getpid() { return nil }
        return .microseconds(Int64(min(usec, UInt64(Int64.max / 2)) / 2))
    }

    /// `sockaddr_un` for a NOTIFY_SOCKET value: "/path" or "@abstract".
    static func address(_ path: String) -> (sockaddr_un, socklen_t)? {
        var bytes = Array(path.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else { return nil }
        if first == UInt8(ascii: "@") { bytes[0] = 0 }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = MemoryLayout<sa_family_t>.size + bytes.count + (first == UInt8(ascii: "@") ? 0 : 1)
        return (addr, socklen_t(length))
    }

    /// The datagram for `fields`, one `KEY=value` per line; values lose their newlines.
    public static func message(_ fields: [(String, String)]) -> [UInt8] {
        Array(fields.map { "\($0.0)=\($0.1.replacingNewlines())" }.joined(separator: "\n").utf8)
    }

    /// Sends `fields`; false when systemd could not be told (the daemon carries on).
    @discardableResult
    public func notify(_ fields: [(String, String)]) -> Bool {
        let bytes = SystemdNotifier.message(fields)
        let sent = bytes.withUnsafeBytes { buf in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
        return sent == bytes.count
    }

    public func ready(status: String) { notify([("READY", "1"), ("STATUS", status)]) }
    public func reloading(now: Instant) { notify([("RELOADING", "1"), ("MONOTONIC_USEC", "\(now.nanoseconds / 1000)")]) }
    public func stopping() { notify([("STOPPING", "1")]) }
    public func watchdog() { notify([("WATCHDOG", "1")]) }
    public func status(_ text: String) { notify([("STATUS", text)]) }
}

private extension String {
    func replacingNewlines() -> String { String(map { $0 == "\n" || $0 == "\r" ? " " : $0 }) }
}

/// The process environment as a dictionary.
public enum ProcessEnvironment {
    public static var all: [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}
