// TUN offload (IFF_VNET_HDR + TUNSETOFFLOAD): TCP segmentation of the kernel's
// super-packets and completion of partial checksums, in the reader.
//
// With IFF_VNET_HDR every packet on the descriptor is preceded by a 10-byte
// `struct virtio_net_hdr` (linux/virtio_net.h; host byte order, legacy
// virtio). With TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) the kernel
// may skip work and hand it to us (tun(4), Documentation/networking/tuntap.rst,
// and the virtio spec's "Packet Transmission"):
//
//   * gso_type NONE with flags NEEDS_CSUM: the transport checksum is partial.
//     The field at csum_start + csum_offset holds the pseudo-header sum; the
//     Internet checksum (RFC 1071) of [csum_start, end) with that field in
//     place, inverted, completes it.
//   * gso_type TCPV4/TCPV6: a TCP "super-packet" of up to 64 KiB with one set
//     of headers, to be cut into segments of gso_size payload bytes. Each
//     segment gets the headers with: IPv4 total length, identification + i and
//     header checksum; IPv6 payload length; TCP sequence number + i*gso_size;
//     FIN and PSH only on the last segment and CWR only on the first (as the
//     kernel's tcp_gso_segment does); a full TCP checksum.
//
// The header length is taken from the TCP data offset, not hdr_len, which the
// kernel may set to the whole first packet on forwarded traffic (wireguard-go
// tun/offload_linux.go does the same). A frame that fails any check is
// dropped, never trusted: every offset is validated before it is used.
//
// Writes carry an all-zero header (a plain packet, checksums complete) or,
// for TCP segments merged by TCPCoalescer, a TCPV4/TCPV6 GSO header with a
// partial checksum, which the kernel accepts on any IFF_VNET_HDR device.
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims

/// `struct virtio_net_hdr`, host byte order.
struct VirtioNetHeader: Equatable {
    var flags: UInt8 = 0
    var gsoType: UInt8 = 0
    var hdrLen: UInt16 = 0
    var gsoSize: UInt16 = 0
    var csumStart: UInt16 = 0
    var csumOffset: UInt16 = 0

    static let size = Int(MG_VIRTIO_NET_HDR_LEN)

    init(flags: UInt8 = 0, gsoType: UInt8 = 0, hdrLen: UInt16 = 0, gsoSize: UInt16 = 0, csumStart: UInt16 = 0, csumOffset: UInt16 = 0) {
        self.flags = flags; self.gsoType = gsoType; self.hdrLen = hdrLen
        self.gsoSize = gsoSize; self.csumStart = csumStart; self.csumOffset = csumOffset
    }

    /// Reads the 10 bytes at `p`.
    init(_ p: UnsafeRawPointer) {
        flags = p.load(as: UInt8.self)
        gsoType = p.load(fromByteOffset: 1, as: UInt8.self)
        hdrLen = p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        csumStart = p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        csumOffset = p.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    /// Writes the 10 bytes at `p`.
    func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: hdrLen, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: csumStart, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: csumOffset, toByteOffset: 8, as: UInt16.self)
    }
}

/// The Internet checksum (RFC 1071) over raw bytes.
enum InternetChecksum {
    /// The one's-complement sum of `count` bytes as big-endian 16-bit words
    /// (an odd last byte padded with zero), added to `initial`; fold it for
    /// the 16-bit result. Adds the 32-bit halves of native 64-bit words into
    /// two independent 64-bit accumulators (no carries to track below 2^32
    /// words, and the compiler can vectorise it), then swaps the folded sum
    /// to network order, which RFC 1071 §2(B) shows equal to summing
    /// big-endian words.
    static func sum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt64 {
        var low: UInt64 = 0, high: UInt64 = 0
        var i = 0
        while i + 8 <= count {
            let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            low &+= w & 0xffff_ffff
            high &+= w >> 32
            i += 8
        }
        if i < count {
            var tail: UInt64 = 0
            withUnsafeMutableBytes(of: &tail) { $0.baseAddress!.copyMemory(from: p + i, byteCount: count - i) }
            low &+= tail & 0xffff_ffff
            high &+= tail >> 32
        }
        let native = fold(low &+ high)
        return initial &+ UInt64(UInt16(bigEndian: native))
    }

    /// Folds a sum to 16 bits (not inverted).
    static func fold(_ sum: UInt64) -> UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xffff) &+ (s >> 16) }
        return UInt16(s)
    }

    /// The pseudo-header sum (RFC 768 / RFC 8200 §8.1) for an IP packet at `ip`:
    /// its source and destination addresses, `proto` and the upper-layer `length`.
    static func pseudoHeader(_ ip: UnsafeRawPointer, isV6: Bool, proto: UInt8, length: Int) -> UInt64 {
        let addresses = isV6 ? sum(ip + 8, count: 32) : sum(ip + 12, count: 8)
        return addresses &+ UInt64(proto) &+ UInt64(length)
    }
}

