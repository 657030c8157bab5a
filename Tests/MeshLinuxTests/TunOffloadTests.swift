// Offloaded TUN reads: TCP super-packets cut into segments and partial
// checksums completed, first on synthetic frames (against the checks in
// TestSupport.swift), then with the kernel's own TSO through a real TUN device.
import Foundation
import MeshBase
import Testing
@testable import MeshLinux

/// Places `header` + `packet` in the batch's scratch buffer and accepts the frame.
func feed(_ batch: DatagramBatch, header: VirtioNetHeader, packet: [UInt8], at count: Int = 0) -> Int {
    let s = batch.offloadScratch()
    header.store(to: s)
    packet.withUnsafeBytes { (s + VirtioNetHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    return batch.acceptFrame(length: VirtioNetHeader.size + packet.count, at: count)
}

// linux/virtio_net.h gso_type values.
let gsoTCPv4: Int32 = 1, gsoTCPv6: Int32 = 4, gsoECN: Int32 = 0x80

@Suite struct TunOffloadUnitTests {
    static let a4 = IPv4Address(10, 0, 0, 1), b4 = IPv4Address(10, 0, 0, 2)
    static let a6 = IPv6Address("fd00::1")!, b6 = IPv6Address("fd00::2")!
    static let tsOption: [UInt8] = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]   // NOP NOP timestamps: a 32-byte TCP header

    /// Cuts `superPacket` with a batch of `capacity` slots, over as many calls as needed.
    func segments(_ superPacket: [UInt8], gso: UInt16, type: Int32, capacity: Int) throws -> ([[UInt8]], DatagramBatch) {
        let batch = try DatagramBatch(capacity: capacity, bufferSize: 1500, headroom: 16)
        let ipLength = superPacket[0] >> 4 == 4 ? 20 : 40
        let header = VirtioNetHeader(flags: 1, gsoType: UInt8(type), hdrLen: UInt16(superPacket.count),   // hdr_len deliberately wrong
                                     gsoSize: gso, csumStart: UInt16(ipLength), csumOffset: 16)
        var out: [[UInt8]] = []
        var n = feed(batch, header: header, packet: superPacket)
        while true {
            for i in 0..<n { #expect(!batch.isTruncated(i) && batch.offset(i) == 16); out.append(batch.payloadBytes(i)) }
            guard batch.hasCarry else { break }
            n = batch.drainCarry(from: 0)
        }
        return (out, batch)
    }

    @Test func tcpv4SuperPacketIsCutLikeTheKernel() throws {
        let data = pattern(5, size: 10_000)
        let flags: UInt8 = 0x80 | 0x10 | 0x08 | 0x01   // CWR ACK PSH FIN
        let big = ipv4TCP(src: Self.a4, dst: Self.b4, srcPort: 40000, dstPort: 5000, seq: 0xFFFF_F000, ack: 77,
                          flags: flags, options: Self.tsOption, payload: data, id: 0xFFFE)
        let (segs, batch) = try segments(big, gso: 1400, type: gsoTCPv4, capacity: 3)
        #expect(segs.count == 8)   // ⌈10000 / 1400⌉, over three calls
        #expect(batch.superPacketsSplit == 1 && batch.offloadDrops == 0)
        var joined: [UInt8] = []
        for (i, s) in segs.enumerated() {
            let t = try #require(parseTCP(s))
            #expect(t.checksumValid && t.ipv4HeaderValid)
            #expect(t.headerLength == 32)
            #expect(t.seq == 0xFFFF_F000 &+ UInt32(i * 1400))   // wraps around 2^32
            #expect(t.ack == 77)
            #expect(t.ipv4ID == 0xFFFE &+ UInt16(i))
            #expect(t.payload.count == (i < 7 ? 1400 : 10_000 - 7 * 1400))
            let last = i == segs.count - 1
            #expect(t.flags == (i == 0 ? 0x90 : 0x10) | (last ? 0x09 : 0))
            joined += t.payload
        }
        #expect(joined == data)
    }

    @Test func tcpv6SuperPacketIsCut() throws {
        let data = pattern(6, size: 2_500)
        let big = ipv6TCP(src: Self.a6, dst: Self.b6, srcPort: 1, dstPort: 2, seq: 10, ack: 20, flags: 0x18, payload: data)
        let (segs, _) = try segments(big, gso: 1200, type: gsoTCPv6 | gsoECN, capacity: 64)
        #expect(segs.map(\.count) == [1260, 1260, 160])
        let parsed = segs.compactMap(parseTCP)
        #expect(parsed.count == 3 && parsed.allSatisfy(\.checksumValid))
        #expect(parsed.map(\.seq) == [10, 1210, 2410])
        #expect(parsed.map(\.flags) == [0x10, 0x10, 0x18])
        #expect(Array(parsed.map(\.payload).joined()) == data)
    }

    @Test func partialChecksumIsCompleted() throws {
        // A UDP/IPv4 packet whose checksum field holds only the folded pseudo-header sum.
        var packet = ipv4UDP(src: Self.a4, dst: Self.b4, srcPort: 1, dstPort: 2, payload: pattern(1, size: 333))
        let pseudo = Self.a4.octets + Self.b4.octets + [0, 17] + be16(UInt16(packet.count - 20))
        let partial = ~internetChecksum(pseudo)
        packet[26] = UInt8(partial >> 8); packet[27] = UInt8(partial & 0xff)
        #expect(parseUDP(packet)?.checksumsValid == false)
        let batch = try DatagramBatch(capacity: 2, bufferSize: 1500)
        let n = feed(batch, header: VirtioNetHeader(flags: 1, csumStart: 20, csumOffset: 6), packet: packet)
        #expect(n == 1)
        #expect(parseUDP(batch.payloadBytes(0))?.checksumsValid == true)
        // Without NEEDS_CSUM the packet is passed through untouched.
        let plain = ipv4UDP(src: Self.a4, dst: Self.b4, srcPort: 1, dstPort: 2, payload: [1, 2, 3])
        #expect(feed(batch, header: VirtioNetHeader(), packet: plain, at: 1) == 2)
        #expect(batch.payloadBytes(1) == plain)
    }

    @Test func malformedFramesAreDroppedNotTrusted() throws {
        let batch = try DatagramBatch(capacity: 4, bufferSize: 1500)
        let good = ipv4TCP(src: Self.a4, dst: Self.b4, srcPort: 1, dstPort: 2, seq: 1, ack: 1, flags: 0x10, payload: pattern(1, size: 3000))
        let v4 = UInt8(gsoTCPv4), v6 = UInt8(gsoTCPv6)
        var badOffset = good; badOffset[32] = 0x10   // TCP data offset 1 word
        let cases: [(VirtioNetHeader, [UInt8])] = [
            (VirtioNetHeader(gsoType: v4, gsoSize: 0, csumStart: 20, csumOffset: 16), good),        // no segment size
            (VirtioNetHeader(gsoType: v6, gsoSize: 1000, csumStart: 40, csumOffset: 16), good),     // family mismatch
            (VirtioNetHeader(gsoType: v4, gsoSize: 1000, csumStart: 24, csumOffset: 16), good),     // csum_start is not the IHL
            (VirtioNetHeader(gsoType: v4, gsoSize: 1000, csumStart: 20, csumOffset: 16), badOffset),
            (VirtioNetHeader(gsoType: v4, gsoSize: 1000, csumStart: 20, csumOffset: 16), Array(good[0..<30])),
            (VirtioNetHeader(gsoType: 3, gsoSize: 1000, csumStart: 20, csumOffset: 6), good),       // UFO: not asked for
            (VirtioNetHeader(flags: 1, csumStart: 5000, csumOffset: 16), good),                     // checksum outside
            (VirtioNetHeader(flags: 1, csumStart: 20, csumOffset: 60_000), good),
        ]
        for (i, (header, packet)) in cases.enumerated() {
            #expect(feed(batch, header: header, packet: packet) == 0, "case \(i)")
            #expect(!batch.hasCarry)
        }
        #expect(batch.offloadDrops == cases.count)
        #expect(batch.acceptFrame(length: 5, at: 0) == 0)                                  // shorter than the header
        #expect(batch.acceptFrame(length: DatagramBatch.offloadScratchSize, at: 0) == 0)   // longer than any packet
    }

    @Test func randomFramesNeverTrap() throws {
        var rng = SystemRandomNumberGenerator()
        let batch = try DatagramBatch(capacity: 8, bufferSize: 200)
        let scratch = batch.offloadScratch()
        for round in 0..<3_000 {
            let length = Int.random(in: 0...3_000, using: &rng)
            for i in 0..<length { scratch.storeBytes(of: UInt8.random(in: 0...255, using: &rng), toByteOffset: i, as: UInt8.self) }
            if round % 3 == 0 {   // make the header plausible more often
                VirtioNetHeader(flags: UInt8.random(in: 0...1), gsoType: [0, 1, 4].randomElement()!, hdrLen: 0,
                                gsoSize: UInt16.random(in: 0...300), csumStart: [20, 40, 24].randomElement()!,
                                csumOffset: 16).store(to: scratch)
                if length > 10 { scratch.storeBytes(of: UInt8(0x45), toByteOffset: 10, as: UInt8.self) }
            }
            var n = batch.acceptFrame(length: length, at: 0)
            while true {
                for i in 0..<n { #expect(batch.length(i) <= 200) }
                guard batch.hasCarry else { break }
                n = batch.drainCarry(from: 0)
            }
        }
    }
}

@Suite(.serialized) struct TunOffloadKernelTests {
    /// The kernel's TCP through an offload TUN: the SYN arrives with a partial
    /// checksum, bulk data as TSO super-packets that are cut into valid segments.
    ///
    ///     TCP socket ──connect──► 10.254.x.y+2:5000 ──► mgt<pid>o ──► TunDevice(offload) ──► test plays the server
    @Test func kernelTSOThroughTun() throws {
        let name = tunName("o")
        let tun = try TunDevice(name: name, mtu: 1420, nonBlocking: true, offload: true)
        #expect(tun.offload)
        try tun.setUp(true)
        let x = UInt8(truncatingIfNeeded: testPID >> 6), y = UInt8(truncatingIfNeeded: (testPID & 0x3f) * 4)
        let local = IPv4Address(10, 254, x, y + 1), peer = IPv4Address(10, 254, x, y + 2)
        try ip("addr", "add", "\(local)/30", "dev", name)

        // Client: a nonblocking TCP connect to the peer.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = UInt16(5000).bigEndian
        sa.sin_addr.s_addr = peer.value.bigEndian
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(rc == -1 && errno == EINPROGRESS)

        let batch = try DatagramBatch(capacity: 64, bufferSize: 1420, headroom: 16, tailroom: 16)
        let acks = try DatagramBatch(capacity: 1, bufferSize: 64)
        func tcpFromClient(timeout: Duration, _ match: (ParsedTCP) -> Bool) throws -> [ParsedTCP] {
            var found: [ParsedTCP] = []
            let deadline = MonotonicClock.now() + timeout
            while found.isEmpty && MonotonicClock.now() < deadline {
                _ = try waitReadable([tun.fileDescriptor], timeout: .milliseconds(100))
                let n = try tun.read(into: batch)
                for i in 0..<n {
                    #expect(!batch.isTruncated(i) && batch.length(i) <= 1420)
                    if let t = parseTCP(batch.payloadBytes(i)), t.destination == Endpoint(.v4(peer), port: 5000), match(t) { found.append(t) }
                }
            }
            return found
        }

        // Handshake, the test playing the server: SYN (partial checksum, completed) → SYN-ACK.
        let syn = try #require(try tcpFromClient(timeout: .seconds(3)) { $0.flags & 0x02 != 0 }.first)
        #expect(syn.checksumValid)
        let clientPort = syn.source.port
        let serverISN: UInt32 = 1000
        let mss: [UInt8] = [2, 4] + be16(1380)
        try tun.write(ipv4TCP(src: peer, dst: local, srcPort: 5000, dstPort: clientPort, seq: serverISN, ack: syn.seq &+ 1,
                              flags: 0x12, options: mss))
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        #expect(poll(&p, 1, 3000) == 1)

        // Bulk data: the client writes 200 kB; the server acks what arrives in order.
        let data = pattern(3, size: 200_000)
        var written = 0, received: [UInt8] = []
        let base = syn.seq &+ 1
        let deadline = MonotonicClock.now() + .seconds(10)
        while received.count < data.count && MonotonicClock.now() < deadline {
            if written < data.count {
                let n = data[written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { written += n }
            }
            let segs = try tcpFromClient(timeout: .milliseconds(300)) { !$0.payload.isEmpty }
            for t in segs {
                #expect(t.checksumValid && t.ipv4HeaderValid)
                #expect(t.payload.count <= 1380)
                if t.seq &- base == UInt32(received.count) { received += t.payload }
            }
            acks.copy(ipv4TCP(src: peer, dst: local, srcPort: 5000, dstPort: clientPort, seq: serverISN &+ 1,
                              ack: base &+ UInt32(received.count), flags: 0x10), into: 0)
            #expect(try tun.write(acks, count: 1).completed == 1)
        }
        #expect(received.count == data.count)
        #expect(received == data)
        #expect(batch.superPacketsSplit > 0, "the kernel sent no TSO super-packet")
        #expect(batch.offloadDrops == 0)
    }
}
