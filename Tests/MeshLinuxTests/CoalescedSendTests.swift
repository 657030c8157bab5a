// UDPSocket.sendCoalesced: runs of slots merged into UDP GSO sends must reach
// the receiver exactly as one datagram per slot, also when a GRO receiver
// gets them coalesced and splits them with `datagrams(in:)`; the run limits;
// odd segment sizes; and the
// fallback when the kernel refuses a GSO send (a segment over the path MTU,
// on a veth in the host namespace with a small MTU, as root).
//
//     UDPSocket ──sendCoalesced──► 198.51.100.1 via mgt<pid>m (MTU 1280) ──► veth peer (dropped)
import Foundation
import MeshBase
import Testing
@testable import MeshLinux

@Suite(.serialized) struct CoalescedSendTests {
    static let loopback4 = IPAddress.v4(IPv4Address(127, 0, 0, 1))
    static let loopback6 = IPAddress.v6(IPv6Address(high: 0, low: 1))

    @Test func runsArriveAsOneDatagramPerSlot() throws {
        let sender = try UDPSocket()
        guard sender.supportsGSO else { return }   // kernel before 4.18
        let x = try UDPSocket(nonBlocking: true), y = try UDPSocket(nonBlocking: true)
        let xPort = try x.bind(port: 0), yPort = try y.bind(port: 0)
        _ = try y.enableGRO()
        let toX = Endpoint(Self.loopback4, port: xPort), toY = Endpoint(Self.loopback6, port: yPort)
        // X: five of 1000 and a shorter one (one run), then a longer one (its own);
        // Y: three of 1000 in between (one run).
        let plan: [(Endpoint, Int)] = [(toX, 1000), (toX, 1000), (toX, 1000), (toX, 1000), (toX, 1000), (toX, 600),
                                       (toY, 1000), (toY, 1000), (toY, 1000), (toX, 1200)]
        let out = try DatagramBatch(capacity: plan.count, bufferSize: 1500, headroom: 16)
        for (i, (to, size)) in plan.enumerated() { out.copy(pattern(i, size: size), into: i, endpoint: to) }
        #expect(try sender.sendCoalesced(out, slots: 0..<plan.count) == BatchResult(requested: 10, processed: 10, completed: 10))
        #expect(out.prepareCoalescedSend(0..<plan.count, family: AF_INET6, maxSegments: 64, maxBytes: 65487) == 3)
        #expect((0...3).map { out.groupStarts[$0] } == [0, 6, 9, 10])
        #expect(sender.coalescesSends)

        let inBatch = try DatagramBatch(capacity: 64, bufferSize: 65_536)
        for (socket, want) in [(x, [0, 1, 2, 3, 4, 5, 9]), (y, [6, 7, 8])] {
            var seen: [[UInt8]] = []
            let deadline = MonotonicClock.now() + .seconds(3)
            while seen.count < want.count && MonotonicClock.now() < deadline {
                _ = try waitReadable([socket.fileDescriptor], timeout: .milliseconds(100))
                for slot in 0..<(try socket.receive(into: inBatch)) {
                    let buffer = inBatch.slotBuffer(slot)
                    for (offset, length) in inBatch.datagrams(in: slot) { seen.append(Array(buffer[offset..<(offset + length)])) }
                }
            }
            #expect(seen == want.map { pattern($0, size: plan[$0].1) })
        }
    }

    @Test func slotsSplitIntoDatagramsWhateverTheSegmentSize() throws {
        let batch = try DatagramBatch(capacity: 1, bufferSize: 100, headroom: 4)
        func pieces(_ length: Int, _ segment: Int) -> [(Int, Int)] {
            batch.copy(pattern(0, size: length), into: 0)
            batch.setSegmentSize(0, segment)
            return batch.datagrams(in: 0).map { ($0.offset, $0.length) }
        }
        #expect(pieces(10, 3).elementsEqual([(4, 3), (7, 3), (10, 3), (13, 1)], by: ==))
        #expect(pieces(10, 0).elementsEqual([(4, 10)], by: ==))
        #expect(pieces(10, 20).elementsEqual([(4, 10)], by: ==))
        #expect(pieces(3, 1).elementsEqual([(4, 1), (5, 1), (6, 1)], by: ==))
        #expect(pieces(0, 0).elementsEqual([(4, 0)], by: ==))
        #expect(pieces(0, 7).elementsEqual([(4, 0)], by: ==))
    }

    @Test func runsKeepToTheKernelsLimits() throws {
        let batch = try DatagramBatch(capacity: 100, bufferSize: 1500)
        let to = Endpoint(Self.loopback4, port: 9)
        func groups(count: Int, size: Int) -> [Int] {
            for i in 0..<count { batch.copy(pattern(i, size: size), into: i, endpoint: to) }
            let g = batch.prepareCoalescedSend(0..<count, family: AF_INET6, maxSegments: UDPSocket.maxCoalescedSegments,
                                               maxBytes: UDPSocket.maxCoalescedBytes)
            return (0..<g).map { batch.groupStarts[$0 + 1] - batch.groupStarts[$0] }
        }
        #expect(groups(count: 70, size: 1000) == [64, 6])       // segments
        #expect(groups(count: 50, size: 1452) == [45, 5])       // bytes: 45 × 1452 = 65340 <= 65487
        batch.copy(pattern(0, size: 1000), into: 1, endpoint: Endpoint(Self.loopback4, port: 10))
        batch.setSegmentSize(3, 500)
        let g = batch.prepareCoalescedSend(0..<5, family: AF_INET6, maxSegments: 64, maxBytes: 65487)
        #expect((0...g).map { batch.groupStarts[$0] } == [0, 1, 2, 3, 4, 5])   // other endpoint; own segment size
    }

    @Test func refusedRunsFallBackToOneDatagramPerSlot() throws {
        let dev = "mgt\(getpid())m", peer = "mgt\(getpid())n"
        try ip("link", "add", dev, "type", "veth", "peer", "name", peer)
        defer { _ = try? ip("link", "del", dev) }
        try ip("link", "set", dev, "mtu", "1280", "up")
        try ip("link", "set", peer, "up")
        try ip("addr", "add", "198.51.100.254/24", "dev", dev)

        let sender = try UDPSocket()
        guard sender.supportsGSO else { return }
        let batch = try DatagramBatch(capacity: 8, bufferSize: 1500)
        for i in 0..<8 { batch.copy(pattern(i, size: 1400), into: i, endpoint: Endpoint(.v4(IPv4Address(198, 51, 100, 1)), port: 9)) }
        // 1400-byte segments exceed the 1280-byte MTU: the kernel refuses the
        // GSO send, and the slots go out one by one (fragmented by IP).
        let r = try sender.sendCoalesced(batch, slots: 0..<8)
        #expect(r.completed == 8 && r.isComplete, "\(r)")
        #expect(r.lastError == .messageTooLong || r.lastError == .invalidArgument)
        #expect(sender.coalescesSends)   // only EIO turns merging off
    }
}
