// TCPCoalescer: the receive-side counterpart of TSO for an offload TUN device.
// Consecutive in-order TCP segments of one flow are merged into one
// super-packet written behind a virtio_net_hdr with gso_type TCPV4/TCPV6 and
// a partial checksum, so the kernel's TCP stack takes up to 64 KiB per packet
// instead of one MSS (the kernel's own GRO, net/ipv4/tcp_offload.c
// tcp_gro_receive, does the same on NICs; wireguard-go tun/tcp_offload_linux.go
// for TUN).
//
// A segment joins the open item of its flow when all of these hold, else the
// item is written out first (per-flow order is kept) and the segment starts a
// new one:
//
//   flow       same addresses, ports, acknowledgment number, TCP header length
//              and options bytes; IPv4: same TOS, TTL and DF bit; IPv6: same
//              first word (version, traffic class, flow label) and hop limit
//   candidate  IPv4 without options or fragmentation, header checksum valid /
//              IPv6 without extension headers; IP length equal to the bytes
//              given; TCP flags exactly ACK or ACK|PSH; payload not empty; TCP
//              checksum valid (the super-packet's is partial, which the kernel
//              trusts, so every merged segment is verified here)
//   order      sequence number = the item's next; no PSH merged yet; every
//              merged payload so far exactly the first one's size (a shorter
//              or PSH segment may end an item, never sit inside it)
//   size       the merged packet stays within 65535 bytes
//
// IPv4 identification is not checked: the merged packet is delivered locally,
// and when the kernel cuts it again (forwarding) it numbers the segments
// itself. Packets that are not candidates (other protocols, SYN/FIN/RST/URG,
// pure ACKs) pass through unchanged, after any held item of their TCP flow.
// An item holding one segment is written as it came (all-zero header).
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims

/// Merges TCP segments for writes to an offload TUN device. Holds up to
/// `maxFlows` items, each in its own preallocated 64 KiB buffer: `add` and
/// `flush` allocate nothing. Not Sendable: one thread owns it.
public final class TCPCoalescer {
    struct Item {
        var isV6: Bool
        var ipHeaderLength: Int
        var headerLength: Int
        /// Payload bytes of the first segment (gso_size).
        var segmentSize: Int
        /// IP packet bytes held.
        var length: Int
        var segments: Int
        var nextSeq: UInt32
        /// A PSH or shorter segment was merged: nothing may follow.
        var closed: Bool
        /// When the item started (`starts` then), to evict the oldest.
        var started: Int
    }

    /// Bytes per item buffer: a virtio_net_hdr and the largest IP packet.
    static let bufferSize = VirtioNetHeader.size + 65535

    public let maxFlows: Int
    private let buffers: UnsafeMutableRawPointer
    /// items[k] lives in buffer k; nil: free.
    private var items: [Item?]
    /// Segments merged into another packet (a super-packet of n counts n - 1).
    public private(set) var merged = 0
    /// Items started so far.
    private var starts = 0

    public init(maxFlows: Int = 8) {
        self.maxFlows = max(1, maxFlows)
        buffers = .allocate(byteCount: self.maxFlows * Self.bufferSize, alignment: 64)
        items = [Item?](repeating: nil, count: self.maxFlows)
    }

    deinit { buffers.deallocate() }

    private func packetArea(_ k: Int) -> UnsafeMutableRawPointer { buffers + k * Self.bufferSize + VirtioNetHeader.size }

    /// A frame to write: the header and the IP packet.
    typealias Emit = (VirtioNetHeader, UnsafeRawBufferPointer) -> Void

    /// Takes one IP packet. Calls `emit` for whatever must be written now, in
    /// order: a held item the packet cannot join, then the packet itself when
    /// it is not held. The packet's bytes are copied when held.
    func add(_ packet: UnsafeRawBufferPointer, emit: Emit) {
        guard let base = packet.baseAddress, let s = TCPSegment(base, count: packet.count) else {
            if let base = packet.baseAddress, let flow = TCPSegment.flowOffsets(base, count: packet.count) {
                for k in 0..<maxFlows where items[k] != nil && sameConnection(k, base, flow) { emitItem(k, emit) }
            }
            emit(VirtioNetHeader(), packet)
            return
        }
        var free: Int?
        for k in 0..<maxFlows {
            guard let item = items[k] else { if free == nil { free = k }; continue }
            guard sameConnection(k, base, (s.isV6, s.ipHeaderLength)) else { continue }
            if canAppend(item, k, s, base) {
                append(k, s, base)
                return
            }
            emitItem(k, emit)
            start(k, s, base)
            return
        }
        let k = free ?? oldest()
        emitItem(k, emit)
        start(k, s, base)
    }

