// Watching files from an event loop: inotify(7) on directories (a trust or
// peers file added, changed, removed or renamed into place) as a descriptor
// for a Poller. (Signals reach the daemon through its service group.)
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import SystemPackage

/// Watches directories for entries created, written, deleted or moved.
/// Not Sendable: one thread owns it.
public final class DirectoryWatcher {
    public let fileDescriptor: Int32

    public init() throws(LinuxError) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw LinuxError("inotify_init1", Errno(rawValue: errno)) }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    /// Watches `path` (a directory). A missing directory is not an error: false.
    @discardableResult
    public func watch(_ path: String) -> Bool {
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF)
        return inotify_add_watch(fileDescriptor, path, mask) >= 0
    }

    /// Consumes pending events; true when there were any.
    @discardableResult
    public func drain() -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        var any = false
        while true {
            let n = buf.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
            if n > 0 { any = true; continue }
            if n < 0 && errno == EINTR { continue }
            return any
        }
    }
}
