// LinuxError: how every failed system call in MeshLinux is reported, and the
// one place that retries a call interrupted by a signal (EINTR).
//
// Contract for the whole module: no syscall failure traps. A failure becomes a
// `LinuxError` naming the operation and carrying the kernel's errno as
// swift-system's `Errno`; "would block" (EAGAIN) on a nonblocking descriptor
// is not an error but an empty result (0, nil or false), as each method says.
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A failed Linux I/O operation, as one line: `TUNSETIFF mg%d: Operation not permitted`.
public struct LinuxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was attempted, with its object: `bind [::]:51820`, `SIOCSIFMTU mg0`.
    public let operation: String
    /// The kernel's error number (EINVAL for arguments refused before any call).
    public let errno: Errno
    /// Replaces the errno text when set (for arguments refused before any call).
    public let detail: String?

    public init(_ operation: String, _ errno: Errno, detail: String? = nil) {
        self.operation = operation; self.errno = errno; self.detail = detail
    }

    /// An argument refused before any syscall, reported as EINVAL.
    static func invalid(_ operation: String, _ detail: String) -> LinuxError {
        LinuxError(operation, .invalidArgument, detail: detail)
    }

    public var description: String { "\(operation): \(detail ?? errno.description)" }
}

/// The errno of the last failed call on this thread. Read it immediately after
/// the call: any allocation in between may overwrite it.
@inline(__always)
func lastErrno() -> Errno { Errno(rawValue: Glibc.errno) }

/// Calls `body` until it does not fail with EINTR (signal(7): a slow call
/// interrupted before it did anything). Returns the value, or the errno of a
/// failure (`-1` return). The only EINTR loop in the module; it allocates nothing.
@inline(__always)
func retryingOnInterrupt<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
    while true {
        let rc = body()
        if rc != -1 { return .success(rc) }
        let e = lastErrno()
        if e != .interrupted { return .failure(e) }
    }
}

/// `retryingOnInterrupt`, throwing a failure as `LinuxError(operation, errno)`.
@inline(__always)
func syscall<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(LinuxError) -> T {
    switch retryingOnInterrupt(body) {
    case .success(let v): return v
    case .failure(let e): throw LinuxError(operation(), e)
    }
}

extension Result {
    var isFailure: Bool { if case .failure = self { return true } else { return false } }
}

extension Errno {
    /// EAGAIN / EWOULDBLOCK: a nonblocking descriptor has nothing to give or no room.
    var isWouldBlock: Bool { self == .resourceTemporarilyUnavailable }
}