/// A validated TCP super-packet and how to cut it.
struct TCPSuperPacket: Equatable {
    let isV6: Bool
    /// Offset of the TCP header (csum_start).
    let ipHeaderLength: Int
    /// IP plus TCP headers, copied to every segment.
    let headerLength: Int
    /// Payload bytes per segment (gso_size).
    let segmentSize: Int
    /// Whole super-packet length.
    let length: Int

    static let tcpFIN: UInt8 = 0x01, tcpPSH: UInt8 = 0x08, tcpCWR: UInt8 = 0x80

    /// Checks a GSO frame's header against its packet; nil when anything is
    /// inconsistent (then the frame is dropped).
    init?(packet p: UnsafeRawPointer, length: Int, header h: VirtioNetHeader) {
        let type = h.gsoType & ~UInt8(MG_VIRTIO_NET_HDR_GSO_ECN)
        guard type == UInt8(MG_VIRTIO_NET_HDR_GSO_TCPV4) || type == UInt8(MG_VIRTIO_NET_HDR_GSO_TCPV6),
              h.gsoSize > 0, length >= 20, length <= 65535 + 40 else { return nil }
        let v6 = type == UInt8(MG_VIRTIO_NET_HDR_GSO_TCPV6)
        let version = p.load(as: UInt8.self) >> 4
        let start = Int(h.csumStart)
        if v6 {
            guard version == 6, start >= 40 else { return nil }
            if start == 40 { guard p.load(fromByteOffset: 6, as: UInt8.self) == 6 else { return nil } }
        } else {
            let ihl = Int(p.load(as: UInt8.self) & 0x0f) * 4
            guard version == 4, ihl >= 20, start == ihl, p.load(fromByteOffset: 9, as: UInt8.self) == 6 else { return nil }
        }
        guard length >= start + 20 else { return nil }
        let tcpHeader = Int(p.load(fromByteOffset: start + 12, as: UInt8.self) >> 4) * 4
        guard tcpHeader >= 20, length >= start + tcpHeader else { return nil }
        isV6 = v6
        ipHeaderLength = start
        headerLength = start + tcpHeader
        segmentSize = Int(h.gsoSize)
        self.length = length
    }

    /// Number of segments (at least one, even without payload).
    var segmentCount: Int { max(1, (length - headerLength + segmentSize - 1) / segmentSize) }

    /// Bytes segment `i` takes.
    func segmentLength(_ i: Int) -> Int {
        headerLength + max(0, min(segmentSize, length - headerLength - i * segmentSize))
    }

    /// Writes segment `i` of the super-packet at `p` to `out` and returns its
    /// length. Precondition (checked by the caller): `out` holds
    /// `segmentLength(i)` bytes and does not overlap `p`.
    func writeSegment(_ i: Int, from p: UnsafeRawPointer, to out: UnsafeMutableRawPointer) -> Int {
        let dataStart = headerLength + i * segmentSize
        let dataLength = max(0, min(segmentSize, length - dataStart))
        let total = headerLength + dataLength
        let isLast = dataStart + dataLength >= length
        out.copyMemory(from: p, byteCount: headerLength)
        if dataLength > 0 { (out + headerLength).copyMemory(from: p + dataStart, byteCount: dataLength) }

        if isV6 {
            out.storeBytes(of: UInt16(total - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
        } else {
            out.storeBytes(of: UInt16(total).bigEndian, toByteOffset: 2, as: UInt16.self)
            let id = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
            out.storeBytes(of: (id &+ UInt16(truncatingIfNeeded: i)).bigEndian, toByteOffset: 4, as: UInt16.self)
            out.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            let c = ~InternetChecksum.fold(InternetChecksum.sum(out, count: ipHeaderLength))
            out.storeBytes(of: c.bigEndian, toByteOffset: 10, as: UInt16.self)
        }

        let tcp = out + ipHeaderLength
        let seq = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: ipHeaderLength + 4, as: UInt32.self))
        tcp.storeBytes(of: (seq &+ UInt32(truncatingIfNeeded: i * segmentSize)).bigEndian, toByteOffset: 4, as: UInt32.self)
        var flags = tcp.load(fromByteOffset: 13, as: UInt8.self)
        if !isLast { flags &= ~(Self.tcpFIN | Self.tcpPSH) }
        if i > 0 { flags &= ~Self.tcpCWR }
        tcp.storeBytes(of: flags, toByteOffset: 13, as: UInt8.self)
        tcp.storeBytes(of: UInt16(0), toByteOffset: 16, as: UInt16.self)
        let tcpLength = total - ipHeaderLength
        let sum = InternetChecksum.sum(tcp, count: tcpLength,
                                       initial: InternetChecksum.pseudoHeader(out, isV6: isV6, proto: 6, length: tcpLength))
        tcp.storeBytes(of: (~InternetChecksum.fold(sum)).bigEndian, toByteOffset: 16, as: UInt16.self)
        return total
    }
}

