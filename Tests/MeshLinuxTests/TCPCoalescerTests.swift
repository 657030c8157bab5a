// TCP coalescing for TUN writes: the merge rules one by one, the fast Internet
// checksum against the slow reference in TestSupport.swift, and random segment
// streams whose output, cut again by the reader's segmentation (itself checked
// against the kernel in TunOffloadTests), must give back every flow's
// segments in order.
import MeshBase
import Testing
@testable import MeshLinux

/// A frame the coalescer wrote: its virtio_net_hdr and IP packet.
struct Frame {
    var header: VirtioNetHeader
    var packet: [UInt8]
    var isMerged: Bool { header.gsoType != 0 }
}

/// Feeds `packets` to `coalescer`, then flushes; returns the frames in write order.
func coalesce(_ packets: [[UInt8]], _ coalescer: TCPCoalescer = TCPCoalescer()) -> [Frame] {
    var frames: [Frame] = []
    let emit: TCPCoalescer.Emit = { h, p in frames.append(Frame(header: h, packet: Array(p))) }
    for p in packets { p.withUnsafeBytes { coalescer.add($0, emit: emit) } }
    coalescer.flush(emit: emit)
    return frames
}

/// The packets a frame stands for: a merged one cut like the kernel would
/// (TCPSuperPacket), anything else itself.
func expand(_ f: Frame) -> [[UInt8]] {
    guard f.isMerged else { return [f.packet] }
    return f.packet.withUnsafeBytes { p -> [[UInt8]] in
        guard let sp = TCPSuperPacket(packet: p.baseAddress!, length: p.count, header: f.header) else { return [] }
        return (0..<sp.segmentCount).map { i in
            var out = [UInt8](repeating: 0, count: sp.segmentLength(i))
            out.withUnsafeMutableBytes { o in _ = sp.writeSegment(i, from: p.baseAddress!, to: o.baseAddress!) }
            return out
        }
    }
}

