// WakeupSignal: wakes a thread blocked in `Poller.wait` (eventfd(2)).
//
// A thread that waits on a TUN or UDP descriptor also watches the signal's
// descriptor; another thread calls `signal()` to make the wait return (to stop
// the loop, or to hand it new work). Closing a descriptor does not wake a
// thread polling it on Linux, so shutdown needs this.
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import Synchronization
import SystemPackage

/// An eventfd counter: `signal()` makes `fileDescriptor` readable until `drain()`.
///
/// Sendable because its only state is the descriptor, held in an atomic:
/// eventfd reads and writes are atomic in the kernel and may come from any
/// thread, and `close()` swaps the descriptor out exactly once. Close only
/// after the threads using it have stopped (a closed number may be reused).
public final class WakeupSignal: @unchecked Sendable {
    private let fd: Atomic<Int32>

    /// Opens the eventfd (nonblocking, close-on-exec).
    public init() throws(LinuxError) {
        fd = Atomic(try syscall("eventfd") { mg_eventfd() })
    }

    deinit { close() }

    /// The descriptor to include in a `Poller`; -1 after `close()`.
    public var fileDescriptor: Int32 { fd.load(ordering: .relaxed) }

    /// Makes the descriptor readable. Never blocks; signals before a `drain`
    /// coalesce. Failure (only after close) is ignored: there is no one to wake.
    public func signal() {
        var one: UInt64 = 1
        let f = fileDescriptor
        guard f >= 0 else { return }
        _ = retryingOnInterrupt { Glibc.write(f, &one, 8) }
    }

    /// Consumes pending signals; returns whether there were any.
    @discardableResult
    public func drain() -> Bool {
        var value: UInt64 = 0
        let f = fileDescriptor
        guard f >= 0 else { return false }
        if case .success(let n) = retryingOnInterrupt({ Glibc.read(f, &value, 8) }), n == 8 { return value > 0 }
        return false
    }

    /// Closes the descriptor (idempotent).
    public func close() {
        let old = fd.exchange(-1, ordering: .acquiringAndReleasing)
        if old >= 0 { _ = Glibc.close(old) }
    }
}
