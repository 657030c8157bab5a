import Foundation
import MeshBase
import SystemPackage
import Testing
@testable import MeshLinux

@Suite struct UDPSocketTests {
    static let loopback4 = IPAddress.v4(IPv4Address(127, 0, 0, 1))
    static let loopback6 = IPAddress.v6(IPv6Address(high: 0, low: 1))

    /// 32 datagrams of sizes 1…1400 through one sendmmsg and recvmmsg.
    func roundTrip(family: UDPSocket.Family, to address: IPAddress, expectFrom: IPAddress) throws {
        let receiver = try UDPSocket(family: family, nonBlocking: true)
        let port = try receiver.bind(port: 0)
        #expect(port != 0 && receiver.port == port)
        let sender = try UDPSocket(family: family, nonBlocking: false)
        let senderPort = try sender.bind(port: 0)

        let count = 32
        let sizes = (0..<count).map { 1 + ($0 * 977) % 1400 }
        let out = try DatagramBatch(capacity: count, bufferSize: 1500)
        for i in 0..<count { #expect(out.copy(pattern(i, size: sizes[i]), into: i, endpoint: Endpoint(address, port: port))) }
        let sent = try sender.send(out, count: count)
        #expect(sent == BatchResult(requested: count, processed: count, completed: count))

        let inBatch = try DatagramBatch(capacity: 64, bufferSize: 1500)
        var seen = 0
        let got = try receiveAll(receiver, batch: inBatch, want: count) { slot, b in
            #expect(b.endpoint(slot) == Endpoint(expectFrom, port: senderPort))
            #expect(!b.isTruncated(slot))
            #expect(b.segmentSize(slot) == 0)
            #expect(b.offset(slot) == 0)
            #expect(b.payloadBytes(slot) == pattern(seen, size: sizes[seen]))   // loopback keeps order
            seen += 1
        }
        #expect(got == count)
    }

    @Test func batchLoopbackIPv4ArrivesAsV4() throws {
        // Dual-stack: 127.0.0.1 goes out as ::ffff:127.0.0.1 and the sender comes back as .v4.
        try roundTrip(family: .dualStack, to: Self.loopback4, expectFrom: Self.loopback4)
    }

    @Test func batchLoopbackIPv6() throws {
        try roundTrip(family: .dualStack, to: Self.loopback6, expectFrom: Self.loopback6)
    }

    @Test func batchOnSingleFamilySockets() throws {
        try roundTrip(family: .ipv4, to: Self.loopback4, expectFrom: Self.loopback4)
        try roundTrip(family: .ipv6, to: Self.loopback6, expectFrom: Self.loopback6)
    }

    @Test func v4MappedLocalEndpoint() throws {
        let s = try UDPSocket()
        let port = try s.bind(port: 0, address: Self.loopback4)
        #expect(try s.localEndpoint() == Endpoint(Self.loopback4, port: port))
        let wildcard = try UDPSocket()
        try wildcard.bind(port: 0)
        #expect(try wildcard.localEndpoint().address == .v6(IPv6Address(high: 0, low: 0)))
    }

    @Test func emptyNonblockingSocketReturnsNothing() throws {
        let s = try UDPSocket(nonBlocking: true)
        try s.bind(port: 0)
        let batch = try DatagramBatch(capacity: 8, bufferSize: 1500)
        #expect(try s.receive(into: batch) == 0)
        var buffer = [UInt8](repeating: 0, count: 64)
        let single = try buffer.withUnsafeMutableBytes { try s.receive(into: $0) }
        #expect(single == nil)
    }

    @Test func truncatedDatagramsAreFlaggedNotFatal() throws {
        let receiver = try UDPSocket(nonBlocking: true)
        let port = try receiver.bind(port: 0)
        let sender = try UDPSocket()
        let to = Endpoint(Self.loopback4, port: port)
        for size in [50, 200, 100, 9000] { try sender.send(pattern(size, size: size), to: to) }

        let batch = try DatagramBatch(capacity: 8, bufferSize: 100)
        var results: [(Int, Bool)] = []
        _ = try receiveAll(receiver, batch: batch, want: 4) { slot, b in
            results.append((b.length(slot), b.isTruncated(slot)))
            if !b.isTruncated(slot) { #expect(b.payloadBytes(slot) == pattern(b.length(slot), size: b.length(slot))) }
        }
        #expect(results.map(\.0) == [50, 100, 100, 100])
        #expect(results.map(\.1) == [false, true, false, true])
    }

    @Test func singleReceiveReportsSenderAndTooLong() throws {
        let receiver = try UDPSocket(nonBlocking: true)
        let port = try receiver.bind(port: 0)
        let sender = try UDPSocket()
        let senderPort = try sender.bind(port: 0, address: Self.loopback4)
        try sender.send(pattern(1, size: 300), to: Endpoint(Self.loopback4, port: port))
        try sender.send(pattern(2, size: 10), to: Endpoint(Self.loopback4, port: port))
        #expect(try waitReadable([receiver.fileDescriptor], timeout: .seconds(2)) == [receiver.fileDescriptor])
        var small = [UInt8](repeating: 0, count: 100)
        do {
            _ = try small.withUnsafeMutableBytes { try receiver.receive(into: $0) }
            Issue.record("a 300-byte datagram fit in 100 bytes")
        } catch let error as LinuxError {
            #expect(error.errno == .messageTooLong)
        }
        let second = try small.withUnsafeMutableBytes { try receiver.receive(into: $0) }
        #expect(second?.length == 10)
        #expect(second?.from == Endpoint(Self.loopback4, port: senderPort))
        #expect(Array(small[0..<10]) == pattern(2, size: 10))
    }

    @Test func sendingToClosedPortDoesNotFail() throws {
        let gone = try UDPSocket()
        let port = try gone.bind(port: 0)
        gone.close()
        #expect(gone.fileDescriptor == -1)
        gone.close()   // idempotent

        let s = try UDPSocket(nonBlocking: true)
        try s.bind(port: 0)
        let batch = try DatagramBatch(capacity: 16, bufferSize: 64)
        for i in 0..<16 { batch.copy(pattern(i, size: 20), into: i, endpoint: Endpoint(i % 2 == 0 ? Self.loopback4 : Self.loopback6, port: port)) }
        for _ in 0..<3 {
            let r = try s.send(batch, count: 16)
            #expect(r.isComplete && r.failed == 0)
            #expect(try s.send(pattern(0, size: 5), to: Endpoint(Self.loopback4, port: port)))
        }
        // ICMP port unreachable must not surface as a receive error.
        #expect(try s.receive(into: batch) == 0)
    }

    @Test func refusedDatagramsAreSkippedAndCounted() throws {
        let receiver = try UDPSocket(family: .ipv4, nonBlocking: true)
        let port = try receiver.bind(port: 0)
        let sender = try UDPSocket(family: .ipv4)
        let batch = try DatagramBatch(capacity: 6, bufferSize: DatagramBatch.maxBufferSize)
        for i in 0..<6 { batch.copy(pattern(i, size: 40), into: i, endpoint: Endpoint(Self.loopback4, port: port)) }
        batch.setEndpoint(1, Endpoint(Self.loopback6, port: port))       // IPv6 on an IPv4 socket
        batch.setPayload(3, offset: 0, length: 65_600)                    // longer than any UDP datagram
        let r = try sender.send(batch, count: 6)
        #expect(r.requested == 6 && r.processed == 6 && r.completed == 4 && r.failed == 2)
        #expect(r.lastError == .messageTooLong)
        var got: [[UInt8]] = []
        _ = try receiveAll(receiver, batch: batch, want: 4) { slot, b in got.append(b.payloadBytes(slot)) }
        #expect(got == [0, 2, 4, 5].map { pattern($0, size: 40) })

        #expect(throws: LinuxError.self) { try sender.send(batch, slots: 4..<7) }
        #expect(try sender.send(batch, slots: 2..<2) == BatchResult(requested: 0))
    }

    @Test func headroomAllowsPrependingInPlace() throws {
        let a = try UDPSocket(nonBlocking: true), b = try UDPSocket(nonBlocking: true)
        let portA = try a.bind(port: 0), portB = try b.bind(port: 0)
        try a.send(Array("payload".utf8), to: Endpoint(Self.loopback6, port: portB))

        // b receives at offset 16, writes a header in front and a trailer behind, and echoes.
        let batch = try DatagramBatch(capacity: 4, bufferSize: 1420, headroom: 16, tailroom: 16)
        #expect(batch.slotSize == 1456)
        let n = try receiveAll(b, batch: batch, want: 1) { slot, bt in
            #expect(bt.offset(slot) == 16 && bt.length(slot) == 7)
            let slotBytes = bt.slotBuffer(slot)
            for k in 0..<16 { slotBytes[k] = 0xAA }
            for k in 0..<16 { slotBytes[16 + 7 + k] = 0xBB }
            bt.setPayload(slot, offset: 0, length: 16 + 7 + 16)
            #expect(bt.endpoint(slot) == Endpoint(Self.loopback6, port: portA))
        }
        #expect(n == 1)
        #expect(try b.send(batch, count: 1).completed == 1)
        var back = [UInt8](repeating: 0, count: 100)
        _ = try waitReadable([a.fileDescriptor], timeout: .seconds(2))
        let r = try back.withUnsafeMutableBytes { try a.receive(into: $0) }
        #expect(r?.length == 39)
        #expect(Array(back[0..<39]) == [UInt8](repeating: 0xAA, count: 16) + Array("payload".utf8) + [UInt8](repeating: 0xBB, count: 16))
    }

    @Test func gsoSendAndGroReceive() throws {
        let sender = try UDPSocket()
        guard sender.supportsGSO else { return }   // kernel before 4.18
        let plain = try UDPSocket(nonBlocking: true)
        let plainPort = try plain.bind(port: 0)
        let gro = try UDPSocket(nonBlocking: true)
        let groPort = try gro.bind(port: 0)
        let groEnabled = try gro.enableGRO()

        // One slot of 10 × 1000 bytes (the last 500), split by the kernel.
        let message = pattern(9, size: 9_500)
        let out = try DatagramBatch(capacity: 2, bufferSize: 16_000)
        out.copy(message, into: 0, endpoint: Endpoint(Self.loopback4, port: plainPort))
        out.setSegmentSize(0, 1000)
        out.copy(message, into: 1, endpoint: Endpoint(Self.loopback6, port: groPort))
        out.setSegmentSize(1, 1000)
        #expect(try sender.send(out, count: 2).completed == 2)

        // Without GRO: ten separate datagrams.
        let inBatch = try DatagramBatch(capacity: 64, bufferSize: 65_536)
        var pieces: [[UInt8]] = []
        _ = try receiveAll(plain, batch: inBatch, want: 10) { slot, b in
            #expect(b.segmentSize(slot) == 0)
            pieces.append(b.payloadBytes(slot))
        }
        #expect(pieces.map(\.count) == [Int](repeating: 1000, count: 9) + [500])
        #expect(Array(pieces.joined()) == message)

        // With GRO: the same bytes, possibly coalesced with segmentSize 1000.
        var joined: [UInt8] = []
        var sawCoalesced = false
        let deadline = MonotonicClock.now() + .seconds(3)
        while joined.count < message.count && MonotonicClock.now() < deadline {
            _ = try waitReadable([gro.fileDescriptor], timeout: .milliseconds(200))
            let n = try gro.receive(into: inBatch)
            for i in 0..<n {
                if inBatch.segmentSize(i) != 0 { sawCoalesced = true; #expect(inBatch.segmentSize(i) == 1000) }
                joined += inBatch.payloadBytes(i)
            }
        }
        #expect(joined == message)
        if groEnabled { #expect(sawCoalesced) }
    }

    @Test func bufferSizesAndMarkAsRoot() throws {
        let s = try UDPSocket()
        let rcv = try s.setReceiveBufferSize(4 << 20)
        let snd = try s.setSendBufferSize(4 << 20)
        if getuid() == 0 {
            #expect(rcv >= 4 << 20 && snd >= 4 << 20)   // SO_*BUFFORCE passes rmem_max/wmem_max
            try s.setMark(0x51820)
        } else {
            #expect(rcv > 0 && snd > 0)
            #expect(throws: LinuxError.self) { try s.setMark(1) }
        }
    }

    @Test func errorsAreOneLineWithErrno() throws {
        let s = try UDPSocket()
        let taken = try s.bind(port: 0)
        let t = try UDPSocket()
        do {
            try t.bind(port: taken)
            Issue.record("bound a port twice")
        } catch {
            #expect(error.errno == .addressInUse)
            #expect(error.description == "bind [::]:\(taken): Address already in use")
        }
        s.close()
        #expect(throws: LinuxError.self) { try s.localEndpoint() }
        #expect(s.port == 0)
        let batch = try DatagramBatch(capacity: 1, bufferSize: 10)
        #expect(throws: LinuxError.self) { _ = try s.receive(into: batch) }
        batch.copy([1], into: 0, endpoint: Endpoint(Self.loopback4, port: 9))
        #expect(throws: LinuxError.self) { _ = try s.send(batch, count: 1) }
    }
}

@Suite struct DatagramBatchTests {
    @Test func endpointsRoundTrip() throws {
        let b = try DatagramBatch(capacity: 3, bufferSize: 16)
        #expect(b.endpoint(0) == nil)
        let v4 = Endpoint("10.99.1.2:51820")!, v6 = Endpoint("[fd99:6d67::1]:1")!
        let mapped = Endpoint(IPAddress("::ffff:192.0.2.1")!, port: 7)
        b.setEndpoint(0, v4); b.setEndpoint(1, v6); b.setEndpoint(2, mapped)
        #expect(b.endpoint(0) == v4)
        #expect(b.endpoint(1) == v6)
        #expect(b.endpoint(2) == Endpoint("192.0.2.1:7")!)   // v4-mapped comes back as .v4
    }

    @Test func rejectsBadGeometryWithoutTrapping() {
        #expect(throws: LinuxError.self) { try DatagramBatch(capacity: 0, bufferSize: 10) }
        #expect(throws: LinuxError.self) { try DatagramBatch(capacity: 1025, bufferSize: 10) }
        #expect(throws: LinuxError.self) { try DatagramBatch(capacity: 1, bufferSize: 0) }
        #expect(throws: LinuxError.self) { try DatagramBatch(capacity: 1, bufferSize: 1 << 20) }
        #expect(throws: LinuxError.self) { try DatagramBatch(capacity: 1, bufferSize: 10, headroom: -1) }
    }

    @Test func setPayloadClearsSegmentSize() throws {
        let b = try DatagramBatch(capacity: 1, bufferSize: 100)
        b.copy(pattern(0, size: 50), into: 0)
        b.setSegmentSize(0, 10)
        #expect(b.segmentSize(0) == 10)
        b.setPayload(0, offset: 0, length: 40)   // e.g. a received GRO slot reused for a send
        #expect(b.segmentSize(0) == 0 && b.length(0) == 40 && !b.isTruncated(0))
        b.setSegmentSize(0, 1 << 20)
        #expect(b.segmentSize(0) == 65535)
    }

    @Test func copyRefusesOversizedPayload() throws {
        let b = try DatagramBatch(capacity: 1, bufferSize: 4, headroom: 2, tailroom: 2)
        #expect(b.slotSize == 16)
        #expect(!b.copy([1, 2, 3, 4, 5], into: 0))
        #expect(b.length(0) == 0)
        #expect(b.copy([1, 2, 3, 4], into: 0))
        #expect(b.offset(0) == 2 && b.payloadBytes(0) == [1, 2, 3, 4])
    }
}

@Suite struct ClockAndPollTests {
    @Test func monotonicClockAdvances() {
        let a = MonotonicClock.now()
        var x = 0
        for i in 0..<100_000 { x &+= i }
        let b = MonotonicClock.now()
        #expect(b >= a && a > .zero && x != 1)
    }

    @Test func wallClockMatchesTime() {
        let w = WallClock.now()
        let t = Int64(time(nil))
        #expect(abs(w.seconds - t) <= 1)
        #expect(w.nanoseconds < 1_000_000_000)
        #expect(WallClock.Timestamp(seconds: 1, nanoseconds: 5).description == "1.000000005")
    }

    @Test func waitReadableTimesOutAndSeesData() throws {
        let s = try UDPSocket(nonBlocking: true)
        let port = try s.bind(port: 0)
        let start = MonotonicClock.now()
        #expect(try waitReadable([s.fileDescriptor], timeout: .milliseconds(50)) == [])
        #expect(MonotonicClock.now() - start >= .milliseconds(45))
        #expect(try waitReadable([s.fileDescriptor], timeout: .zero) == [])
        try s.send([1], to: Endpoint(.v4(IPv4Address(127, 0, 0, 1)), port: port))
        #expect(try waitReadable([s.fileDescriptor], timeout: .seconds(2)) == [s.fileDescriptor])
    }

    @Test func wakeupSignalWakesAPollingThread() throws {
        let signal = try WakeupSignal()
        let s = try UDPSocket(nonBlocking: true)
        try s.bind(port: 0)
        let poller = Poller([s.fileDescriptor, signal.fileDescriptor])
        let thread = Thread { Thread.sleep(forTimeInterval: 0.05); signal.signal() }
        thread.start()
        let start = MonotonicClock.now()
        #expect(try poller.wait(timeout: .seconds(5)) == 1)
        #expect(MonotonicClock.now() - start < .seconds(4))
        #expect(!poller.isReady(0) && poller.isReady(1) && !poller.isReady(2))
        #expect(signal.drain())
        #expect(!signal.drain())
        signal.close()
        signal.signal()   // after close: ignored, no trap
        #expect(signal.fileDescriptor == -1)
    }
}

@Suite struct UDPSocketDropTests {
    /// Datagrams a full receive buffer cannot take are counted by the kernel
    /// and read back from /proc/net/udp6 (the kernel-mode control plane's `queueFull`).
    @Test func kernelDropsCountAFullReceiveBuffer() throws {
        let receiver = try UDPSocket(family: .dualStack, nonBlocking: true)
        let port = try receiver.bind(port: 0)
        try receiver.setReceiveBufferSize(4096)
        #expect(receiver.kernelDrops == 0)
        let sender = try UDPSocket(family: .dualStack, nonBlocking: false)
        _ = try sender.bind(port: 0)
        let payload = [UInt8](repeating: 7, count: 1000)
        for _ in 0..<200 { _ = try sender.send(payload, to: Endpoint(.v4(IPv4Address(127, 0, 0, 1)), port: port)) }
        let drops = try #require(receiver.kernelDrops)
        #expect(drops > 100)
        receiver.close()
        #expect(receiver.kernelDrops == nil)
    }
}
