// The metrics endpoint's HTTP: GET and HEAD /metrics, everything else refused;
// and a real scrape over loopback TCP.
import Testing
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
@testable import MeshLinux

@Suite struct MetricsListenerTests {
    @Test func responses() {
        let ok = MetricsListener.respond(to: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") { "m 1\n" }
        #expect(ok == "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nm 1\n")
        #expect(MetricsListener.respond(to: "GET /metrics?x=1 HTTP/1.0\r\n\r\n") { "m 1\n" }.hasSuffix("\r\n\r\nm 1\n"))
        #expect(MetricsListener.respond(to: "HEAD /metrics HTTP/1.1\r\n\r\n") { "m 1\n" }.hasSuffix("Content-Length: 4\r\nConnection: close\r\n\r\n"))
        #expect(MetricsListener.respond(to: "GET / HTTP/1.1\r\n\r\n") { "" }.hasPrefix("HTTP/1.0 404 Not Found\r\n"))
        #expect(MetricsListener.respond(to: "POST /metrics HTTP/1.1\r\n\r\n") { "" }.hasPrefix("HTTP/1.0 405 Method Not Allowed\r\n"))
        #expect(MetricsListener.respond(to: "garbage") { "" }.hasPrefix("HTTP/1.0 400 Bad Request\r\n"))
        #expect(MetricsListener.respond(to: "") { "" }.hasPrefix("HTTP/1.0 400 Bad Request\r\n"))
    }

    @Test func aScrapeOverLoopback() throws {
        // Port 0 is refused by Endpoint parsing elsewhere; pick a high port and retry a few.
        var listener: MetricsListener?
        var port: UInt16 = 0
        for p in UInt16(39_000)..<39_050 {
            if let l = try? MetricsListener(Endpoint(.v4(IPv4Address(127, 0, 0, 1)), port: p)) { listener = l; port = p; break }
        }
        let l = try #require(listener)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(rc == 0)
        let request = Array("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        #expect(request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } == request.count)
        var scrapes = 0
        l.serve { scrapes += 1; return "meshguard_peers 3\n" }   // the connection is queued: served at once
        var buffer = [UInt8](repeating: 0, count: 4096)
        var got: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            got += buffer[0..<n]
        }
        let answer = String(decoding: got, as: UTF8.self)
        #expect(scrapes == 1)
        #expect(answer.hasPrefix("HTTP/1.0 200 OK\r\n") && answer.hasSuffix("\r\n\r\nmeshguard_peers 3\n"))
    }
}