@Suite struct TCPCoalescerTests {
    static let a4 = IPv4Address(10, 0, 0, 1), b4 = IPv4Address(10, 0, 0, 2)
    static let a6 = IPv6Address("fd00::1")!, b6 = IPv6Address("fd00::2")!
    static let ts: [UInt8] = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]

    func v4(seq: UInt32, size: Int = 1000, flags: UInt8 = 0x10, ack: UInt32 = 7, options: [UInt8] = ts,
            srcPort: UInt16 = 40000, id: UInt16 = 1) -> [UInt8] {
        ipv4TCP(src: Self.a4, dst: Self.b4, srcPort: srcPort, dstPort: 5201, seq: seq, ack: ack, flags: flags,
                options: options, payload: pattern(Int(seq % 251), size: size), id: id)
    }

    func v6(seq: UInt32, size: Int = 1000, flags: UInt8 = 0x10) -> [UInt8] {
        ipv6TCP(src: Self.a6, dst: Self.b6, srcPort: 40000, dstPort: 5201, seq: seq, ack: 9, flags: flags,
                payload: pattern(Int(seq % 251), size: size))
    }

    @Test func inOrderSegmentsBecomeOneSuperPacket() throws {
        for family in [4, 6] {
            let segs = (0..<10).map { i -> [UInt8] in
                let seq = 0xFFFF_F000 &+ UInt32(i * 1000)   // wraps around 2^32
                let flags: UInt8 = i == 9 ? 0x18 : 0x10
                return family == 4 ? v4(seq: seq, size: i == 9 ? 300 : 1000, flags: flags, id: UInt16(i))
                                   : v6(seq: seq, size: i == 9 ? 300 : 1000, flags: flags)
            }
            let frames = coalesce(segs)
            #expect(frames.count == 1)
            let f = try #require(frames.first)
            let ipLength = family == 4 ? 20 : 40
            let tcpHeader = family == 4 ? 32 : 20
            #expect(f.header == VirtioNetHeader(flags: 1, gsoType: family == 4 ? 1 : 4, hdrLen: UInt16(ipLength + tcpHeader),
                                                gsoSize: 1000, csumStart: UInt16(ipLength), csumOffset: 16))
            #expect(f.packet.count == ipLength + tcpHeader + 9300)
            // The partial checksum, completed as the kernel would, is the full one.
            var completed = f.packet
            let ok = completed.withUnsafeMutableBytes {
                TunOffload.completeChecksum($0.baseAddress!, length: $0.count, start: ipLength, offset: 16)
            }
            #expect(ok)
            let whole = try #require(parseTCP(completed))
            #expect(whole.checksumValid && whole.ipv4HeaderValid && whole.flags == 0x18)
            // Cut again, it gives back the segments (IPv4 IDs renumbered from the first).
            let again = expand(f)
            #expect(again.count == 10)
            for (x, y) in zip(again, segs) {
                let p = try #require(parseTCP(x)), q = try #require(parseTCP(y))
                #expect(p.checksumValid && p.ipv4HeaderValid)
                #expect(p.seq == q.seq && p.ack == q.ack && p.flags == q.flags && p.payload == q.payload)
            }
        }
    }

    @Test func nonCandidatesPassThroughAndKeepFlowOrder() throws {
        var badChecksum = v4(seq: 2000); badChecksum[60] ^= 0xff
        var fragment = v4(seq: 2000); fragment[6] = 0x20    // MF
        var withOptions = v4(seq: 2000)
        withOptions.insert(contentsOf: [1, 1, 1, 0], at: 20); withOptions[0] = 0x46
        withOptions.replaceSubrange(2..<4, with: be16(UInt16(withOptions.count)))
        var shortLength = v4(seq: 2000); shortLength.removeLast()
        var badHeader = v4(seq: 2000); badHeader[10] ^= 1
        let udp = ipv4UDP(src: Self.a4, dst: Self.b4, srcPort: 1, dstPort: 2, payload: pattern(1, size: 100))
        let others: [(String, [UInt8])] = [
            ("SYN", v4(seq: 2000, flags: 0x12)), ("FIN", v4(seq: 2000, flags: 0x11)), ("RST", v4(seq: 2000, flags: 0x14)),
            ("URG", v4(seq: 2000, flags: 0x30)), ("CWR", v4(seq: 2000, flags: 0x90)), ("ECE", v4(seq: 2000, flags: 0x50)),
            ("pure ACK", v4(seq: 2000, size: 0)), ("bad checksum", badChecksum), ("fragment", fragment),
            ("IPv4 options", withOptions), ("length mismatch", shortLength), ("IPv4 header checksum", badHeader),
        ]
        for (name, other) in others {
            // Two mergeable segments, the odd one, then the next in sequence:
            // the pair goes out first, the odd one as it came, then the rest.
            let frames = coalesce([v4(seq: 0), v4(seq: 1000), other, v4(seq: 2000), v4(seq: 3000)])
            #expect(frames.count == 3, "\(name)")
            #expect(frames.map(\.isMerged) == [true, false, true], "\(name)")
            #expect(frames[1].packet == other, "\(name)")
            #expect(frames[1].header == VirtioNetHeader(), "\(name)")
        }
        // Another protocol neither flushes nor joins.
        let frames = coalesce([v4(seq: 0), udp, v4(seq: 1000)])
        #expect(frames.map(\.packet.count) == [udp.count, 20 + 32 + 2000])
    }

    @Test func itemsEndWhereTheRulesSay() throws {
        func shape(_ packets: [[UInt8]]) -> [Int] { coalesce(packets).map { expand($0).count } }
        // Out of order: the gap starts a new item.
        #expect(shape([v4(seq: 0), v4(seq: 1000), v4(seq: 3000), v4(seq: 4000)]) == [2, 2])
        // PSH ends an item; a shorter segment ends it; a longer one cannot follow.
        #expect(shape([v4(seq: 0), v4(seq: 1000, flags: 0x18), v4(seq: 2000)]) == [2, 1])
        #expect(shape([v4(seq: 0), v4(seq: 1000, size: 500), v4(seq: 1500, size: 500)]) == [2, 1])
        #expect(shape([v4(seq: 0, size: 500), v4(seq: 500, size: 1000)]) == [1, 1])
        // Different acknowledgment, options, TTL, TOS or DF: not the same flow.
        #expect(shape([v4(seq: 0), v4(seq: 1000, ack: 8)]) == [1, 1])
        #expect(shape([v4(seq: 0), v4(seq: 1000, options: [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 2])]) == [1, 1])
        for (byte, value) in [(8, UInt8(63)), (1, UInt8(4)), (6, UInt8(0))] {
            var p = v4(seq: 1000)
            p[byte] = value
            p[10] = 0; p[11] = 0
            let c = internetChecksum(Array(p[0..<20]))
            p[10] = UInt8(c >> 8); p[11] = UInt8(c & 0xff)
            #expect(shape([v4(seq: 0), p]) == [1, 1], "IPv4 byte \(byte)")
        }
        // IPv6: flow label and hop limit.
        var label = v6(seq: 1000); label[3] = 1
        var hops = v6(seq: 1000); hops[7] = 1
        #expect(shape([v6(seq: 0), label]) == [1, 1])
        #expect(shape([v6(seq: 0), hops]) == [1, 1])
        // 65535 bytes at most: 1400-byte payloads (+52 header) fit 46 to a packet.
        let many = (0..<50).map { v4(seq: UInt32($0 * 1400), size: 1400) }
        #expect(shape(many) == [46, 4])
    }

    @Test func flowsInterleaveAndTheOldestIsEvicted() throws {
        let a = (0..<4).map { v4(seq: UInt32($0 * 1000), srcPort: 1) }
        let b = (0..<4).map { v4(seq: UInt32($0 * 1000), srcPort: 2) }
        let frames = coalesce(zip(a, b).flatMap { [$0, $1] })
        #expect(frames.map { expand($0).count } == [4, 4])
        // Three flows through two buffers: a third flow writes out the first held.
        let c = v4(seq: 0, srcPort: 3)
        let small = TCPCoalescer(maxFlows: 2)
        let evicted = coalesce([a[0], a[1], b[0], c, a[2]], small)
        #expect(evicted.map { parseTCP($0.packet)!.source.port } == [1, 2, 3, 1])
        #expect(small.merged == 1)
    }

    @Test func fastChecksumMatchesTheReference() {
        var rng = SeededRandom(seed: 7)
        let storage = (0..<3000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for _ in 0..<2000 {
            let start = Int(rng.next() % 64), count = Int(rng.next() % 2900)
            let bytes = Array(storage[start..<(start + count)])
            let fast = storage.withUnsafeBytes { ~InternetChecksum.fold(InternetChecksum.sum($0.baseAddress! + start, count: count)) }
            #expect(fast == internetChecksum(bytes), "offset \(start) count \(count)")
        }
    }

    /// Random streams from several flows, in order or not, with odd packets
    /// mixed in: every packet comes out exactly once, each flow in its order.
    @Test func randomStreamsComeBackInOrder() throws {
        var rng = SeededRandom(seed: 42)
        func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        var merged = 0
        for round in 0..<300 {
            var next: [UInt32] = [0, 0, 0]
            var stream: [[UInt8]] = []
            for _ in 0..<(1 + random(120)) {
                let flow = random(3)
                var size = [1000, 1000, 1000, 1000, 400, 0][random(6)]
                let flags: UInt8 = [0x10, 0x10, 0x10, 0x18, 0x11][random(5)]
                if size == 0 && flags != 0x10 { size = 10 }
                var seq = next[flow]
                if random(10) == 0 { seq &-= 1000 }   // a retransmission
                var p: [UInt8]
                switch flow {
                case 0: p = v4(seq: seq, size: size, flags: flags, srcPort: 1)
                case 1: p = v4(seq: seq, size: size, flags: flags, srcPort: 2)
                default: p = v6(seq: seq, size: size, flags: flags)
                }
                if random(30) == 0 { p[p.count - 1] ^= 1 }   // corrupted: must pass unmerged
                next[flow] = seq &+ UInt32(size)
                stream.append(p)
                if random(20) == 0 { stream.append(ipv4UDP(src: Self.a4, dst: Self.b4, srcPort: 9, dstPort: 9, payload: [UInt8(round & 0xff)])) }
            }
            let coalescer = TCPCoalescer(maxFlows: 1 + random(3))
            let out = coalesce(stream, coalescer).flatMap(expand)
            merged += coalescer.merged
            func key(_ p: [UInt8]) -> String {
                guard let t = parseTCP(p) else { return "other" }
                return "\(t.source)"
            }
            func summary(_ p: [UInt8]) -> String {
                guard let t = parseTCP(p) else { return "\(p)" }
                return "\(t.seq) \(t.ack) \(t.flags) \(t.payload.hashValue) \(t.checksumValid)"
            }
            #expect(out.count == stream.count, "round \(round)")
            for flow in Set(stream.map(key)) {
                #expect(out.filter { key($0) == flow }.map(summary) == stream.filter { key($0) == flow }.map(summary), "round \(round) flow \(flow)")
            }
        }
        #expect(merged > 1000)
    }

    @Test func randomBytesNeverTrap() {
        var rng = SeededRandom(seed: 3)
        let coalescer = TCPCoalescer(maxFlows: 2)
        var written = 0
        for round in 0..<5000 {
            var p = (0..<Int(rng.next() % 1600)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if round % 2 == 0, p.count > 40 { p[0] = round % 4 == 0 ? 0x45 : 0x60; p[9] = 6; p[6] = 6 }
            p.withUnsafeBytes { coalescer.add($0) { _, f in written += f.count } }
        }
        coalescer.flush { _, f in written += f.count }
        #expect(written > 0)
    }
}