    /// The item started first (when every buffer holds one).
    private func oldest() -> Int {
        var k = 0
        for i in 1..<maxFlows where (items[i]?.started ?? .max) < (items[k]?.started ?? .max) { k = i }
        return k
    }

    /// Writes out every held item.
    func flush(emit: Emit) {
        for k in 0..<maxFlows where items[k] != nil { emitItem(k, emit) }
    }

    /// Whether item k is of the same TCP connection and direction (addresses and ports).
    private func sameConnection(_ k: Int, _ p: UnsafeRawPointer, _ flow: (isV6: Bool, ipHeaderLength: Int)) -> Bool {
        guard let item = items[k], item.isV6 == flow.isV6 else { return false }
        let h = UnsafeRawPointer(packetArea(k))
        let (at, n) = flow.isV6 ? (8, 32) : (12, 8)
        return memcmp(h + at, p + at, n) == 0
            && memcmp(h + item.ipHeaderLength, p + flow.ipHeaderLength, 4) == 0
    }

    private func canAppend(_ item: Item, _ k: Int, _ s: TCPSegment, _ p: UnsafeRawPointer) -> Bool {
        let h = UnsafeRawPointer(packetArea(k))
        guard !item.closed, s.seq == item.nextSeq, s.payloadLength <= item.segmentSize,
              s.headerLength == item.headerLength, item.length + s.payloadLength <= 65535 else { return false }
        if s.isV6 {
            guard memcmp(h, p, 4) == 0, h.load(fromByteOffset: 7, as: UInt8.self) == p.load(fromByteOffset: 7, as: UInt8.self) else { return false }
        } else {
            guard h.load(fromByteOffset: 1, as: UInt8.self) == p.load(fromByteOffset: 1, as: UInt8.self),
                  h.load(fromByteOffset: 6, as: UInt8.self) & 0x40 == p.load(fromByteOffset: 6, as: UInt8.self) & 0x40,
                  h.load(fromByteOffset: 8, as: UInt8.self) == p.load(fromByteOffset: 8, as: UInt8.self) else { return false }
        }
        // Acknowledgment number, then options (data offset is equal).
        let tcp = item.ipHeaderLength
        return memcmp(h + tcp + 8, p + tcp + 8, 4) == 0
            && memcmp(h + tcp + 20, p + tcp + 20, item.headerLength - tcp - 20) == 0
    }

    private func start(_ k: Int, _ s: TCPSegment, _ p: UnsafeRawPointer) {
        packetArea(k).copyMemory(from: p, byteCount: s.length)
        items[k] = Item(isV6: s.isV6, ipHeaderLength: s.ipHeaderLength, headerLength: s.headerLength,
                        segmentSize: s.payloadLength, length: s.length, segments: 1,
                        nextSeq: s.seq &+ UInt32(s.payloadLength), closed: s.psh, started: starts)
        starts += 1
    }

    private func append(_ k: Int, _ s: TCPSegment, _ p: UnsafeRawPointer) {
        guard var item = items[k] else { return }
        let area = packetArea(k)
        (area + item.length).copyMemory(from: p + s.headerLength, byteCount: s.payloadLength)
        item.length += s.payloadLength
        item.segments += 1
        item.nextSeq &+= UInt32(s.payloadLength)
        if s.psh {
            let flags = area + item.ipHeaderLength + 13
            flags.storeBytes(of: flags.load(as: UInt8.self) | TCPSuperPacket.tcpPSH, as: UInt8.self)
        }
        item.closed = s.psh || s.payloadLength < item.segmentSize
        items[k] = item
        merged += 1
    }

