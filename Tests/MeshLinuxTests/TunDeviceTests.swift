// TUN tests run as root in the host network namespace, on interfaces with
// unique names (mgt<pid><letter>), which the kernel deletes when the device is
// closed or the test process dies. The routing test uses a /30 from
// 10.250.0.0/16 and a /126 from fd6d:67::/32 derived from the pid.
//
//     UDPSocket ──► kernel route 10.250.x.y+1 ──► mgt<pid>r ──► TunDevice.read  (IPv4 UDP checked)
//     UDPSocket ◄── kernel input on mgt<pid>r ◄── TunDevice.write (IPv4 UDP built with checksums)
import Foundation
import MeshBase
import SystemPackage
import Testing
@testable import MeshLinux

let testPID = getpid()
func tunName(_ letter: String) -> String { "mgt\(testPID)\(letter)" }
func interfaceExists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: "/sys/class/net/\(name)") }

/// Reads packets from `tun` (nonblocking) until `match` accepts one or the timeout passes.
func readUntil(_ tun: TunDevice, timeout: Duration = .seconds(3), _ match: ([UInt8]) -> Bool) throws -> [UInt8]? {
    let deadline = MonotonicClock.now() + timeout
    var buffer = [UInt8](repeating: 0, count: 2048)
    while MonotonicClock.now() < deadline {
        _ = try waitReadable([tun.fileDescriptor], timeout: deadline - MonotonicClock.now())
        while true {
            let n = try buffer.withUnsafeMutableBytes { try tun.read(into: $0) }
            if n == 0 { break }
            let packet = Array(buffer[0..<n])
            if match(packet) { return packet }
        }
    }
    return nil
}

@Suite(.serialized) struct TunDeviceTests {
    @Test func createConfigureAndDelete() throws {
        let name = tunName("c")
        var tun: TunDevice? = try TunDevice(name: name, mtu: 1420, nonBlocking: true)
        #expect(tun?.name == name)
        #expect(try tun?.mtu() == 1420)
        #expect(try tun?.isUp() == false)
        // Never up, so nothing is queued: a nonblocking read gives 0, not an error.
        var buffer = [UInt8](repeating: 0, count: 1500)
        #expect(try buffer.withUnsafeMutableBytes { try tun!.read(into: $0) } == 0)
        let batch = try DatagramBatch(capacity: 4, bufferSize: 1500)
        #expect(try tun?.read(into: batch) == 0)
        try tun?.setUp(true)
        #expect(try tun?.isUp() == true)
        try tun?.setMTU(1280)
        #expect(try tun?.mtu() == 1280)
        #expect(try tun!.interfaceIndex() > 0)
        #expect(interfaceExists(name))
        try tun?.setUp(false)
        #expect(try tun?.isUp() == false)

        tun?.close()
        #expect(!interfaceExists(name))
        #expect(throws: LinuxError.self) { try tun?.mtu() }
        #expect(throws: LinuxError.self) { _ = try buffer.withUnsafeMutableBytes { try tun!.read(into: $0) } }
        tun = nil   // deinit after close: no double close

        // deinit alone deletes the interface too.
        do { _ = try TunDevice(name: name) }
        #expect(!interfaceExists(name))
    }

    @Test func nameTemplateAndBadArguments() throws {
        let tun = try TunDevice(name: "mgt\(testPID)%d")
        #expect(tun.name.hasPrefix("mgt\(testPID)"))
        #expect(Int(tun.name.dropFirst("mgt\(testPID)".count)) != nil)
        #expect(interfaceExists(tun.name))

        for bad in ["", "abcdefghijklmnop", "has/slash"] {
            #expect(throws: LinuxError.self) { try TunDevice(name: bad) }
        }
        do {
            _ = try TunDevice(name: tunName("m"), mtu: 10)   // below the minimum MTU (68)
            Issue.record("MTU 10 accepted")
        } catch {
            #expect(error.errno == .invalidArgument)
            #expect(error.description.hasPrefix("SIOCSIFMTU \(tunName("m")) 10: "))
        }
        #expect(!interfaceExists(tunName("m")))   // the failed init closed its descriptor
        #expect(throws: LinuxError.self) { try tun.setMTU(0) }
    }

