// Poller: the event loops' way to sleep until a descriptor is readable.
//
// The engine runs its packet loops on dedicated threads (not a task per
// packet); each thread waits here on its TUN or UDP descriptor plus a
// `WakeupSignal` used to stop it. ppoll(2) rather than epoll(7): a loop
// watches two or three descriptors, for which poll's cost is nothing and it
// needs no registration state.
//
//     thread ──► Poller.wait(timeout:) ──► ready? ──► batch read until empty ──┐
//        ▲                                                                    │
//        └────────────────────────────────────────────────────────────────────┘
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import MeshBase
import SystemPackage

/// Waits for readability on a fixed set of descriptors. Holds its `pollfd`
/// array, so a wait allocates nothing. Not Sendable: one thread owns it.
/// The descriptors are not owned: the caller keeps them open while waiting.
public final class Poller {
    /// The watched descriptors, in the order given.
    public let fileDescriptors: [Int32]
    private let pollfds: UnsafeMutablePointer<pollfd>

    public init(_ fileDescriptors: [Int32]) {
        self.fileDescriptors = fileDescriptors
        pollfds = .allocate(capacity: max(1, fileDescriptors.count))
        for (i, fd) in fileDescriptors.enumerated() {
            pollfds[i] = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        }
    }

    deinit { pollfds.deallocate() }

    /// Blocks until at least one descriptor is readable, or `timeout` passes
    /// (`nil` waits forever; zero or negative only checks). Hang-up, error and
    /// invalid-descriptor conditions count as ready, so that the next read
    /// reports them. Returns how many descriptors are ready (0 on timeout).
    /// A signal does not cut the wait short: EINTR restarts it with the time
    /// that is left.
    public func wait(timeout: Duration?) throws(LinuxError) -> Int {
        let n = fileDescriptors.count
        for i in 0..<n { pollfds[i].revents = 0 }
        let deadline = timeout.map { MonotonicClock.now() + $0 }
        let rc = try syscall("ppoll") { () -> Int32 in
            let ns: Int64 = deadline.map { max(0, ($0 - MonotonicClock.now()).nanosecondsClamped) } ?? -1
            return mg_ppoll(pollfds, nfds_t(n), ns)
        }
        return Int(rc)
    }

    /// Whether descriptor number `index` (into `fileDescriptors`) was ready
    /// after the last `wait`. False for an index out of range.
    public func isReady(_ index: Int) -> Bool {
        guard index >= 0, index < fileDescriptors.count else { return false }
        return pollfds[index].revents != 0
    }
}

/// Waits until any of `fds` is readable (or reports an error or hang-up) and
/// returns those that are, in the order given; `[]` on timeout. `nil` waits
/// forever. Allocates a `Poller`; loops that wait often should keep one.
public func waitReadable(_ fds: [Int32], timeout: Duration?) throws(LinuxError) -> [Int32] {
    let poller = Poller(fds)
    guard try poller.wait(timeout: timeout) > 0 else { return [] }
    return fds.indices.filter { poller.isReady($0) }.map { fds[$0] }
}

/// Blocks until `fd` is ready for `events` (POLLIN or POLLOUT), with no timeout.
/// Used to give a nonblocking descriptor blocking semantics.
func waitFor(_ fd: Int32, events: Int16, operation: @autoclosure () -> String) throws(LinuxError) {
    var p = pollfd(fd: fd, events: events, revents: 0)
    _ = try syscall(operation()) { mg_ppoll(&p, 1, -1) }
    if p.revents & Int16(POLLNVAL) != 0 { throw LinuxError(operation(), .badFileDescriptor) }
}
