// Dedicated OS threads for the packet loops (style: the hot path runs on
// threads with batched syscalls, not a task per packet), and the lock that
// serialises access to the sans-IO device.
#if canImport(Glibc)
import Glibc
#endif

/// A joinable pthread running a closure.
final class OSThread {
    private var handle = pthread_t()
    private var started = false

    private final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }

    /// Starts `body` on a new thread named `name` (at most 15 characters are kept).
    init(name: String, _ body: @escaping () -> Void) throws {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&handle, nil, { arg in
            let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            b.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw EngineError("cannot start thread \(name): error \(rc)")
        }
        started = true
    }

    /// Waits for the thread to finish.
    func join() {
        guard started else { return }
        pthread_join(handle, nil)
        started = false
    }
}

/// A mutex around a value. `withLock` is the only access. Never a bare
/// closure as `Value`: each inout access would reabstract it and write it back
/// wrapped in new thunks (wrap it in a struct; see `UserspaceEngine.ControlHandler`).
final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

/// An error of the engine, as one line.
public struct EngineError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}
