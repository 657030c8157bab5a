// The userspace API socket (https://www.wireguard.com/xplatform/):
// /var/run/wireguard/<interface>.sock, a UNIX stream socket on which `wg`
// sends `get=1` / `set=1` requests. Owned by the engine's control thread,
// which polls `pollDescriptors` and calls `handleReadable`.
//
//   listener --accept--> connection --bytes--> UAPIRequestReader --request--> handler
//                                       <-- reply (get body or errno=N) --
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshLinux
import MeshWireGuard

final class UAPIServer {
    static let directory = "/var/run/wireguard"
    /// At most this many clients at once; more are refused (closed).
    static let maxConnections = 32

    let path: String
    private var listener: Int32 = -1
    private var connections: [Int32: UAPIRequestReader] = [:]
    /// Answers a request; returns the reply text.
    private let handler: (UAPIRequest) -> String

    init(interface: String, directory: String = UAPIServer.directory, handler: @escaping (UAPIRequest) -> String) throws {
        path = directory + "/" + interface + ".sock"
        self.handler = handler
        guard path.utf8.count < 108 else { throw EngineError("UAPI socket path too long: \(path)") }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw EngineError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        // A live socket at the path means another engine owns the interface.
        if UAPIServer.isListening(path) { throw EngineError("\(path) is in use by another process") }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw EngineError("cannot create UAPI socket: \(String(cString: strerror(errno)))") }
        var addr = UAPIServer.address(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            let e = String(cString: strerror(errno))
            Glibc.close(fd)
            throw EngineError("cannot listen on \(path): \(e)")
        }
        listener = fd
    }

    deinit { close() }

    func close() {
        for fd in connections.keys { Glibc.close(fd) }
        connections.removeAll()
        if listener >= 0 {
            Glibc.close(listener)
            listener = -1
            unlink(path)
        }
    }

    var pollDescriptors: [Int32] { listener >= 0 ? [listener] + connections.keys.sorted() : [] }

    /// Services a descriptor that poll reported readable.
    func handleReadable(_ fd: Int32) {
        if fd == listener { acceptAll(); return }
        guard var reader = connections[fd] else { return }
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR) { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            if n <= 0 { drop(fd); return }
            buf.withUnsafeBytes { reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        while true {
            do {
                guard let request = try reader.nextRequest() else { break }
                guard reply(fd, handler(request)) else { drop(fd); return }
            } catch {
                // A malformed stream: answer with its errno and hang up, as wireguard-go does.
                _ = reply(fd, UAPI.formatErrno(error))
                drop(fd)
                return
            }
        }
        connections[fd] = reader
    }

    private func acceptAll() {
        while true {
            let c = accept(listener, nil, nil)
            if c < 0 { return }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            _ = fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK)
            if connections.count >= UAPIServer.maxConnections { Glibc.close(c); continue }
            connections[c] = UAPIRequestReader()
        }
    }

    private func drop(_ fd: Int32) {
        connections[fd] = nil
        Glibc.close(fd)
    }

    /// Writes the whole reply (the client is local and reads it promptly).
    private func reply(_ fd: Int32, _ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        var waited = 0
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // Give a slow reader up to a second.
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, 100) == 0 { waited += 1; if waited > 10 { return false } }
                continue
            }
            if n <= 0 { return false }
            bytes = bytes.dropFirst(n)
        }
        return true
    }

    static func address(_ path: String) -> sockaddr_un { UnixControlClient.address(path) }

    static func isListening(_ path: String) -> Bool { UnixControlClient.isListening(path) }
}