enum TunOffload {
    /// The offloads asked for: partial checksums and TCP segmentation, both families.
    static let features = UInt32(MG_TUN_F_CSUM | MG_TUN_F_TSO4 | MG_TUN_F_TSO6)

    /// Completes a partial (NEEDS_CSUM) checksum in place; false when the
    /// offsets do not fit the packet.
    static func completeChecksum(_ p: UnsafeMutableRawPointer, length: Int, start: Int, offset: Int) -> Bool {
        let at = start + offset
        guard start < length, offset >= 0, at + 2 <= length else { return false }
        let c = ~InternetChecksum.fold(InternetChecksum.sum(p + start, count: length - start))
        p.storeBytes(of: c.bigEndian, toByteOffset: at, as: UInt16.self)
        return true
    }
}

/// Offloaded TUN reads: a frame (header + up to 64 KiB) is read into the
/// batch's scratch buffer, then copied or cut into slots. Segments that do not
/// fit the batch stay in the scratch buffer (`carry`) and come first next time.
extension DatagramBatch {
    /// Scratch bytes: a virtio_net_hdr and the largest IP packet, plus one
    /// byte so that a full buffer means "longer than any packet".
    static let offloadScratchSize = VirtioNetHeader.size + 65535 + 1

    func offloadScratch() -> UnsafeMutableRawPointer {
        if let s = scratch { return s }
        let s = UnsafeMutableRawPointer.allocate(byteCount: Self.offloadScratchSize, alignment: 64)
        scratch = s
        return s
    }

    var hasCarry: Bool { carry != nil }

    /// Moves pending segments into slots from `count`; returns the new count.
    func drainCarry(from count: Int) -> Int {
        guard let packet = carry, let s = scratch else { return count }
        var n = count
        let source = UnsafeRawPointer(s + VirtioNetHeader.size)
        while n < capacity && carryNext < packet.segmentCount {
            let need = packet.segmentLength(carryNext)
            if need <= bufferSize {
                let written = packet.writeSegment(carryNext, from: source, to: receiveArea(n))
                slots[n] = SlotState(offset: headroom, length: written, segmentSize: 0, truncated: false)
            } else {
                slots[n] = SlotState(offset: headroom, length: 0, segmentSize: 0, truncated: true)
            }
            n += 1
            carryNext += 1
        }
        if carryNext >= packet.segmentCount { carry = nil; carryNext = 0 }
        return n
    }

    /// Takes the frame of `frameLength` bytes in the scratch buffer: a plain
    /// packet goes to slot `count` (its checksum completed if partial), a TCP
    /// super-packet is cut into slots from `count`, anything malformed is
    /// dropped. Returns the new count.
    func acceptFrame(length frameLength: Int, at count: Int) -> Int {
        guard let s = scratch, count < capacity, frameLength > VirtioNetHeader.size,
              frameLength < Self.offloadScratchSize else { offloadDrops += 1; return count }
        let header = VirtioNetHeader(s)
        let packet = s + VirtioNetHeader.size
        let length = frameLength - VirtioNetHeader.size
        if header.gsoType == UInt8(MG_VIRTIO_NET_HDR_GSO_NONE) {
            if header.flags & UInt8(MG_VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0,
               !TunOffload.completeChecksum(packet, length: length, start: Int(header.csumStart), offset: Int(header.csumOffset)) {
                offloadDrops += 1
                return count
            }
            let kept = min(length, bufferSize)
            receiveArea(count).copyMemory(from: packet, byteCount: kept)
            let declared = TunDevice.declaredLength(UnsafeRawPointer(packet), available: length)
            slots[count] = SlotState(offset: headroom, length: kept, segmentSize: 0, truncated: length > bufferSize || declared > length)
            return count + 1
        }
        guard let superPacket = TCPSuperPacket(packet: packet, length: length, header: header) else {
            offloadDrops += 1
            return count
        }
        superPacketsSplit += 1
        carry = superPacket
        carryNext = 0
        return drainCarry(from: count)
    }
}
