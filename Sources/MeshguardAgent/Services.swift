// The daemon's long-running parts as swift-service-lifecycle services in one
// ServiceGroup (`up`):
//
//   DataPlaneService   owns the interface: waits for the group to shut down,
//                      then closes the data plane (the interface is removed)
//   MeshLoopService    the mesh loop (membership, file changes, reloads, the
//                      control socket, metrics, the systemd watchdog) on a
//                      thread of its own; on graceful shutdown it is woken,
//                      leaves the mesh and returns
//   ReloadService      SIGHUP: asks the mesh loop to reload
//
// The group shuts down in reverse order, so the mesh is left before the
// interface goes. The userspace engine's packet threads are started and
// stopped by the data plane itself (MeshUserspace).
import Dispatch
import Logging
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// Waits for graceful shutdown, then runs `close`.
final class DataPlaneService: Service, @unchecked Sendable {
    private let close: () -> Void
    init(close: @escaping () -> Void) { self.close = close }

    func run() async throws {
        try? await gracefulShutdown()   // returns on graceful shutdown (throws if cancelled)
        close()
    }
}

/// Runs `body` on a dedicated thread (it blocks in poll(2)); `stop` wakes it on graceful shutdown.
final class MeshLoopService: Service, @unchecked Sendable {
    private let body: () -> Void
    private let stop: () -> Void
    init(body: @escaping () -> Void, stop: @escaping () -> Void) { self.body = body; self.stop = stop }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let thread = LoopThread { [body] in
                    body()
                    done.resume()
                }
                thread.start()
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }
}

/// SIGHUP → `reload`, until the group shuts down.
struct ReloadService: Service {
    let reload: @Sendable () -> Void

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            reload()
        }
    }
}

/// A detached pthread running one closure.
final class LoopThread: @unchecked Sendable {
    private let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<LoopThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<LoopThread>.fromOpaque(box).release()
            body()   // no thread to be had: run here rather than not at all
        }
    }
}

/// Runs an async body to completion from synchronous code (the command's `run`).
func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    final class Outcome: @unchecked Sendable { var error: (any Error)? }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { try await body() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let e = outcome.error { throw e }
}

extension Log {
    /// swift-log's Logger for the service group, writing through `Log` (its
    /// lifecycle chatter at debug; warnings and errors as such).
    static func lifecycleLogger() -> Logger {
        var logger = Logger(label: "meshguard-agent.lifecycle") { _ in LifecycleLogHandler() }
        logger.logLevel = Log.level == .debug ? .debug : .warning
        return logger
    }
}

struct LifecycleLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let ours: Log.Level
        switch level {
        case .trace, .debug, .info, .notice: ours = .debug
        case .warning: ours = .warning
        case .error, .critical: ours = .error
        }
        let all = metadata.merging(extra ?? [:]) { _, new in new }
        let pairs = all.keys.sorted().map { ($0, "\(all[$0]!)") }
        Log.emit(ours, "lifecycle: \(message)", pairs: pairs)
    }
}