    @Test func kernelRoutesIntoTunAndAcceptsWrittenPackets() throws {
        let name = tunName("r")
        let tun = try TunDevice(name: name, mtu: 1420, nonBlocking: true)
        try tun.setUp(true)
        let x = UInt8(truncatingIfNeeded: testPID >> 6), y = UInt8(truncatingIfNeeded: (testPID & 0x3f) * 4)
        let local4 = IPv4Address(10, 250, x, y + 1), peer4 = IPv4Address(10, 250, x, y + 2)
        let local6 = IPv6Address("fd6d:67:\(String(x, radix: 16)):\(String(y, radix: 16))::1")!
        let peer6 = IPv6Address(high: local6.high, low: local6.low + 1)
        try ip("addr", "add", "\(local4)/30", "dev", name)
        try ip("-6", "addr", "add", "\(local6)/126", "dev", name, "nodad")
        // Even with nodad, the kernel adds the address's local route from a work
        // queue (addrconf_dad_work); until then a packet to it counts as
        // Ip6InAddrErrors and is dropped. Wait for the route.
        let routeDeadline = MonotonicClock.now() + .seconds(3)
        while try run("/usr/sbin/ip", ["-6", "route", "show", "table", "local", "\(local6)"]).isEmpty && MonotonicClock.now() < routeDeadline {
            usleep(10_000)
        }

        let app = try UDPSocket(nonBlocking: true)
        let appPort = try app.bind(port: 0)
        let payload = Array("hello through the tunnel".utf8)

        for (local, peer) in [(IPAddress.v4(local4), IPAddress.v4(peer4)), (.v6(local6), .v6(peer6))] {
            // Outbound: the kernel routes a datagram for the peer into the TUN device.
            #expect(try app.send(payload, to: Endpoint(peer, port: 9999)))
            let packet = try readUntil(tun) { parseUDP($0)?.destination == Endpoint(peer, port: 9999) }
            let parsed = try #require(packet.flatMap(parseUDP))
            #expect(parsed.source == Endpoint(local, port: appPort))
            #expect(parsed.payload == payload)
            #expect(parsed.checksumsValid)
            #expect(packet!.count <= 1420)

            // Inbound: a packet written to TUN is delivered to the local socket.
            let reply = Array("reply from \(peer)".utf8)
            let written: [UInt8]
            switch (local, peer) {
            case let (.v4(l), .v4(p)): written = ipv4UDP(src: p, dst: l, srcPort: 9999, dstPort: appPort, payload: reply)
            case let (.v6(l), .v6(p)): written = ipv6UDP(src: p, dst: l, srcPort: 9999, dstPort: appPort, payload: reply)
            default: written = []
            }
            #expect(try tun.write(written))
            var buffer = [UInt8](repeating: 0, count: 256)
            #expect(try waitReadable([app.fileDescriptor], timeout: .seconds(3)) == [app.fileDescriptor])
            let got = try buffer.withUnsafeMutableBytes { try app.receive(into: $0) }

            #expect(got?.from == Endpoint(peer, port: 9999))
            #expect(got.map { Array(buffer[0..<$0.length]) } == reply)
        }

        // Batches: three datagrams routed in, read with one call, written back with one call.
        for i in 0..<3 { try app.send(pattern(i, size: 100 + i), to: Endpoint(.v4(peer4), port: 7000 + UInt16(i))) }
        let batch = try DatagramBatch(capacity: 16, bufferSize: 1420, headroom: 16, tailroom: 16)
        var udp: [ParsedUDP] = []
        let deadline = MonotonicClock.now() + .seconds(3)
        while udp.count < 3 && MonotonicClock.now() < deadline {
            _ = try waitReadable([tun.fileDescriptor], timeout: .milliseconds(200))
            let n = try tun.read(into: batch)
            for i in 0..<n {
                #expect(batch.offset(i) == 16 && !batch.isTruncated(i))
                if let p = parseUDP(batch.payloadBytes(i)), p.destination.address == .v4(peer4) { udp.append(p) }
            }
        }
        #expect(udp.map(\.destination.port) == [7000, 7001, 7002])
        #expect(udp.map(\.payload) == (0..<3).map { pattern($0, size: 100 + $0) })

        for i in 0..<3 {
            batch.copy(ipv4UDP(src: peer4, dst: local4, srcPort: 8000 + UInt16(i), dstPort: appPort, payload: pattern(i, size: 10)), into: i)
        }
        batch.copy([0x00, 1, 2, 3], into: 3)   // not IP: the kernel refuses this one alone
        batch.copy(ipv4UDP(src: peer4, dst: local4, srcPort: 8003, dstPort: appPort, payload: pattern(3, size: 10)), into: 4)
        let r = try tun.write(batch, count: 5)
        #expect(r.processed == 5 && r.completed == 4 && r.failed == 1 && r.lastError == .invalidArgument)
        var ports: [UInt16] = []
        let inBatch = try DatagramBatch(capacity: 8, bufferSize: 64)
        _ = try receiveAll(app, batch: inBatch, want: 4) { slot, b in ports.append(b.endpoint(slot)?.port ?? 0) }
        #expect(ports == [8000, 8001, 8002, 8003])
    }

