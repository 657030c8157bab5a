// MetricsListener: a minimal HTTP/1.0 responder for Prometheus scrapes on a
// local TCP address (opt-in, e.g. 127.0.0.1:9586). `GET /metrics` gets the
// text exposition; anything else a 404 or 405. One request per connection,
// reads and writes bounded by a timeout, so a slow client cannot hold the
// daemon's loop for long.
#if canImport(Glibc)
import Glibc
#endif
import MeshBase

public final class MetricsListener {
    public private(set) var fileDescriptor: Int32 = -1
    public let address: Endpoint

    public init(_ address: Endpoint) throws(LinuxError) {
        self.address = address
        // One dual-stack IPv6 socket; an IPv4 address binds as ::ffff:a.b.c.d.
        var storage = sockaddr_storage()
        let length = withUnsafeMutablePointer(to: &storage) { DatagramBatch.encode(address, into: UnsafeMutableRawPointer($0)) }
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw LinuxError("socket", lastErrno()) }
        var one: Int32 = 1, zero: Int32 = 0
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else { let e = lastErrno(); Glibc.close(fd); throw LinuxError("bind metrics \(address)", e) }
        guard listen(fd, 16) == 0 else { let e = lastErrno(); Glibc.close(fd); throw LinuxError("listen metrics \(address)", e) }
        fileDescriptor = fd
    }

    deinit { close() }

    public func close() {
        if fileDescriptor >= 0 { Glibc.close(fileDescriptor); fileDescriptor = -1 }
    }

    /// Answers every waiting scrape with `body()` (called once per GET /metrics).
    public func serve(timeout: Duration = .milliseconds(500), body: () -> String) {
        while true {
            let fd = Glibc.accept(fileDescriptor, nil, nil)
            guard fd >= 0 else { return }
            defer { Glibc.close(fd) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            guard let head = MetricsListener.readHead(fd) else { continue }
            let answer = MetricsListener.respond(to: head, body: body)
            var bytes = Array(answer.utf8)[...]
            while !bytes.isEmpty {
                let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                bytes = bytes.dropFirst(n)
            }
        }
    }

    /// The request line and headers (up to the blank line, 8 KiB at most).
    static func readHead(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while bytes.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
            if String(decoding: bytes, as: UTF8.self).contains("\r\n\r\n") || String(decoding: bytes, as: UTF8.self).contains("\n\n") { break }
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    /// The whole HTTP response for a request head. Pure.
    public static func respond(to head: String, body: () -> String) -> String {
        let requestLine = head.split(separator: "\n", maxSplits: 1).first.map { String($0.filter { $0 != "\r" }) } ?? ""
        let parts = requestLine.split(separator: " ")
        func response(_ status: String, _ type: String, _ text: String) -> String {
            "HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n\(text)"
        }
        guard parts.count >= 2 else { return response("400 Bad Request", "text/plain", "bad request\n") }
        let path = parts[1].split(separator: "?").first.map(String.init) ?? ""
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return response("405 Method Not Allowed", "text/plain", "use GET /metrics\n") }
        guard path == "/metrics" else { return response("404 Not Found", "text/plain", "metrics are at /metrics\n") }
        let text = body()
        if parts[0] == "HEAD" {
            return "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n"
        }
        return response("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
    }
}
