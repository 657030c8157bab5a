// The daemon's control socket: an AF_UNIX stream socket in the runtime
// directory, owned by root and, when an admin group is given, readable and
// writable by that group (socket 0660, directory 0750); never world-writable.
// One request line per connection, one answer, then the server closes.
//
//   UnixControlListener   the daemon side: bind (refusing a path another
//                         live daemon holds, replacing a stale one), accept
//   UnixControlClient     `meshguard-agent status|peers|down`: connect, send
//                         the line, read the answer to EOF; errors say what
//                         to do (permission, no agent running)
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

public final class UnixControlListener {
    public let path: String
    public private(set) var fileDescriptor: Int32 = -1

    /// Listens on `path`; the socket and its directory get `group` (when
    /// given) with modes 0660 and 0750, else 0600 and 0700 (root only).
    public init(path: String, group: gid_t?) throws(LinuxError) {
        self.path = path
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw .invalid("control socket \(path)", "path too long")
        }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if !directory.isEmpty, mkdir(directory, group == nil ? 0o700 : 0o750) != 0, errno != EEXIST {
            throw LinuxError("mkdir \(directory)", lastErrno())
        }
        if !directory.isEmpty {
            _ = chmod(directory, group == nil ? 0o700 : 0o750)
            if let g = group { _ = chown(directory, 0, g) }
        }
        // A daemon that answers owns the path; a socket file nobody answers on is left from a crash.
        if UnixControlClient.isListening(path) {
            throw .invalid("control socket \(path)", "another meshguard-agent is running (it answers on this socket)")
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw LinuxError("socket AF_UNIX", lastErrno()) }
        var addr = UnixControlClient.address(path)
        // Created with no permissions for anyone else; opened up below once its owner is right.
        let old = umask(0o177)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0 else { let e = lastErrno(); Glibc.close(fd); throw LinuxError("bind \(path)", e) }
        if let g = group {
            guard chown(path, 0, g) == 0, chmod(path, 0o660) == 0 else {
                let e = lastErrno(); Glibc.close(fd); unlink(path); throw LinuxError("chown/chmod \(path)", e)
            }
        }
        guard listen(fd, 16) == 0 else { let e = lastErrno(); Glibc.close(fd); unlink(path); throw LinuxError("listen \(path)", e) }
        fileDescriptor = fd
    }

    deinit { close() }

    /// Stops listening and removes the socket file.
    public func close() {
        guard fileDescriptor >= 0 else { return }
        Glibc.close(fileDescriptor)
        fileDescriptor = -1
        unlink(path)
    }

    /// The next waiting connection (blocking, with `timeout` for reads and
    /// writes), nil when none waits.
    public func accept(timeout: Duration) -> UnixControlConnection? {
        let fd = Glibc.accept(fileDescriptor, nil, nil)
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        // Accepted sockets do not inherit the listener's O_NONBLOCK on Linux: reads block up to `timeout`.
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return UnixControlConnection(fd: fd)
    }
}

/// One accepted connection: read a request line, write the answer, close.
public final class UnixControlConnection {
    private var fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close() }

    /// The request line without its newline; nil on timeout, EOF before a newline, or more than `limit` bytes.
    public func readLine(limit: Int = 256) -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while bytes.count <= limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            bytes += buffer[0..<n]
            if let nl = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                return String(decoding: bytes[..<nl], as: UTF8.self)
            }
        }
        return nil
    }

    /// Writes all of `text` (best effort: a client that went away is not an error).
    public func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
}

public enum UnixControlClient {
    /// Why a request could not be made, as one actionable line.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sends `request` (one line) to the daemon at `path` and returns its whole answer.
    public static func request(_ request: String, path: String, timeout: Duration = .seconds(10)) throws(Failure) -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "cannot create a socket: \(Errno(rawValue: errno))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = address(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let e = errno
            switch e {
            case EACCES, EPERM:
                throw Failure(description: "permission denied on \(path): run as root or as a member of the agent's admin group")
            case ENOENT, ECONNREFUSED, ENOTDIR:
                throw Failure(description: "no meshguard-agent is running (nothing answers on \(path))")
            default:
                throw Failure(description: "cannot connect to \(path): \(Errno(rawValue: e))")
            }
        }
        var line = Array((request + "\n").utf8)[...]
        while !line.isEmpty {
            let n = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "the agent closed the control socket: \(Errno(rawValue: errno))") }
            line = line.dropFirst(n)
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw Failure(description: "no answer from the agent on \(path): \(Errno(rawValue: errno))") }
            if n == 0 { break }
            answer += buffer[0..<n]
            if answer.count > 64 << 20 { throw Failure(description: "the agent's answer is too large") }
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// `sockaddr_un` for a filesystem path (cut at the field's size; callers check the length).
    public static func address(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        return addr
    }

    /// True when a process accepts connections on `path`.
    public static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = address(path)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }

    /// The group id of `name`, nil when there is no such group.
    public static func groupID(_ name: String) -> gid_t? {
        guard let g = getgrnam(name) else { return nil }
        return g.pointee.gr_gid
    }
}