    /// Writes item k out and frees its buffer. A merged item gets its IP
    /// length (and IPv4 header checksum) and a partial TCP checksum: the
    /// pseudo-header sum, which the kernel completes (virtio NEEDS_CSUM).
    private func emitItem(_ k: Int, _ emit: Emit) {
        guard let item = items[k] else { return }
        items[k] = nil
        let p = packetArea(k)
        guard item.segments > 1 else {
            emit(VirtioNetHeader(), UnsafeRawBufferPointer(start: p, count: item.length))
            return
        }
        if item.isV6 {
            p.storeBytes(of: UInt16(item.length - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
        } else {
            p.storeBytes(of: UInt16(item.length).bigEndian, toByteOffset: 2, as: UInt16.self)
            p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            let c = ~InternetChecksum.fold(InternetChecksum.sum(p, count: item.ipHeaderLength))
            p.storeBytes(of: c.bigEndian, toByteOffset: 10, as: UInt16.self)
        }
        let tcpLength = item.length - item.ipHeaderLength
        let pseudo = InternetChecksum.fold(InternetChecksum.pseudoHeader(p, isV6: item.isV6, proto: 6, length: tcpLength))
        p.storeBytes(of: pseudo.bigEndian, toByteOffset: item.ipHeaderLength + 16, as: UInt16.self)
        let header = VirtioNetHeader(
            flags: UInt8(MG_VIRTIO_NET_HDR_F_NEEDS_CSUM),
            gsoType: UInt8(item.isV6 ? MG_VIRTIO_NET_HDR_GSO_TCPV6 : MG_VIRTIO_NET_HDR_GSO_TCPV4),
            hdrLen: UInt16(item.headerLength), gsoSize: UInt16(item.segmentSize),
            csumStart: UInt16(item.ipHeaderLength), csumOffset: 16)
        emit(header, UnsafeRawBufferPointer(start: p, count: item.length))
    }
}

/// A TCP segment that may be merged (see the candidate rules above).
struct TCPSegment {
    let isV6: Bool
    let ipHeaderLength: Int
    let headerLength: Int
    let length: Int
    let payloadLength: Int
    let seq: UInt32
    let psh: Bool

    static let ack: UInt8 = 0x10

    init?(_ p: UnsafeRawPointer, count: Int) {
        guard let (v6, ipLength) = Self.flowOffsets(p, count: count) else { return nil }
        if v6 {
            guard 40 + Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))) == count else { return nil }
        } else {
            // Total length, no options, not a fragment, header checksum valid.
            guard ipLength == 20, Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) == count,
                  UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) & 0x3fff == 0,
                  InternetChecksum.fold(InternetChecksum.sum(p, count: 20)) == 0xffff else { return nil }
        }
        let tcpHeader = Int(p.load(fromByteOffset: ipLength + 12, as: UInt8.self) >> 4) * 4
        let flags = p.load(fromByteOffset: ipLength + 13, as: UInt8.self)
        guard tcpHeader >= 20, ipLength + tcpHeader < count,
              flags == Self.ack || flags == Self.ack | TCPSuperPacket.tcpPSH else { return nil }
        let tcpLength = count - ipLength
        let sum = InternetChecksum.sum(p + ipLength, count: tcpLength,
                                       initial: InternetChecksum.pseudoHeader(p, isV6: v6, proto: 6, length: tcpLength))
        guard InternetChecksum.fold(sum) == 0xffff else { return nil }
        isV6 = v6
        ipHeaderLength = ipLength
        headerLength = ipLength + tcpHeader
        length = count
        payloadLength = count - headerLength
        seq = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: ipLength + 4, as: UInt32.self))
        psh = flags & TCPSuperPacket.tcpPSH != 0
    }

    /// For an IPv4 packet or an IPv6 packet without extension headers that
    /// carries TCP and holds at least the first 20 bytes of it: its family and
    /// IP header length. Nil otherwise.
    static func flowOffsets(_ p: UnsafeRawPointer, count: Int) -> (isV6: Bool, ipHeaderLength: Int)? {
        guard count >= 40 else { return nil }
        let first = p.load(as: UInt8.self)
        switch first >> 4 {
        case 4:
            let ihl = Int(first & 0x0f) * 4
            return ihl >= 20 && count >= ihl + 20 && p.load(fromByteOffset: 9, as: UInt8.self) == 6 ? (false, ihl) : nil
        case 6:
            return count >= 60 && p.load(fromByteOffset: 6, as: UInt8.self) == 6 ? (true, 40) : nil
        default:
            return nil
        }
    }
}