    @Test func oversizedPacketsAreReportedNotFatal() throws {
        let name = tunName("t")
        let tun = try TunDevice(name: name, mtu: 1420, nonBlocking: true)
        try tun.setUp(true)
        let x = UInt8(truncatingIfNeeded: testPID >> 6), y = UInt8(truncatingIfNeeded: (testPID & 0x3f) * 4)
        // A different /30 (10.251/16) from the routing test's.
        let local = IPv4Address(10, 251, x, y + 1), peer = IPv4Address(10, 251, x, y + 2)
        try ip("addr", "add", "\(local)/30", "dev", name)
        let app = try UDPSocket()
        try app.bind(port: 0)
        let to = Endpoint(.v4(peer), port: 9)

        // Single read with a small buffer: EMSGSIZE, the packet consumed.
        try app.send(pattern(1, size: 500), to: to)
        try app.send(pattern(2, size: 20), to: to)
        var small = [UInt8](repeating: 0, count: 100)
        var sawTooLong = false, sawSmall = false
        let deadline = MonotonicClock.now() + .seconds(3)
        while !(sawTooLong && sawSmall) && MonotonicClock.now() < deadline {
            _ = try waitReadable([tun.fileDescriptor], timeout: .milliseconds(200))
            do {
                let n = try small.withUnsafeMutableBytes { try tun.read(into: $0) }
                if n > 0, let p = parseUDP(Array(small[0..<n])), p.destination == to { sawSmall = p.payload == pattern(2, size: 20) }
            } catch let error as LinuxError {
                #expect(error.errno == .messageTooLong)
                sawTooLong = true
            }
        }
        #expect(sawTooLong && sawSmall)

        // Batch read: the long packet's slot is flagged, the others intact.
        try app.send(pattern(3, size: 500), to: to)
        try app.send(pattern(4, size: 20), to: to)
        let batch = try DatagramBatch(capacity: 8, bufferSize: 100)
        var flags: [Bool] = []
        let end = MonotonicClock.now() + .seconds(3)
        while flags.count < 2 && MonotonicClock.now() < end {
            _ = try waitReadable([tun.fileDescriptor], timeout: .milliseconds(200))
            let n = try tun.read(into: batch)
            for i in 0..<n {
                if batch.isTruncated(i) { #expect(batch.length(i) == 100); flags.append(true) }
                else if let p = parseUDP(batch.payloadBytes(i)), p.destination == to { flags.append(false) }
            }
        }
        #expect(flags == [true, false])

        // Garbage written to TUN is refused with EINVAL, not a trap.
        do {
            try tun.write([0x00, 0x01])
            Issue.record("non-IP packet accepted")
        } catch {
            #expect(error.errno == .invalidArgument)
        }
    }

    @Test func blockingReadWaitsForAPacket() throws {
        let name = tunName("b")
        let tun = try TunDevice(name: name, mtu: 1420, nonBlocking: false)
        try tun.setUp(true)
        let x = UInt8(truncatingIfNeeded: testPID >> 6), y = UInt8(truncatingIfNeeded: (testPID & 0x3f) * 4)
        let local = IPv4Address(10, 252, x, y + 1), peer = IPv4Address(10, 252, x, y + 2)
        try ip("addr", "add", "\(local)/30", "dev", name)
        let sender = Thread {
            Thread.sleep(forTimeInterval: 0.1)
            if let s = try? UDPSocket() { _ = try? s.send([42], to: Endpoint(.v4(peer), port: 4242)) }
        }
        sender.start()
        // Packets may arrive (IPv6 router solicitations) before ours; each read blocks until one exists.
        let batch = try DatagramBatch(capacity: 4, bufferSize: 1500)
        var found = false
        let deadline = MonotonicClock.now() + .seconds(5)
        while !found && MonotonicClock.now() < deadline {
            let n = try tun.read(into: batch)
            #expect(n >= 1)
            for i in 0..<n where parseUDP(batch.payloadBytes(i))?.destination == Endpoint(.v4(peer), port: 4242) { found = true }
        }
        #expect(found)
    }
}
